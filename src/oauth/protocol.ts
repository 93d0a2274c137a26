import { constants, createHash, randomBytes, randomUUID, sign } from 'node:crypto'
import type { ClientCertificate } from '../crypto/client-certificate.ts'
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

/** How the app proves itself at the token endpoint: its certificate when it has one, else its secret. */
export interface ClientAuth {
  clientId: string
  /** Null when the app authenticates with its certificate: the secret is then not sent at all. */
  clientSecret: Secret | null
  certificate?: ClientCertificate | null
  /** How long one token request may take; a silent endpoint must not hold a worker (default 15 s). */
  timeoutMs?: number
}

const TIMEOUT_MS = 15_000
/** "short - 5-10 minutes after nbf at most" (certificate-credentials, exp). */
const ASSERTION_LIFETIME_S = 600

/**
 * A client assertion (RFC 7523 §2.2, §3; OpenID Connect Core §9 private_key_jwt) signed PS256 with the certificate's
 * key, named by its SHA-256 thumbprint (`x5t#S256`; the SHA-1 `x5t` beside it for clouds that still read that one).
 * `aud` is the token endpoint it is posted to; `iss` and `sub` the client id; a fresh `jti` each time.
 * @see https://learn.microsoft.com/entra/identity-platform/certificate-credentials
 */
export function clientAssertion(clientId: string, certificate: ClientCertificate, tokenUrl: string, at = Date.now()): Secret {
  const now = Math.floor(at / 1000)
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const header = part({ alg: 'PS256', typ: 'JWT', 'x5t#S256': certificate.x5tS256, x5t: certificate.x5t })
  const claims = part({ aud: tokenUrl, iss: clientId, sub: clientId, jti: randomUUID(), nbf: now, iat: now, exp: now + ASSERTION_LIFETIME_S })
  // PS256: RSASSA-PSS with SHA-256 and a salt as long as the hash (RFC 7518 §3.5).
  const signature = sign('sha256', Buffer.from(`${header}.${claims}`), { key: certificate.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
  return new Secret(`${header}.${claims}.${signature.toString('base64url')}`)
}

/** The form fields that authenticate the client: a client assertion (RFC 7523 §2.2), or client_secret_post (RFC 6749 §2.3.1). */
export function clientAuthentication(client: ClientAuth, tokenUrl: string): Record<string, string> {
  if (client.certificate) {
    return { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: clientAssertion(client.clientId, client.certificate, tokenUrl).reveal() }
  }
  return client.clientSecret ? { client_secret: client.clientSecret.reveal() } : {}
}

/** POST a form to the token endpoint (RFC 6749 §3.2), the client authenticated as clientAuthentication() says. */
export async function tokenRequest(p: ProviderSpec, url: string, client: ClientAuth, params: Record<string, string>): Promise<Response> {
  const body = new URLSearchParams({ ...params, client_id: client.clientId, ...clientAuthentication(client, url) })
  const timeoutMs = client.timeoutMs ?? TIMEOUT_MS
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

/** Check a token response (RFC 6749 §5.1 success, §5.2 error). */
export async function processTokenResponse(p: ProviderSpec, res: Response, previousRefresh?: Secret | null): Promise<TokenSet> {
  const text = await res.text()
  let json: Record<string, unknown>
  try {
    json = JSON.parse(text) as Record<string, unknown>
  } catch {
    throw new ProviderError(p, 'bad_response', `the token endpoint answered HTTP ${res.status} without JSON`, undefined, false, res.status >= 500)
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
