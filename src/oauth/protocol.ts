import { createHash, randomBytes } from 'node:crypto'
import { Secret } from '../crypto/secret.ts'
import { MailbridgeError } from '../errors.ts'
import { aadstsCode, type ProviderErrorBody } from './aadsts.ts'
import type { ProviderSpec } from './providers.ts'

/** A token endpoint's answer, checked (RFC 6749 §5.1). */
export interface TokenSet {
  accessToken: Secret
  refreshToken: Secret | null
  idToken: string | null
  expiresAt: Date
  scopes: string[]
}

/** What the id_token says about who consented (OpenID Connect Core §2; Microsoft's v2.0 claims). */
export interface Identity {
  email?: string
  preferred_username?: string
  name?: string
  tid?: string
  oid?: string
}

/** A provider's refusal, or its silence. `reconnect`: only a new consent helps; `transient`: try again later. */
export class ProviderError extends MailbridgeError {
  constructor(
    readonly provider: ProviderSpec,
    readonly error: string,
    readonly description: string,
    readonly aadsts: number | undefined,
    readonly reconnect: boolean,
    readonly transient: boolean,
    options?: ErrorOptions,
  ) {
    super('token_error', { message: `${provider.label}: ${description}` }, options)
    this.name = 'ProviderError'
  }
  /** A short code for status fields and metrics: `AADSTS7000222`, `invalid_grant`, `unreachable`. */
  get shortCode(): string {
    return this.aadsts ? `AADSTS${this.aadsts}` : this.error
  }
}

/** PKCE with S256 (RFC 7636 §4.1, §4.2). */
export function createPkce(): { verifier: Secret; challenge: string } {
  const verifier = randomBytes(32).toString('base64url')
  return { verifier: new Secret(verifier), challenge: createHash('sha256').update(verifier).digest('base64url') }
}

/**
 * The authorization request (RFC 6749 §4.1.1, PKCE RFC 7636 §4.3).
 * @see https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow#request-an-authorization-code
 */
export function authorizationUrl(
  p: ProviderSpec,
  o: { authorizeUrl: string; scopes: readonly string[]; clientId: string; redirectUri: string; state: Secret; challenge: string; loginHint: string },
): string {
  const url = new URL(o.authorizeUrl)
  const params = {
    client_id: o.clientId,
    response_type: 'code',
    redirect_uri: o.redirectUri,
    scope: o.scopes.join(' '),
    state: o.state.reveal(),
    code_challenge: o.challenge,
    code_challenge_method: 'S256',
    login_hint: o.loginHint,
    ...p.authorizeParams,
  }
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v)
  return url.toString()
}

export interface ClientAuth {
  clientId: string
  clientSecret: Secret
  /** How long one token request may take; a silent endpoint must not hold a worker (default 15 s). */
  timeoutMs?: number
}

const TIMEOUT_MS = 15_000

/** POST a form to the token endpoint (RFC 6749 §3.2); client_secret_post, as Microsoft accepts (§2.3.1). */
export async function tokenRequest(p: ProviderSpec, url: string, client: ClientAuth, params: Record<string, string>): Promise<Response> {
  return postForm(p, url, new URLSearchParams({ ...params, client_id: client.clientId, client_secret: client.clientSecret.reveal() }), client.timeoutMs)
}

/** POST a form to one of the provider's endpoints, bounded in time; a silence or a refused connection is a transient ProviderError. */
async function postForm(p: ProviderSpec, url: string, body: URLSearchParams, timeout: number | undefined): Promise<Response> {
  const timeoutMs = timeout ?? TIMEOUT_MS
  try {
    return await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body,
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'error',
    })
  } catch (cause) {
    const what = (cause as Error).name === 'TimeoutError' ? `did not answer within ${timeoutMs / 1000} s` : `could not be reached (${describeCause(cause)})`
    throw new ProviderError(p, 'unreachable', `the token endpoint ${new URL(url).host} ${what}`, undefined, false, true, { cause })
  }
}

const describeCause = (e: unknown): string => {
  const c = (e as { cause?: { code?: string; message?: string } }).cause
  return c?.code ?? c?.message ?? (e as Error).message
}

/** An endpoint's JSON answer, or its OAuth error (RFC 6749 §5.2) as a ProviderError explained by the provider. */
async function readAnswer(p: ProviderSpec, res: Response, what = 'the token endpoint'): Promise<Record<string, unknown>> {
  const text = await res.text()
  let json: Record<string, unknown>
  try {
    json = JSON.parse(text) as Record<string, unknown>
  } catch {
    throw new ProviderError(p, 'bad_response', `${what} answered HTTP ${res.status} without JSON`, undefined, false, res.status >= 500)
  }
  if (!res.ok || typeof json.error === 'string') {
    if (typeof json.error !== 'string') json.error = `http_${res.status}`
    const body = json as unknown as ProviderErrorBody
    const explained = p.explain(body)
    const code = aadstsCode(body)
    const firstLine = (body.error_description ?? body.error).split(/\r?\n/)[0]
    return Promise.reject(
      new ProviderError(p, body.error ?? `http_${res.status}`, `${firstLine} — ${explained.action}`, code, explained.reconnect, res.status >= 500 || res.status === 429),
    )
  }
  return json
}

/** Check a token response (RFC 6749 §5.1 success, §5.2 error). */
export async function processTokenResponse(p: ProviderSpec, res: Response, previousRefresh?: Secret | null): Promise<TokenSet> {
  const json = await readAnswer(p, res)
  if (typeof json.access_token !== 'string' || (json.token_type as string)?.toLowerCase() !== 'bearer') {
    throw new ProviderError(p, 'bad_response', 'the token endpoint answered without a bearer access_token', undefined, false, false)
  }
  const expiresIn = Number(json.expires_in)
  // Microsoft's access tokens live 60–90 minutes; never assume 3600 (configurable-token-lifetimes).
  const lifetime = Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : 3600
  const refresh = typeof json.refresh_token === 'string' ? new Secret(json.refresh_token) : null
  return {
    accessToken: new Secret(json.access_token),
    // Google does not rotate refresh tokens: keep the one we had when none comes back.
    refreshToken: refresh ?? previousRefresh ?? null,
    idToken: typeof json.id_token === 'string' ? json.id_token : null,
    expiresAt: new Date(Date.now() + lifetime * 1000),
    scopes: typeof json.scope === 'string' ? json.scope.split(' ').filter(Boolean) : [],
  }
}

/**
 * Redeem the code (RFC 6749 §4.1.3; PKCE RFC 7636 §4.5).
 * @see https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow#redeem-a-code-for-an-access-token
 */
export async function exchangeCode(
  p: ProviderSpec,
  o: { tokenUrl: string; client: ClientAuth; code: Secret; verifier: Secret; redirectUri: string; scopes: readonly string[] },
): Promise<TokenSet> {
  const res = await tokenRequest(p, o.tokenUrl, o.client, {
    grant_type: 'authorization_code',
    code: o.code.reveal(),
    redirect_uri: o.redirectUri,
    code_verifier: o.verifier.reveal(),
    scope: o.scopes.join(' '),
  })
  return processTokenResponse(p, res)
}

/**
 * Refresh (RFC 6749 §6). `scopes` null sends none: the grant keeps its scopes (Google's form).
 * @see https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow#refresh-the-access-token
 * @see https://developers.google.com/identity/protocols/oauth2/web-server#offline
 */
export async function refreshGrant(
  p: ProviderSpec,
  o: { tokenUrl: string; client: ClientAuth; refreshToken: Secret; scopes: readonly string[] | null },
): Promise<TokenSet> {
  const res = await tokenRequest(p, o.tokenUrl, o.client, {
    grant_type: 'refresh_token',
    refresh_token: o.refreshToken.reveal(),
    ...(o.scopes ? { scope: o.scopes.join(' ') } : {}),
  })
  return processTokenResponse(p, res, o.refreshToken)
}

/**
 * App-only token (RFC 6749 §4.4): the app authenticates as itself; no refresh token comes back, so a new
 * token is simply requested when the old one runs out.
 * @see https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow#first-case-access-token-request-with-a-shared-secret
 */
export async function clientCredentialsGrant(p: ProviderSpec, o: { tokenUrl: string; client: ClientAuth; scopes: readonly string[] }): Promise<TokenSet> {
  const res = await tokenRequest(p, o.tokenUrl, o.client, { grant_type: 'client_credentials', scope: o.scopes.join(' ') })
  return processTokenResponse(p, res)
}

/**
 * The admin consent request: an administrator of the tenant grants the scopes for every user of it, and Microsoft
 * answers at the redirect URI with `admin_consent=True&tenant=…&state=…` (or `error=…`). `base` names the tenant.
 * @see https://learn.microsoft.com/entra/identity-platform/v2-admin-consent#request-the-permissions-from-a-directory-admin
 */
export function adminConsentUrl(base: string, o: { clientId: string; redirectUri: string; state: Secret; scopes: readonly string[] }): string {
  const url = new URL(base)
  const params = { client_id: o.clientId, redirect_uri: o.redirectUri, state: o.state.reveal(), scope: o.scopes.join(' ') }
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v)
  return url.toString()
}

/** A device authorization response, checked (RFC 8628 §3.2). */
export interface DeviceAuthorization {
  deviceCode: Secret
  userCode: string
  verificationUri: string
  expiresAt: Date
  /** Seconds between polls; 5 when the provider says none (RFC 8628 §3.2). */
  interval: number
}

/**
 * The device authorization request (RFC 8628 §3.1): the client id and the consent's scopes, no secret (Microsoft's
 * endpoint takes none). The person then signs in on another device while Mailbridge polls.
 * @see https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code#device-authorization-request
 */
export function deviceAuthorizationRequest(p: ProviderSpec, url: string, o: { clientId: string; scopes: readonly string[]; timeoutMs?: number }): Promise<Response> {
  return postForm(p, url, new URLSearchParams({ client_id: o.clientId, scope: o.scopes.join(' ') }), o.timeoutMs)
}

/** Check the device authorization response (RFC 8628 §3.2; Microsoft: expires_in 900 and interval 5 by default). */
export async function processDeviceAuthorizationResponse(p: ProviderSpec, res: Response): Promise<DeviceAuthorization> {
  const json = await readAnswer(p, res, 'the device code endpoint')
  const { device_code, user_code, verification_uri } = json
  if (typeof device_code !== 'string' || typeof user_code !== 'string' || typeof verification_uri !== 'string' || !/^https?:\/\//.test(verification_uri)) {
    throw new ProviderError(p, 'bad_response', 'the device code endpoint answered without device_code, user_code and an http(s) verification_uri', undefined, false, false)
  }
  const expiresIn = Number(json.expires_in)
  const interval = Number(json.interval)
  return {
    deviceCode: new Secret(device_code),
    userCode: user_code,
    verificationUri: verification_uri,
    expiresAt: new Date(Date.now() + (Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : 900) * 1000),
    interval: Number.isFinite(interval) && interval > 0 ? interval : 5,
  }
}

/**
 * The device access token request (RFC 8628 §3.4), as the confidential client Mailbridge is: its secret goes along,
 * like every other grant's, so the refresh token that comes back refreshes with the secret too. Until the person
 * finishes, the answer is an error: `authorization_pending`, `slow_down` (RFC 8628 §3.5), `authorization_declined`,
 * `expired_token`, `bad_verification_code` (ProviderError.error).
 * @see https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code#authenticating-the-user
 */
export async function deviceCodeGrant(p: ProviderSpec, o: { tokenUrl: string; client: ClientAuth; deviceCode: Secret }): Promise<TokenSet> {
  const res = await tokenRequest(p, o.tokenUrl, o.client, { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: o.deviceCode.reveal() })
  return processTokenResponse(p, res)
}

/**
 * Read the id_token's claims. It came straight from the token endpoint over TLS, so TLS server validation
 * stands in for the signature check (OpenID Connect Core §3.1.3.7, item 6).
 */
export function readIdentity(idToken: string | null): Identity {
  if (!idToken) return {}
  const payload = idToken.split('.')[1]
  if (!payload) return {}
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>
    const pick = (k: string) => (typeof claims[k] === 'string' ? (claims[k] as string) : undefined)
    return { email: pick('email'), preferred_username: pick('preferred_username'), name: pick('name'), tid: pick('tid'), oid: pick('oid') }
  } catch {
    return {}
  }
}

/** UPN and mail address often differ (user@contoso.onmicrosoft.com vs user@contoso.com): either may match. */
export function identityMatches(identity: Identity, mailbox: string): boolean {
  const want = mailbox.toLowerCase()
  return [identity.email, identity.preferred_username].some((v) => v?.toLowerCase() === want)
}

/** The SASL XOAUTH2 initial response (https://developers.google.com/gmail/imap/xoauth2-protocol; Microsoft's page uses the same). */
export function xoauth2(user: string, accessToken: Secret): Secret {
  return new Secret(Buffer.from(`user=${user}\x01auth=Bearer ${accessToken.reveal()}\x01\x01`).toString('base64'))
}
