/**
 * A test emulator of the Microsoft identity platform v2.0 endpoints (authorize, token, keys, discovery)
 * plus an RFC 7662 introspection listener that Dovecot and the SMTP peer ask.
 *
 * It follows Microsoft's documents, not Mailbridge's code. Main sources:
 * - AUTH_CODE  https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow
 * - ERRORS     https://learn.microsoft.com/entra/identity-platform/reference-error-codes
 * - REFRESH    https://learn.microsoft.com/entra/identity-platform/refresh-tokens
 * - CLIENT_CREDS https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
 * - ID_TOKEN   https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference
 * - LIFETIMES  https://learn.microsoft.com/entra/identity-platform/configurable-token-lifetimes
 * - ACCESS_TOKENS https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference
 * - SCOPES     https://learn.microsoft.com/entra/identity-platform/scopes-oidc (the /.default scope, one resource a token)
 * - ADMIN_CONSENT https://learn.microsoft.com/entra/identity-platform/v2-admin-consent
 * - USER_CONSENT https://learn.microsoft.com/entra/identity/enterprise-apps/configure-user-consent
 * - DEVICE_CODE https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code (RFC 8628)
 * Where Microsoft documents no code for a case, the comment says which field report the choice follows.
 */
import { randomBytes, randomInt, randomUUID, createHash, generateKeyPair, sign, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { promisify } from 'node:util'

export interface EmulatorApp {
  clientId: string
  clientSecret: string
  redirectUris: string[]
  secretExpiresAt?: Date
  /** tenant id; if set the app is single-tenant */
  tenant?: string
  /** display name on the consent page (defaults to the client id) */
  name?: string
  /**
   * "Allow public client flows" (Authentication → Advanced settings; `isFallbackPublicClient` in the manifest): the
   * device code grant may then be redeemed without a client secret. Off by default, as in a new registration.
   */
  allowPublicClient?: boolean
}

export interface TokenRequestRecord {
  grant_type: string
  client_id?: string
  /** generation of the refresh token presented (refresh_token grant only) */
  refreshGeneration?: number
  at: Date
  /** OAuth `error` of the answer, or 'down' / 'temporarily_unavailable' for injected failures */
  error?: string
  /** the AADSTS number of the answer, when it failed */
  aadsts?: number
}

export interface Emulator {
  /** https://127.0.0.1:<port> */
  url: string
  /** the emulator's home directory tenant id (tid of users signing in through common/organizations) */
  tenantId: string
  /** `${url}/${tenant ?? 'common'}/oauth2/v2.0/` — what Mailbridge stores as microsoft_outlook.endpoint */
  endpoint(tenant?: string): string
  /** plain http://127.0.0.1:<port2>/introspect (RFC 7662, test-only; for Dovecot and the SMTP peer) */
  introspectUrl: string
  registerApp(app: EmulatorApp): void
  /** `admin`: a Global (or Cloud Application) Administrator of the tenant, who may grant admin consent. */
  addUser(email: string, opts?: { upn?: string; name?: string; admin?: boolean }): void
  consent(authorizeUrl: string, opts: { user: string; approve?: boolean }): Promise<URL>
  mintAccessToken(o: { user: string; scope?: string; ttlSeconds?: number }): string
  revokeUser(email: string): void
  expireRefreshTokens(email: string): void
  expireAccessTokens(email?: string): void
  /** each call replaces the previous setting; setTokenEndpoint({}) restores normal service */
  setTokenEndpoint(b: { down?: boolean; delayMs?: number; status503?: boolean }): void
  tokenRequests: TokenRequestRecord[]
  latestRefreshToken(email: string): string | undefined
  /** Every code, refresh and access token issued and every PKCE verifier received: for "never leaked" checks. */
  issuedSecrets(): string[]
  /**
   * What a resource server learns from a token it validates (a JWT's claims, in Microsoft's case): for the Graph
   * emulator, which runs in the same process. undefined for an unknown token.
   */
  tokenInfo(token: string): TokenInfo | undefined
  /**
   * App-only access in a tenant, as an admin sets it up (research B6): grant admin consent to application
   * permissions (`IMAP.AccessAsApp`, `SMTP.SendAsApp`), create the Exchange service principal (New-ServicePrincipal)
   * and give it mailboxes (Add-MailboxPermission). Repeated calls add to what was granted.
   */
  grantAppAccess(o: { clientId: string; tenant: string; roles?: string[]; mailboxes?: string[] }): void
  /**
   * The tenant's user consent setting (USER_CONSENT): `admin_only` is "Do not allow user consent", so a user asked
   * for permissions nobody granted yet meets "Need admin approval" (AADSTS90094) instead of the consent prompt.
   * Default tenant: the home tenant.
   */
  setConsentPolicy(o: { tenant?: string; userConsent: 'allow' | 'admin_only' }): void
  /** The permissions an admin granted the app for the whole tenant (ADMIN_CONSENT), as requested. */
  adminGrants(clientId: string, tenant?: string): string[]
  /** The pending device sign-ins (DEVICE_CODE), newest last: what a person would read off the app's screen. */
  deviceSignIns(): Array<{ userCode: string; clientId: string; state: 'pending' | 'approved' | 'declined'; polls: number }>
  /** A person opens the verification page, enters the code, signs in as `user` and answers (test API over the real pages). */
  completeDeviceSignIn(userCode: string, o: { user: string; approve?: boolean }): Promise<string>
  close(): Promise<void>
}

/** The claims of an access token a resource checks (ACCESS_TOKENS: aud, scp, roles, tid, exp). */
export interface TokenInfo {
  /** false once revoked; expiry is `exp`, checked by the resource against its own clock */
  active: boolean
  /** the resource's app id URI: `https://graph.microsoft.com`, `https://outlook.office.com` */
  aud: string
  /** delegated: the consented scopes of this resource as bare names (`Mail.Send`), the `scp` claim */
  scp: string[]
  /** app-only: the application permissions admin-consented in the tenant, the `roles` claim */
  roles: string[]
  /** delegated: the signed-in user's address */
  user?: string
  appId?: string
  tid?: string
  /** seconds since the epoch */
  exp: number
}

export interface EmulatorOptions {
  /** default: a random 3600–5400 s per token, like Microsoft (60–90 min) */
  accessTokenLifetimeSeconds?: number
  /** clock, for tests that need codes or tokens to age (default Date.now) */
  now?: () => number
}

export const OUTLOOK_SMTP_SEND = 'https://outlook.office.com/SMTP.Send'
export const OUTLOOK_IMAP = 'https://outlook.office.com/IMAP.AccessAsUser.All'

const TLS_DIR = new URL('./tls/', import.meta.url)
const MS_LOGIN = 'https://login.microsoftonline.com'
const OIDC_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access'])
const CODE_LIFETIME_S = 600 // "Typically, they expire after about 10 minutes" (AUTH_CODE, successful response)
const ID_TOKEN_LIFETIME_S = 3600
const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'
const DEVICE_CODE_LIFETIME_S = 900 // "the user has 15 minutes to sign in. This is the default value for expires_in" (DEVICE_CODE)
const DEVICE_CODE_INTERVAL_S = 5 // RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default"
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

// Resources are identified by their app id URI host; Exchange Online answers to several (B2 in research).
// Microsoft Graph has one per national cloud (https://learn.microsoft.com/graph/deployments#microsoft-graph-and-graph-explorer-service-root-endpoints).
const RESOURCES: Record<string, string> = {
  'https://outlook.office.com': 'exchange',
  'https://outlook.office365.com': 'exchange',
  'https://ps.outlook.com': 'exchange',
  'https://graph.microsoft.com': 'graph',
  'https://graph.microsoft.us': 'graph-usgov',
  'https://dod-graph.microsoft.us': 'graph-dod',
  'https://microsoftgraph.chinacloudapi.cn': 'graph-china',
}
const GRAPH = 'https://graph.microsoft.com'

interface User { email: string; upn: string; name: string; oid: string; admin?: boolean }
interface CodeGrant {
  clientId: string; redirectUri: string; scopes: string[]; user: User; tenantPath: string; tid: string
  challenge?: string; method?: 'S256' | 'plain'; nonce?: string; issuedAt: number; used: boolean
}
interface RefreshGrant {
  token: string; chain: string; generation: number; clientId: string; user: User; scopes: string[]
  tid: string; issuedAt: number; state: 'valid' | 'revoked' | 'expired'
}
interface AccessGrant {
  token: string; user?: User; clientId?: string; scope: string; resource: string; sub: string
  exp: number; iat: number; active: boolean
  /** app-only tokens: the application permissions admin-consented in the token's tenant, and that tenant */
  roles?: string[]; tid?: string
}
interface DeviceGrant {
  deviceCode: string; userCode: string; clientId: string; tenantPath: string; tid: string; scopes: string[]
  issuedAt: number; expiresAt: number; interval: number; lastPollAt?: number; polls: number
  state: 'pending' | 'approved' | 'declined'; user?: User
}
/** What an admin set up for an app in one tenant: consented application permissions and Exchange mailbox access. */
interface AppAccess { roles: Set<string>; mailboxes: Set<string> }

/** A Microsoft-shaped error: OAuth `error`, AADSTS number, text, HTTP status. */
class AadError {
  constructor(readonly error: string, readonly code: number, readonly text: string, readonly status = 400) {}
}
type AuthorizeOutcome =
  | { kind: 'page'; err: AadError }
  | { kind: 'redirect'; err: AadError; redirectUri: string; state?: string; mode: string }
  | { kind: 'ok'; ctx: AuthorizeContext }
interface AuthorizeContext {
  app: EmulatorApp; tenantPath: string; tid: string; redirectUri: string; scopes: string[]; state?: string
  mode: string; challenge?: string; method?: 'S256' | 'plain'; nonce?: string; loginHint: string
  params: URLSearchParams
}

export async function startIdentityEmulator(opts: EmulatorOptions = {}): Promise<Emulator> {
  const now = opts.now ?? Date.now
  const nowS = () => Math.floor(now() / 1000)
  const tlsKey = readFileSync(new URL('key.pem', TLS_DIR))
  const tlsCert = readFileSync(new URL('cert.pem', TLS_DIR))
  const ca = readFileSync(new URL('ca.pem', TLS_DIR))
  const { privateKey, publicKey, kid } = await signingKey()
  const homeTenant = randomUUID()

  const apps = new Map<string, EmulatorApp>()
  const users = new Map<string, User>()
  const codes = new Map<string, CodeGrant>()
  const refreshTokens = new Map<string, RefreshGrant>()
  const accessTokens = new Map<string, AccessGrant>()
  const consents = new Map<string, Set<string>>() // `${clientId} ${email}` → consented scopes
  const verifiersSeen: string[] = []
  const appAccess = new Map<string, AppAccess>() // `${clientId} ${tenant}` → admin-granted app-only access
  const tokenRequests: TokenRequestRecord[] = []
  const consentPolicies = new Map<string, 'allow' | 'admin_only'>() // tid → user consent setting
  const adminGrants = new Map<string, Set<string>>() // `${clientId} ${tid}` → scopes an admin granted for the tenant
  const deviceGrants = new Map<string, DeviceGrant>() // device_code → sign-in in progress
  let tokenEndpoint: { down?: boolean; delayMs?: number; status503?: boolean } = {}
  let url = ''

  const findUser = (login: string) => {
    const l = login.trim().toLowerCase()
    return users.get(l) ?? [...users.values()].find((u) => u.upn.toLowerCase() === l)
  }
  const tokenLifetime = () => opts.accessTokenLifetimeSeconds ?? randomInt(3600, 5401)

  // ---------- tenants and apps ----------

  /** Valid {tenant} values are common, organizations, consumers, and tenant identifiers (AUTH_CODE, tenant). */
  function checkTenant(tenantPath: string): AadError | undefined {
    const t = tenantPath.toLowerCase()
    if (['common', 'organizations', 'consumers'].includes(t) || GUID.test(t) || t.includes('.')) return undefined
    if ([...apps.values()].some((a) => a.tenant?.toLowerCase() === t)) return undefined
    return new AadError('invalid_request', 90002, `Tenant '${tenantPath}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`)
  }

  /** Unknown app → AADSTS700016; single-tenant app on /common → AADSTS50194 (ERRORS). */
  function checkApp(clientId: string, tenantPath: string): { app: EmulatorApp } | { err: AadError } {
    const app = apps.get(clientId)
    const t = tenantPath.toLowerCase()
    const notFound = () => new AadError('unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory '${tenantPath}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`)
    if (!app) return { err: notFound() }
    if (app.tenant && app.tenant.toLowerCase() !== t) {
      if (t === 'common' || t === 'organizations') {
        return { err: new AadError('invalid_request', 50194, `Application '${app.clientId}'(${app.name ?? app.clientId}) is not configured as a multi-tenant application. Usage of the /common endpoint is not supported for such applications created after '10/15/2018'. Use a tenant-specific endpoint or configure the application to be multi-tenant.`) }
      }
      if (t === 'consumers') {
        return { err: new AadError('invalid_request', 9002332, `Application '${app.clientId}'(${app.name ?? app.clientId}) is configured for use by Azure Active Directory users only. Please do not use the /consumers endpoint to serve this request.`) }
      }
      return { err: notFound() }
    }
    return { app }
  }

  /** The client a request names, in the tenant of its path: client_id given, a known tenant, an app there. */
  function findClient(clientId: string | null, tenantPath: string): { app: EmulatorApp } | { err: AadError } {
    if (!clientId) return { err: missingParam('client_id') }
    const tenantErr = checkTenant(tenantPath)
    return tenantErr ? { err: tenantErr } : checkApp(clientId, tenantPath)
  }

  /** tid: the tenant the user signs in to (ID_TOKEN, tid). */
  function tidFor(app: EmulatorApp, tenantPath: string) {
    if (GUID.test(tenantPath)) return tenantPath.toLowerCase()
    return app.tenant ?? homeTenant
  }

  // ---------- scopes ----------

  /** Resource of one scope: OIDC scopes have none, bare names are Microsoft Graph (AUTH_CODE, scope). */
  function resourceOf(scope: string): string | undefined | null {
    if (OIDC_SCOPES.has(scope.toLowerCase())) return undefined
    if (!scope.includes('/')) return 'graph'
    try {
      const u = new URL(scope)
      return RESOURCES[u.origin.toLowerCase()] ?? null
    } catch {
      return null
    }
  }
  const splitScopes = (s: string | null) => (s ?? '').split(/\s+/).filter(Boolean)
  const invalidScope = (s: string) =>
    new AadError('invalid_scope', 70011, `The provided value for the input parameter 'scope' is not valid. The scope ${s} is not valid.`)
  const resourceScopes = (scopes: string[]) => scopes.filter((s) => resourceOf(s))
  /** One permission however it is written: `Mail.Send` is `https://graph.microsoft.com/Mail.Send` (AUTH_CODE, scope). */
  const scopeKey = (s: string) => `${resourceOf(s)} ${s.slice(s.lastIndexOf('/') + 1).toLowerCase()}`
  const consentedTo = (consented: Iterable<string>, scope: string) => [...consented].some((c) => scopeKey(c) === scopeKey(scope))

  /**
   * The scope of a token request (code or refresh): known scopes, "all from a single resource, along with OIDC
   * scopes" (AUTH_CODE, scope), each consented. Two resources are refused with AADSTS28000, which is what Microsoft's
   * token endpoint answers (field reports, e.g. Earlybyte/aad_oauth#328, 2024; ERRORS also lists 700022 for the
   * same rule). An unconsented scope is AADSTS65001 (AUTH_CODE, error codes for token endpoint errors).
   */
  function checkRequestedScopes(requested: string[], consented: Iterable<string>, app: EmulatorApp, notConsentedError: string): AadError | undefined {
    const unknown = requested.find((s) => resourceOf(s) === null)
    if (unknown) return invalidScope(unknown)
    if (new Set(resourceScopes(requested).map((s) => resourceOf(s))).size > 1) {
      return new AadError('invalid_scope', 28000, `Provided value for the input parameter scope is not valid because it contains more than one resource. Scope ${requested.join(' ')} is not valid.`)
    }
    if (resourceScopes(requested).some((s) => !consentedTo(consented, s))) return notConsented(notConsentedError, app)
    return undefined
  }

  // ---------- /authorize ----------

  /**
   * Validate an authorize request the way Microsoft orders it: errors about the client or the redirect URI are shown
   * on a page (Microsoft cannot trust the redirect URI), later ones go back to the app (RFC 6749 §4.1.2.1; AUTH_CODE,
   * error response).
   */
  function validateAuthorize(tenantPath: string, p: URLSearchParams): AuthorizeOutcome {
    const page = (err: AadError): AuthorizeOutcome => ({ kind: 'page', err })
    const found = findClient(p.get('client_id'), tenantPath)
    if ('err' in found) return page(found.err)
    const { app } = found
    const redirectUri = p.get('redirect_uri')
    // AADSTS900971 "No reply address provided." (ERRORS)
    if (!redirectUri) return page(new AadError('invalid_request', 900971, 'No reply address provided.'))
    // The redirect URI "must exactly match one of the redirect URIs you registered" (AUTH_CODE); else AADSTS50011.
    if (!app.redirectUris.includes(redirectUri)) {
      return page(new AadError('invalid_request', 50011, `The redirect URI '${redirectUri}' specified in the request does not match the redirect URIs configured for the application '${app.clientId}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.`))
    }
    const state = p.get('state') ?? undefined
    const mode = p.get('response_mode') ?? 'query'
    const back = (err: AadError): AuthorizeOutcome => ({ kind: 'redirect', err, redirectUri, state, mode: ['query', 'fragment', 'form_post'].includes(mode) ? mode : 'query' })
    if (!['query', 'fragment', 'form_post'].includes(mode)) {
      return back(new AadError('invalid_request', 70007, `The application returned an unsupported value of 'response_mode' when requesting a token: '${mode}'.`))
    }
    const responseType = p.get('response_type')
    if (!responseType) return back(missingParam('response_type'))
    // Only the plain code flow is modelled; hybrid/implicit need the implicit grant enabled (AUTH_CODE, hybrid flow).
    if (responseType !== 'code') {
      return back(new AadError('unsupported_response_type', 70005, `response_type '${responseType}' is not enabled for the application.`))
    }
    const scopes = splitScopes(p.get('scope'))
    if (!scopes.length) return back(missingParam('scope'))
    // "For the /authorize leg of the request, this parameter can cover multiple resources" (AUTH_CODE, scope),
    // so only scopes of unknown resources are refused here.
    const unknown = scopes.find((s) => resourceOf(s) === null)
    if (unknown) return back(invalidScope(unknown))
    // PKCE: code_challenge is "Required if code_challenge_method is included"; S256 and plain are supported (AUTH_CODE).
    const challenge = p.get('code_challenge') ?? undefined
    const methodParam = p.get('code_challenge_method') ?? undefined
    if (methodParam && !challenge) {
      return back(new AadError('invalid_request', 50147, 'The size of the code challenge parameter is not valid.'))
    }
    let method: 'S256' | 'plain' | undefined
    if (challenge) {
      if (methodParam && methodParam !== 'S256' && methodParam !== 'plain') {
        return back(new AadError('invalid_request', 9002313, 'Invalid request. Request is malformed or invalid.'))
      }
      method = methodParam === 'S256' ? 'S256' : 'plain' // "If excluded, code_challenge is assumed to be plaintext"
      const okSize = method === 'S256' ? challenge.length === 43 : challenge.length >= 43 && challenge.length <= 128
      if (!okSize) return back(new AadError('invalid_request', 501491, 'Invalid size of Code_Challenge parameter.'))
    }
    // prompt=none cannot show a sign-in page; the emulator keeps no browser session (AUTH_CODE, prompt).
    if (p.get('prompt') === 'none') {
      return back(new AadError('login_required', 50058, 'A silent sign-in request was sent but no user is signed in.'))
    }
    return {
      kind: 'ok',
      ctx: {
        app, tenantPath, tid: tidFor(app, tenantPath), redirectUri, scopes, state, mode, challenge, method,
        nonce: p.get('nonce') ?? undefined, loginHint: p.get('login_hint') ?? '', params: p,
      },
    }
  }

  /** Send the authorization response to the app by response_mode (AUTH_CODE, response_mode). */
  function respondToApp(res: http.ServerResponse, redirectUri: string, mode: string, fields: Record<string, string | undefined>) {
    const entries = Object.entries(fields).filter((e): e is [string, string] => e[1] !== undefined)
    if (mode === 'form_post') {
      const inputs = entries.map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`).join('')
      return html(res, 200, `<!doctype html><html><head><title>Working...</title></head><body onload="document.forms[0].submit()"><form id="form_post" method="POST" action="${esc(redirectUri)}">${inputs}<noscript><button type="submit">Continue</button></noscript></form></body></html>`)
    }
    const target = new URL(redirectUri)
    const params = mode === 'fragment' ? new URLSearchParams() : target.searchParams
    for (const [k, v] of entries) params.set(k, v)
    if (mode === 'fragment') target.hash = params.toString()
    res.writeHead(302, { Location: target.toString(), 'Cache-Control': 'no-store' })
    res.end()
  }

  function redirectError(res: http.ServerResponse, o: Extract<AuthorizeOutcome, { kind: 'redirect' }>) {
    const meta = traceMeta()
    respondToApp(res, o.redirectUri, o.mode, {
      error: o.err.error,
      error_description: describe(o.err, meta),
      error_uri: `${MS_LOGIN}/error?code=${o.err.code}`,
      state: o.state,
    })
  }

  function authorizeGet(res: http.ServerResponse, tenantPath: string, p: URLSearchParams) {
    const v = validateAuthorize(tenantPath, p)
    if (v.kind === 'page') return errorPage(res, v.err)
    if (v.kind === 'redirect') return redirectError(res, v)
    return consentPage(res, v.ctx, v.ctx.loginHint, undefined, { alreadyGranted: alreadyGranted(v.ctx.app, v.ctx.loginHint, v.ctx.tid, v.ctx.scopes) })
  }

  /** The sign-in + consent form posted back (the user signs in, then consents; AUTH_CODE, request an authorization code). */
  function authorizePost(res: http.ServerResponse, tenantPath: string, form: URLSearchParams) {
    const p = new URLSearchParams()
    for (const [k, v] of form) if (k.startsWith('p:')) p.set(k.slice(2), v)
    const v = validateAuthorize(tenantPath, p)
    if (v.kind === 'page') return errorPage(res, v.err)
    if (v.kind === 'redirect') return redirectError(res, v)
    const { ctx } = v
    const login = form.get('login') ?? ''
    const user = findUser(login)
    // Unknown account → AADSTS50034 UserAccountNotFound (ERRORS); Microsoft shows it on the sign-in page.
    if (!user) {
      const err = new AadError('invalid_request', 50034, `The user account {EmailHidden} does not exist in the '${ctx.tid}' directory. To sign into this application, the account must be added to the directory.`)
      return consentPage(res, ctx, login, err)
    }
    // Signed in on a page that asked no consent, as someone who has not consented yet: now ask.
    if (form.get('signin_only') === '1' && !alreadyGranted(ctx.app, user.email, ctx.tid, ctx.scopes)) return consentPage(res, ctx, login)
    if (form.get('decision') !== 'yes') {
      // Declined consent → access_denied with AADSTS65004 (ERRORS; AUTH_CODE error codes: access_denied).
      return redirectError(res, {
        kind: 'redirect', redirectUri: ctx.redirectUri, state: ctx.state, mode: ctx.mode,
        err: new AadError('access_denied', 65004, 'User declined to consent to access the app.'),
      })
    }
    if (needsAdminApproval(ctx.app, user, ctx.tid, ctx.scopes)) {
      return needAdminApprovalPage(res, ctx.app, user, {
        cancel: (r) => respondToApp(r, ctx.redirectUri, ctx.mode, { error: 'access_denied', error_subcode: 'cancel', state: ctx.state }),
      })
    }
    recordUserConsent(ctx.app, user, ctx.scopes)
    const code = randomBytes(48).toString('base64url')
    codes.set(code, {
      clientId: ctx.app.clientId, redirectUri: ctx.redirectUri, scopes: ctx.scopes, user, tenantPath: ctx.tenantPath,
      tid: ctx.tid, challenge: ctx.challenge, method: ctx.method, nonce: ctx.nonce, issuedAt: nowS(), used: false,
    })
    respondToApp(res, ctx.redirectUri, ctx.mode, { code, state: ctx.state })
  }

  function consentPage(res: http.ServerResponse, ctx: AuthorizeContext, login: string, err?: AadError, o: { alreadyGranted?: boolean } = {}) {
    const hidden = [...ctx.params].map(([k, v]) => `<input type="hidden" name="p:${esc(k)}" value="${esc(v)}">`).join('\n')
    const errHtml = err ? `<div id="error" role="alert">${esc(describe(err, traceMeta()))}</div>` : ''
    if (o.alreadyGranted) return signInOnlyPage(res, ctx, hidden, login)
    permissionsPage(res, { app: ctx.app, scopes: ctx.scopes, extra: errHtml, formId: 'consent', action: `/${ctx.tenantPath}/oauth2/v2.0/authorize`, hidden, login, answers: ['Yes', 'No'] })
  }

  /** The sign-in + consent page the authorize, admin consent and device login steps share: the app, the scopes, a login and two answers. */
  function permissionsPage(res: http.ServerResponse, o: { title?: string; app: EmulatorApp; scopes: string[]; extra?: string; formId: string; action: string; hidden: string; login: string; answers: [string, string] }) {
    const scopeItems = o.scopes.map((s) => `<li><code>${esc(s)}</code> ${esc(scopeLabel(s))}</li>`).join('\n')
    html(res, 200, `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(o.title ?? 'Permissions requested')}</title></head>
<body>
<h1>Permissions requested</h1>
<p id="app">${esc(o.app.name ?? o.app.clientId)} <span id="client-id">(${esc(o.app.clientId)})</span></p>
<p>This app would like to:</p>
<ul id="scopes">
${scopeItems}
</ul>
${o.extra ?? ''}
<form id="${esc(o.formId)}" method="POST" action="${esc(o.action)}">
${o.hidden}
<label for="login">Email, phone, or Skype</label>
<input type="text" id="login" name="login" autocomplete="username" value="${esc(o.login)}">
<button type="submit" name="decision" value="yes">${o.answers[0]}</button>
<button type="submit" name="decision" value="no">${o.answers[1]}</button>
</form>
</body></html>`)
  }

  /** Everything asked for is granted (by this user or an admin for the tenant): a sign-in, no consent prompt. */
  function signInOnlyPage(res: http.ServerResponse, ctx: AuthorizeContext, hidden: string, login: string) {
    html(res, 200, `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to your account</title></head>
<body>
<h1>Sign in</h1>
<p id="app">${esc(ctx.app.name ?? ctx.app.clientId)}</p>
<form id="consent" method="POST" action="/${esc(ctx.tenantPath)}/oauth2/v2.0/authorize">
${hidden}
<input type="hidden" name="signin_only" value="1">
<label for="login">Email, phone, or Skype</label>
<input type="text" id="login" name="login" autocomplete="username" value="${esc(login)}">
<button type="submit" name="decision" value="yes">Sign in</button>
</form>
</body></html>`)
  }

  function errorPage(res: http.ServerResponse, err: AadError) {
    const meta = traceMeta()
    // Errors shown on a web page use HTTP 200 (Azure AD "Authorization Endpoint Errors", previous-versions docs).
    html(res, 200, `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to your account</title></head>
<body>
<h1>Sign in</h1>
<p>Sorry, but we're having trouble signing you in.</p>
<p id="error" role="alert">AADSTS${err.code}: ${esc(err.text)}</p>
<p>Request Id: ${meta.trace}<br>Correlation Id: ${meta.correlation}<br>Timestamp: ${meta.timestamp}</p>
</body></html>`)
  }

  // ---------- /token ----------

  async function tokenEndpointHandler(req: http.IncomingMessage, res: http.ServerResponse, tenantPath: string, body: string) {
    const form = /application\/x-www-form-urlencoded/i.test(req.headers['content-type'] ?? '') ? new URLSearchParams(body) : new URLSearchParams()
    const basic = parseBasic(req.headers.authorization)
    const record: TokenRequestRecord = { grant_type: form.get('grant_type') ?? '', client_id: basic?.id ?? form.get('client_id') ?? undefined, at: new Date(now()) }
    tokenRequests.push(record)
    if (tokenEndpoint.down) {
      record.error = 'down'
      req.socket.destroy()
      return
    }
    if (tokenEndpoint.delayMs) await new Promise((r) => setTimeout(r, tokenEndpoint.delayMs))
    const correlation = typeof req.headers['client-request-id'] === 'string' ? req.headers['client-request-id'] : undefined
    const fail = (err: AadError) => {
      record.error = err.error
      record.aadsts = err.code
      const headers: Record<string, string> = {}
      if (err.status === 401 && basic) headers['WWW-Authenticate'] = 'Basic realm="login.microsoftonline.com"'
      json(res, err.status, errorBody(err, traceMeta(correlation)), headers)
    }
    if (tokenEndpoint.status503) {
      return fail(new AadError('temporarily_unavailable', 90033, 'A transient error has occurred. Please try again.', 503))
    }
    const grantType = form.get('grant_type')
    if (!grantType) return fail(missingParam('grant_type'))
    const clientId = record.client_id
    if (!clientId) return fail(missingParam('client_id'))
    const tenantErr = checkTenant(tenantPath)
    if (tenantErr) return fail(tenantErr)
    const found = checkApp(clientId, tenantPath)
    if ('err' in found) return fail(found.err)
    const { app } = found
    if (!['authorization_code', 'refresh_token', 'client_credentials', DEVICE_CODE_GRANT].includes(grantType)) {
      return fail(new AadError('unsupported_grant_type', 70003, `The app requested an unsupported grant type '${grantType}'.`))
    }
    const presented = basic?.secret ?? form.get('client_secret') ?? undefined
    const authErr = publicDeviceCodeRequest(app, grantType, presented) ? undefined : authenticateClient(app, presented)
    if (authErr) return fail(authErr)
    let out: Record<string, unknown> | AadError
    if (grantType === DEVICE_CODE_GRANT) out = redeemDeviceCode(app, tenantPath, form)
    else if (grantType === 'authorization_code') out = redeemCode(app, tenantPath, form)
    else if (grantType === 'refresh_token') out = redeemRefreshToken(app, form, record)
    else out = clientCredentials(app, tenantPath, form)
    if (out instanceof AadError) return fail(out)
    json(res, 200, out)
  }

  /**
   * Confidential clients send client_secret in the body or with HTTP Basic (AUTH_CODE, client_secret; RFC 6749 §2.3.1).
   * AADSTS7000218 none sent, 7000215 wrong value, 7000222 expired (ERRORS); invalid_client answers 401 (RFC 6749 §5.2).
   */
  function authenticateClient(app: EmulatorApp, secret: string | undefined): AadError | undefined {
    if (!secret) return new AadError('invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.", 401)
    if (!safeEqual(secret, app.clientSecret)) {
      return new AadError('invalid_client', 7000215, `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${app.clientId}'.`, 401)
    }
    if (app.secretExpiresAt && app.secretExpiresAt.getTime() <= now()) {
      return new AadError('invalid_client', 7000222, `The provided client secret keys for app '${app.clientId}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds`, 401)
    }
    return undefined
  }

  /** Redeem a code (AUTH_CODE, redeem a code for an access token; RFC 6749 §4.1.3, PKCE RFC 7636 §4.6). */
  function redeemCode(app: EmulatorApp, tenantPath: string, form: URLSearchParams): Record<string, unknown> | AadError {
    const code = form.get('code')
    if (!code) return missingParam('code')
    const redirectUri = form.get('redirect_uri')
    if (!redirectUri) return missingParam('redirect_uri')
    const grant = codes.get(code)
    if (!grant) return new AadError('invalid_grant', 9002313, 'Invalid request. Request is malformed or invalid.')
    // A code can be redeemed once: AADSTS54005 (ERRORS).
    if (grant.used) return new AadError('invalid_grant', 54005, 'OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.')
    // Expired code: AADSTS70008 ExpiredOrRevokedGrant (ERRORS), with the wording Microsoft uses for codes.
    if (nowS() - grant.issuedAt > CODE_LIFETIME_S) {
      return new AadError('invalid_grant', 70008, 'The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.')
    }
    // Microsoft documents no code for a code issued to another client; AADSTS70000 InvalidGrant is its generic one (ERRORS).
    if (grant.clientId !== app.clientId) return new AadError('invalid_grant', 70000, 'Provided grant is invalid or malformed.')
    // "must be redeemed against same tenant it was acquired for": AADSTS700005 (ERRORS).
    if (grant.tenantPath.toLowerCase() !== tenantPath.toLowerCase()) {
      return new AadError('invalid_grant', 700005, 'Provided Authorization Code is intended to use against other tenant, thus rejected.')
    }
    // redirect_uri must be "the same redirect_uri value that was used to acquire the authorization_code" (AUTH_CODE).
    // Microsoft documents no number for a mismatch here; AADSTS50011 is the /authorize page error. The token endpoint
    // answers invalid_grant AADSTS70000 with this text (Microsoft Q&A 193411, "The provided value for the
    // 'redirect_uri' is not valid..."), so that is what the emulator returns.
    if (grant.redirectUri !== redirectUri) {
      return new AadError('invalid_grant', 70000, "The provided value for the 'redirect_uri' is not valid. The value must exactly match the redirect URI used to obtain the authorization code.")
    }
    // code_verifier is "Required if PKCE was used"; a mismatch is AADSTS501481 (ERRORS).
    if (grant.challenge) {
      const verifier = form.get('code_verifier') ?? ''
      if (verifier) verifiersSeen.push(verifier)
      const computed = grant.method === 'S256' ? createHash('sha256').update(verifier).digest('base64url') : verifier
      if (!verifier || !safeEqual(computed, grant.challenge)) {
        return new AadError('invalid_grant', 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.")
      }
    }
    // scope at redemption: "must all be from a single resource, along with OIDC scopes" (AUTH_CODE); a scope the app
    // has no consent for gives consent_required (AUTH_CODE, error codes for token endpoint errors; AADSTS65001).
    const requested = form.has('scope') ? splitScopes(form.get('scope')) : undefined
    if (requested) {
      const refused = checkRequestedScopes(requested, consentedScopes(app, grant.user, grant.tid), app, 'consent_required')
      if (refused) return refused
    }
    grant.used = true
    return issueUserTokens(app, grant.user, grant.scopes, grant.tid, requested, { nonce: grant.nonce })
  }

  /**
   * Refresh (AUTH_CODE, refresh the access token; REFRESH). Every use returns a new refresh token, and the old one
   * "isn't revoked when used to acquire new access tokens" — so the emulator keeps it valid too.
   */
  function redeemRefreshToken(app: EmulatorApp, form: URLSearchParams, record: TokenRequestRecord): Record<string, unknown> | AadError {
    const token = form.get('refresh_token')
    if (!token) return missingParam('refresh_token')
    const rt = refreshTokens.get(token)
    if (!rt) return new AadError('invalid_grant', 9002313, 'Invalid request. Request is malformed or invalid.')
    record.refreshGeneration = rt.generation
    if (rt.clientId !== app.clientId) return new AadError('invalid_grant', 70000, 'Provided grant is invalid or malformed.')
    const issued = isoDate(rt.issuedAt)
    // Revoked (password reset, revoke sessions) → AADSTS50173 FreshTokenNeeded (ERRORS; REFRESH, revocation).
    if (rt.state === 'revoked') {
      return new AadError('invalid_grant', 50173, `The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '${issued}' and the TokensValidFrom date (before which tokens are not valid) for this user is '${isoDate(nowS())}'.`)
    }
    // Unused for 90 days → AADSTS700082 ExpiredOrRevokedGrantInactiveToken (ERRORS; REFRESH, token lifetime).
    if (rt.state === 'expired') {
      return new AadError('invalid_grant', 700082, `The refresh token has expired due to inactivity. The token was issued on ${issued} and was inactive for 90.00:00:00.`)
    }
    const requested = form.has('scope') ? splitScopes(form.get('scope')) : undefined
    if (requested) {
      // Refresh tokens are "valid for all permissions that your client has already received consent for" (AUTH_CODE),
      // whatever resource: one refresh token buys an access token for each consented resource, one resource a request.
      const refused = checkRequestedScopes(requested, consentedScopes(app, rt.user, rt.tid), app, 'invalid_grant')
      if (refused) return refused
    }
    return issueUserTokens(app, rt.user, rt.scopes, rt.tid, requested, { chain: rt })
  }

  /** App-only token (CLIENT_CREDS): a tenant id is required, the scope is `<resource>/.default`, no refresh token. */
  function clientCredentials(app: EmulatorApp, tenantPath: string, form: URLSearchParams): Record<string, unknown> | AadError {
    const t = tenantPath.toLowerCase()
    // AADSTS9001023 on /common and /consumers (ERRORS). Microsoft's text names /organizations as an alternative, but
    // the client-credentials page requires "the directory tenant ... in GUID or domain-name format", and no code is
    // documented for /organizations, so the emulator refuses it with the same error.
    if (t === 'common' || t === 'consumers' || t === 'organizations') {
      return new AadError('invalid_request', 9001023, 'The grant type is not supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.')
    }
    const scopes = splitScopes(form.get('scope'))
    if (!scopes.length) return missingParam('scope')
    // AADSTS1002012: "Client credential flows must have a scope value with /.default suffixed" (field reports, e.g.
    // MicrosoftDocs/azure-docs#99862; the client-credentials page documents only the /.default form).
    const bad = scopes.find((s) => !s.endsWith('/.default'))
    // Two resources' /.default in one request: AADSTS70011 "The scope A B is not valid" (field reports, e.g.
    // AzureAD/microsoft-authentication-library-for-js#6069, Azure/azure-sdk-for-net#9076): one token is for one resource.
    if (!bad && scopes.length > 1) {
      return new AadError('invalid_scope', 70011, `The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope ${scopes.join(' ')} is not valid.`)
    }
    if (bad) {
      return new AadError('invalid_scope', 1002012, `The provided value for scope ${bad} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`)
    }
    const scope = scopes[0] as string
    const resource = resourceOf(scope)
    if (!resource) {
      return new AadError('invalid_resource', 500011, `The resource principal named ${scope.slice(0, -'/.default'.length)} was not found in the tenant named ${tenantPath}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`)
    }
    // The app needs a service principal in the tenant: its home tenant has one; another tenant only after an admin
    // consented (AADSTS700016 otherwise, ERRORS). The token carries the application permissions consented there as
    // `roles`; with none it is still issued, without roles, and the resource refuses it (CLIENT_CREDS, roles claim).
    const tid = GUID.test(tenantPath) ? tenantPath.toLowerCase() : (app.tenant ?? tenantPath).toLowerCase()
    const granted = appAccess.get(`${app.clientId} ${tid}`)
    if (!granted && app.tenant?.toLowerCase() !== tid) {
      return new AadError('unauthorized_client', 700016, `Application with identifier '${app.clientId}' was not found in the directory '${tenantPath}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`)
    }
    const ttl = tokenLifetime()
    const at = storeAccessToken({ clientId: app.clientId, scope, resource: new URL(scope).origin, sub: servicePrincipalId(app.clientId), ttl, roles: [...(granted?.roles ?? [])], tid })
    // No refresh token and no id_token: "just request a new token" (CLIENT_CREDS, successful response).
    return { token_type: 'Bearer', expires_in: ttl, ext_expires_in: ttl, access_token: at }
  }

  function notConsented(error: string, app: EmulatorApp) {
    return new AadError(error, 65001, `The user or administrator has not consented to use the application with ID '${app.clientId}' named '${app.name ?? app.clientId}'. Send an interactive authorization request for this user and resource.`)
  }

  /**
   * Issue the token response (AUTH_CODE, successful response): one access token for one resource — the resource of the
   * first requested scope (AUTH_CODE, refresh: "returns a token for the resource specified in the first scope") —
   * carrying every scope consented for that resource; refresh_token only with offline_access; id_token only with openid.
   */
  function issueUserTokens(
    app: EmulatorApp, user: User, grantScopes: string[], tid: string, requested: string[] | undefined,
    o: { nonce?: string; chain?: RefreshGrant },
  ): Record<string, unknown> {
    const consented = [...consentedScopes(app, user, tid)]
    const wanted = resourceScopes(requested ?? grantScopes)
    const first = wanted[0] ?? resourceScopes(grantScopes)[0]
    let scope: string
    let resource: string
    if (first) {
      const r = resourceOf(first)
      scope = consented.filter((s) => resourceOf(s) === r).join(' ')
      resource = first.includes('/') ? new URL(first).origin : GRAPH
    } else {
      // Only OIDC scopes: Microsoft answers with a Graph token for the user's profile.
      scope = grantScopes.filter((s) => OIDC_SCOPES.has(s) && s !== 'offline_access').join(' ')
      resource = GRAPH
    }
    const ttl = tokenLifetime()
    const sub = pairwiseSub(user, app.clientId)
    const body: Record<string, unknown> = {
      token_type: 'Bearer',
      scope,
      expires_in: ttl,
      ext_expires_in: ttl,
      access_token: storeAccessToken({ user, clientId: app.clientId, scope, resource, sub, ttl }),
    }
    const lower = new Set(grantScopes.map((s) => s.toLowerCase()))
    if (lower.has('offline_access')) {
      const rt = randomBytes(64).toString('base64url')
      refreshTokens.set(rt, {
        token: rt, chain: o.chain?.chain ?? randomUUID(), generation: (o.chain?.generation ?? 0) + 1, clientId: app.clientId,
        user, scopes: grantScopes, tid, issuedAt: nowS(), state: 'valid',
      })
      body.refresh_token = rt
    }
    if (lower.has('openid')) body.id_token = idToken(app, user, tid, lower, o.nonce)
    return body
  }

  /** ID token claims (ID_TOKEN): preferred_username, name and oid need `profile`; email needs `email`. */
  function idToken(app: EmulatorApp, user: User, tid: string, scopes: Set<string>, nonce?: string) {
    const iat = nowS()
    const claims: Record<string, unknown> = {
      ver: '2.0',
      iss: `${MS_LOGIN}/${tid}/v2.0`,
      sub: pairwiseSub(user, app.clientId),
      aud: app.clientId,
      exp: iat + ID_TOKEN_LIFETIME_S,
      iat,
      nbf: iat,
      tid,
    }
    if (nonce) claims.nonce = nonce
    if (scopes.has('profile')) {
      claims.oid = user.oid
      claims.preferred_username = user.upn
      claims.name = user.name
    }
    if (scopes.has('email')) claims.email = user.email
    return signJwt(claims)
  }

  function signJwt(claims: Record<string, unknown>) {
    const head = b64json({ typ: 'JWT', alg: 'RS256', kid })
    const payload = b64json(claims)
    const sig = sign('sha256', Buffer.from(`${head}.${payload}`), privateKey).toString('base64url')
    return `${head}.${payload}.${sig}`
  }

  function storeAccessToken(o: { user?: User; clientId?: string; scope: string; resource: string; sub: string; ttl: number; roles?: string[]; tid?: string }) {
    const token = randomBytes(48).toString('base64url') // opaque: "treat them as opaque" (access-tokens doc)
    const iat = nowS()
    accessTokens.set(token, { token, user: o.user, clientId: o.clientId, scope: o.scope, resource: o.resource, sub: o.sub, iat, exp: iat + o.ttl, active: true, roles: o.roles, tid: o.tid })
    return token
  }

  function pairwiseSub(user: User, clientId: string) {
    // "The subject is a pairwise identifier and is unique to an application ID" (ID_TOKEN, sub).
    return createHash('sha256').update(`${user.oid}|${clientId}`).digest('base64url').slice(0, 43)
  }
  function servicePrincipalId(clientId: string) {
    const h = createHash('sha256').update(`sp|${clientId}`).digest('hex')
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`
  }

  // ---------- consent policy and admin consent (USER_CONSENT, ADMIN_CONSENT) ----------

  /** What the user consented to, plus what an admin granted the app for the user's whole tenant. */
  function consentedScopes(app: EmulatorApp, user: User, tid: string): Set<string> {
    return new Set([...(consents.get(`${app.clientId} ${user.email.toLowerCase()}`) ?? []), ...(adminGrants.get(`${app.clientId} ${tid.toLowerCase()}`) ?? [])])
  }
  const missingConsent = (app: EmulatorApp, user: User, tid: string, scopes: string[]) => {
    const consented = consentedScopes(app, user, tid)
    return resourceScopes(scopes).filter((s) => !consentedTo(consented, s))
  }
  /** Every permission asked for is granted already: Microsoft signs the user in without a consent prompt. */
  function alreadyGranted(app: EmulatorApp, login: string, tid: string, scopes: string[]): boolean {
    const user = login ? findUser(login) : undefined
    return !!user && missingConsent(app, user, tid, scopes).length === 0
  }
  /**
   * "Do not allow user consent" (USER_CONSENT): a user asked for permissions nobody granted meets "Need admin
   * approval"; an administrator may still consent (for themselves, on this page).
   */
  function needsAdminApproval(app: EmulatorApp, user: User, tid: string, scopes: string[]): boolean {
    return consentPolicies.get(tid.toLowerCase()) === 'admin_only' && !user.admin && missingConsent(app, user, tid, scopes).length > 0
  }
  function recordUserConsent(app: EmulatorApp, user: User, scopes: string[]) {
    const key = `${app.clientId} ${user.email.toLowerCase()}`
    const consented = consents.get(key) ?? new Set<string>()
    for (const s of resourceScopes(scopes)) if (!consentedTo(consented, s)) consented.add(s)
    consents.set(key, consented)
  }

  /**
   * The "Need admin approval" page, with AADSTS90094 in its technical details (ERRORS: AdminConsentRequired). Its
   * "Return to the application without granting consent" sends `error=access_denied&error_subcode=cancel` and the
   * state, with no error_description: what Microsoft sends, as a field report measured it (2026-08, a non-admin in
   * another tenant: `?error=access_denied&error_subcode=cancel&state=…`). Microsoft documents no redirect here.
   */
  const pendingCancels = new Map<string, (res: http.ServerResponse) => void>()
  function needAdminApprovalPage(res: http.ServerResponse, app: EmulatorApp, user: User, o: { cancel: (res: http.ServerResponse) => void }) {
    const ticket = randomBytes(16).toString('base64url')
    pendingCancels.set(ticket, o.cancel)
    const meta = traceMeta()
    html(res, 200, `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Need admin approval</title></head>
<body>
<p>${esc(user.email)}</p>
<h1>Need admin approval</h1>
<p id="app">${esc(app.name ?? app.clientId)} needs permission to access resources in your organization that only an admin can grant. Please ask an admin to grant permission to this app before you can use it.</p>
<p>Have an admin account? Sign in with that account</p>
<form id="cancel" method="POST" action="/cancel"><input type="hidden" name="ticket" value="${esc(ticket)}"><button type="submit">Return to the application without granting consent</button></form>
<details><summary>Technical details</summary><p id="error">AADSTS90094: The grant requires admin permission.</p><p>Correlation Id: ${meta.correlation}<br>Timestamp: ${meta.timestamp}</p></details>
</body></html>`)
  }
  function cancelConsent(res: http.ServerResponse, form: URLSearchParams) {
    const cancel = pendingCancels.get(form.get('ticket') ?? '')
    if (!cancel) return errorPage(res, new AadError('invalid_request', 9002313, 'Invalid request. Request is malformed or invalid.'))
    pendingCancels.delete(form.get('ticket') ?? '')
    cancel(res)
  }

  /**
   * GET /{tenant}/v2.0/adminconsent (ADMIN_CONSENT, request the permissions from a directory admin): client_id,
   * redirect_uri and scope required, state recommended. Errors Microsoft cannot send back to an untrusted redirect
   * URI are pages, as at /authorize.
   */
  function validateAdminConsent(tenantPath: string, p: URLSearchParams): { err: AadError; page: boolean } | { app: EmulatorApp; redirectUri: string; scopes: string[]; state?: string; tid: string } {
    const found = findClient(p.get('client_id'), tenantPath)
    if ('err' in found) return { err: found.err, page: true }
    const clientId = found.app.clientId
    const redirectUri = p.get('redirect_uri')
    if (!redirectUri) return { err: new AadError('invalid_request', 900971, 'No reply address provided.'), page: true }
    if (!found.app.redirectUris.includes(redirectUri)) {
      return { err: new AadError('invalid_request', 50011, `The redirect URI '${redirectUri}' specified in the request does not match the redirect URIs configured for the application '${clientId}'.`), page: true }
    }
    const scopes = splitScopes(p.get('scope'))
    if (!scopes.length) return { err: missingParam('scope'), page: false }
    const unknown = scopes.find((s) => resourceOf(s) === null)
    if (unknown) return { err: invalidScope(unknown), page: false }
    return { app: found.app, redirectUri, scopes, state: p.get('state') ?? undefined, tid: tidFor(found.app, tenantPath) }
  }

  function adminConsentGet(res: http.ServerResponse, tenantPath: string, p: URLSearchParams) {
    const v = validateAdminConsent(tenantPath, p)
    if ('err' in v) return v.page ? errorPage(res, v.err) : adminConsentAnswer(res, p.get('redirect_uri')!, { error: v.err, state: p.get('state') ?? undefined })
    const hidden = [...p].map(([k, val]) => `<input type="hidden" name="p:${esc(k)}" value="${esc(val)}">`).join('\n')
    permissionsPage(res, {
      title: 'Permissions requested - Accept for your organization', app: v.app, scopes: v.scopes, formId: 'admin-consent', action: `/${tenantPath}/v2.0/adminconsent`, hidden, login: '', answers: ['Accept', 'Cancel'],
      extra: '<p>If you accept, this app will get access to the specified resources for all users in your organization. No one else will be prompted to review these permissions.</p>',
    })
  }

  /** The admin signs in and answers (ADMIN_CONSENT): only an administrator of the tenant can grant for it. */
  function adminConsentPost(res: http.ServerResponse, tenantPath: string, form: URLSearchParams) {
    const p = new URLSearchParams()
    for (const [k, val] of form) if (k.startsWith('p:')) p.set(k.slice(2), val)
    const v = validateAdminConsent(tenantPath, p)
    if ('err' in v) return v.page ? errorPage(res, v.err) : adminConsentAnswer(res, p.get('redirect_uri')!, { error: v.err, state: p.get('state') ?? undefined })
    const user = findUser(form.get('login') ?? '')
    if (!user) return errorPage(res, new AadError('invalid_request', 50034, `The user account {EmailHidden} does not exist in the '${v.tid}' directory.`))
    if (form.get('decision') !== 'yes') {
      // The error response of ADMIN_CONSENT, word for word: consent_required with AADSTS65004, and admin_consent=True.
      return adminConsentAnswer(res, v.redirectUri, { error: new AadError('consent_required', 65004, 'The resource owner or authorization server denied the request.'), state: v.state })
    }
    // A user who is not an administrator cannot grant for the tenant: AADSTS90093 "Calling principal cannot consent due
    // to lack of permissions" (ERRORS: GraphUserUnauthorized; field report OfficeDev/O365-Windows-Start#23), on a page.
    if (!user.admin) return errorPage(res, new AadError('invalid_request', 90093, 'Calling principal cannot consent due to lack of permissions.'))
    const key = `${v.app.clientId} ${v.tid.toLowerCase()}`
    const granted = adminGrants.get(key) ?? new Set<string>()
    for (const s of resourceScopes(v.scopes)) granted.add(s)
    adminGrants.set(key, granted)
    adminConsentAnswer(res, v.redirectUri, { tenant: v.tid, scope: v.scopes.join(' '), state: v.state })
  }

  /** ADMIN_CONSENT's responses: `admin_consent=True` with `tenant` and `scope`, or with `error` and `error_description`. */
  function adminConsentAnswer(res: http.ServerResponse, redirectUri: string, o: { tenant?: string; scope?: string; state?: string; error?: AadError }) {
    respondToApp(res, redirectUri, 'query', {
      admin_consent: 'True',
      tenant: o.tenant,
      scope: o.scope,
      error: o.error?.error,
      error_description: o.error ? describe(o.error, traceMeta()) : undefined,
      state: o.state,
    })
  }

  // ---------- device authorization grant (DEVICE_CODE; RFC 8628) ----------

  /**
   * POST /{tenant}/oauth2/v2.0/devicecode with client_id and scope (DEVICE_CODE, device authorization request): the
   * user has 15 minutes (`expires_in` 900) and the client polls every `interval` (5) seconds.
   */
  function deviceAuthorization(res: http.ServerResponse, tenantPath: string, form: URLSearchParams) {
    const fail = (err: AadError) => json(res, err.status, errorBody(err, traceMeta()))
    const found = findClient(form.get('client_id'), tenantPath)
    if ('err' in found) return fail(found.err)
    const clientId = found.app.clientId
    const scopes = splitScopes(form.get('scope'))
    if (!scopes.length) return fail(missingParam('scope'))
    const unknown = scopes.find((s) => resourceOf(s) === null)
    if (unknown) return fail(invalidScope(unknown))
    const deviceCode = randomBytes(48).toString('base64url')
    // Eight letters and digits, as Microsoft's (e.g. "YZMYLD4K" in Microsoft Q&A 981553); no 0/O or 1/I to misread.
    const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789'
    const userCode = Array.from({ length: 8 }, () => alphabet[randomInt(alphabet.length)]).join('')
    const verificationUri = `${url}/devicelogin`
    deviceGrants.set(deviceCode, {
      deviceCode, userCode, clientId, tenantPath, tid: tidFor(found.app, tenantPath), scopes, issuedAt: now(),
      expiresAt: now() + DEVICE_CODE_LIFETIME_S * 1000, interval: DEVICE_CODE_INTERVAL_S, state: 'pending', polls: 0,
    })
    json(res, 200, {
      user_code: userCode,
      device_code: deviceCode,
      verification_uri: verificationUri,
      expires_in: DEVICE_CODE_LIFETIME_S,
      interval: DEVICE_CODE_INTERVAL_S,
      message: `To sign in, use a web browser to open the page ${verificationUri} and enter the code ${userCode} to authenticate.`,
    })
  }

  /**
   * A device code may be redeemed without a secret only when the app allows public client flows; otherwise the app is
   * a confidential client and must authenticate as at any grant (AADSTS7000218 without its secret: Microsoft Q&A
   * 446907, a "Web" app polling without one). A secret that is sent is checked either way.
   */
  const publicDeviceCodeRequest = (app: EmulatorApp, grantType: string, presented: string | undefined) =>
    grantType === DEVICE_CODE_GRANT && presented === undefined && app.allowPublicClient === true

  /**
   * The device code token request (DEVICE_CODE, authenticating the user; RFC 8628 §3.4, §3.5): pending until the user
   * finishes, then the tokens once; Microsoft's expected errors with the ERRORS numbers (70016 pending, 70018 bad
   * code, 70019 expired). RFC 8628 §3.5's `slow_down` answers a poll sooner than `interval` and adds 5 seconds to it
   * (Microsoft's page only says to wait `interval`). Microsoft gives no number for `authorization_declined`; 70017,
   * between those ERRORS lists, stands in, and clients must read `error`, not the number.
   */
  function redeemDeviceCode(app: EmulatorApp, tenantPath: string, form: URLSearchParams): Record<string, unknown> | AadError {
    const code = form.get('device_code')
    if (!code) return missingParam('device_code')
    const g = deviceGrants.get(code)
    if (!g || g.clientId !== app.clientId || g.tenantPath.toLowerCase() !== tenantPath.toLowerCase()) {
      return new AadError('bad_verification_code', 70018, 'Invalid verification code due to User typing in wrong user code for device code flow. Authorization is not approved.')
    }
    g.polls++
    const at = now()
    if (at >= g.expiresAt) {
      deviceGrants.delete(code)
      return new AadError('expired_token', 70019, 'Verification code expired. Have the user retry the sign-in.')
    }
    if (g.state === 'declined') {
      deviceGrants.delete(code)
      return new AadError('authorization_declined', 70017, 'OAuth 2.0 device flow error. The end user denied the authorization request.')
    }
    if (g.state === 'pending') {
      const early = g.lastPollAt !== undefined && at - g.lastPollAt < g.interval * 1000
      g.lastPollAt = at
      if (early) {
        g.interval += 5
        return new AadError('slow_down', 70016, 'OAuth 2.0 device flow error. Polling too frequently: wait the interval between requests.')
      }
      return new AadError('authorization_pending', 70016, 'OAuth 2.0 device flow error. Authorization is pending. Continue polling.')
    }
    // A device code buys its tokens once (RFC 8628 §3.5): afterwards it is unknown.
    deviceGrants.delete(code)
    return issueUserTokens(app, g.user!, g.scopes, g.tid, undefined, {})
  }

  /**
   * The verification page (`verification_uri`): enter the code, sign in, consent (or meet "Need admin approval"),
   * then "You have signed in to <app> on your device". POSTs carry `step`.
   */
  function deviceLogin(req: http.IncomingMessage, res: http.ServerResponse, form: URLSearchParams) {
    const step = req.method === 'POST' ? form.get('step') : null
    const code = (form.get('otc') ?? '').trim().toUpperCase()
    const g = [...deviceGrants.values()].find((x) => x.userCode === code && x.state === 'pending' && now() < x.expiresAt)
    if (!step || !g) {
      const err = step ? `<p id="error" role="alert">That code didn't work. Check the code and try again.</p>` : ''
      return html(res, 200, `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Enter code</title></head>
<body><h1>Enter code</h1><p>Enter the code displayed on your app or device.</p>${err}
<form id="device-code" method="POST" action="/devicelogin"><input type="hidden" name="step" value="code">
<label for="otc">Code</label><input type="text" id="otc" name="otc" autocomplete="off">
<button type="submit">Next</button></form></body></html>`)
    }
    const app = apps.get(g.clientId)!
    const signInForm = (error = '') =>
      permissionsPage(res, {
        app, scopes: g.scopes, formId: 'device-consent', action: '/devicelogin', login: '', answers: ['Continue', 'Cancel'],
        hidden: `<input type="hidden" name="step" value="consent"><input type="hidden" name="otc" value="${esc(g.userCode)}">`,
        extra: `<p>Are you trying to sign in to ${esc(app.name ?? app.clientId)}? Only continue if you downloaded the app from a store or website that you trust.</p>${error}`,
      })
    if (step === 'code') return signInForm()
    const user = findUser(form.get('login') ?? '')
    if (!user) return signInForm(`<p id="error" role="alert">AADSTS50034: The user account {EmailHidden} does not exist in the '${esc(g.tid)}' directory.</p>`)
    const done = (text: string) => html(res, 200, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(app.name ?? app.clientId)}</title></head><body><h1>${esc(app.name ?? app.clientId)}</h1><p id="outcome">${esc(text)}</p></body></html>`)
    if (form.get('decision') !== 'yes') {
      g.state = 'declined'
      return done('You have declined to sign in to the application on your device. You may now close this window.')
    }
    if (needsAdminApproval(app, user, g.tid, g.scopes)) {
      return needAdminApprovalPage(res, app, user, {
        cancel: (r) => {
          g.state = 'declined'
          html(r, 200, '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Cancelled</title></head><body><p id="outcome">You cancelled the sign-in. You may now close this window.</p></body></html>')
        },
      })
    }
    recordUserConsent(app, user, g.scopes)
    g.state = 'approved'
    g.user = user
    done(`You have signed in to the ${app.name ?? app.clientId} application on your device. You may now close this window.`)
  }

  // ---------- keys and discovery ----------

  /** JWKS for id_token signatures (OpenID Connect Discovery 1.0; Microsoft serves it at /discovery/v2.0/keys). */
  function jwks() {
    const jwk = publicKey.export({ format: 'jwk' })
    return { keys: [{ kty: 'RSA', use: 'sig', alg: 'RS256', kid, n: jwk.n, e: jwk.e }] }
  }

  /** OpenID configuration; on /common the issuer is the {tenantid} template, as Microsoft publishes it. */
  function openidConfiguration(tenantPath: string) {
    const base = `${url}/${tenantPath}`
    const issuerTenant = GUID.test(tenantPath) ? tenantPath.toLowerCase() : '{tenantid}'
    return {
      issuer: `${MS_LOGIN}/${issuerTenant}/v2.0`,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      token_endpoint: `${base}/oauth2/v2.0/token`,
      jwks_uri: `${base}/discovery/v2.0/keys`,
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      response_modes_supported: ['query', 'fragment', 'form_post'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      token_endpoint_auth_methods_supported: ['client_secret_post', 'client_secret_basic', 'private_key_jwt'],
      code_challenge_methods_supported: ['plain', 'S256'],
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nbf', 'nonce', 'preferred_username', 'name', 'tid', 'ver', 'oid', 'email'],
      tenant_region_scope: null,
    }
  }

  // ---------- introspection (RFC 7662) ----------

  /**
   * RFC 7662 §2.2: {"active":false} for unknown, expired or revoked tokens, and nothing else about them.
   * An app-only token has no resource owner, so no `username`; a peer may pass the mailbox it is asked for as the
   * optional `username` parameter (RFC 7662 §2.1 allows extra context), and the answer names it only when an admin
   * gave the app's service principal that mailbox (Add-MailboxPermission) — Exchange's own check.
   */
  function introspect(token: string | null, mailbox?: string | null): Record<string, unknown> {
    const at = token ? accessTokens.get(token) : undefined
    if (!at || !at.active || at.exp <= nowS()) return { active: false }
    const out: Record<string, unknown> = { active: true, token_type: 'Bearer', scope: at.scope, exp: at.exp, iat: at.iat, sub: at.sub, aud: at.resource }
    if (at.clientId) out.client_id = at.clientId
    if (at.user) {
      out.username = at.user.email
      out.email = at.user.email
      out.upn = at.user.upn
    }
    if (at.roles) {
      out.roles = at.roles.join(' ')
      out.tid = at.tid
      const wanted = mailbox?.trim().toLowerCase()
      if (wanted && appAccess.get(`${at.clientId} ${at.tid}`)?.mailboxes.has(wanted)) out.username = wanted
    }
    return out
  }

  // ---------- servers ----------

  const main = https.createServer({ key: tlsKey, cert: tlsCert }, (req, res) => {
    void handleMain(req, res).catch((e: unknown) => {
      if (!res.headersSent) json(res, 500, { error: 'server_error', error_description: String(e) })
    })
  })

  async function handleMain(req: http.IncomingMessage, res: http.ServerResponse) {
    const u = new URL(req.url ?? '/', url)
    const body = await readBody(req)
    const parts = u.pathname.split('/').filter(Boolean)
    const tenantPath = decodeURIComponent(parts[0] ?? '')
    const rest = parts.slice(1).join('/')
    if (u.pathname === '/devicelogin') return deviceLogin(req, res, new URLSearchParams(body))
    if (u.pathname === '/cancel' && req.method === 'POST') return cancelConsent(res, new URLSearchParams(body))
    if (rest === 'v2.0/adminconsent') {
      if (req.method === 'GET') return adminConsentGet(res, tenantPath, u.searchParams)
      if (req.method === 'POST') return adminConsentPost(res, tenantPath, new URLSearchParams(body))
    }
    if (rest === 'oauth2/v2.0/devicecode' && req.method === 'POST') return deviceAuthorization(res, tenantPath, new URLSearchParams(body))
    if (rest === 'oauth2/v2.0/authorize') {
      if (req.method === 'GET') return authorizeGet(res, tenantPath, u.searchParams)
      if (req.method === 'POST') return authorizePost(res, tenantPath, new URLSearchParams(body))
    }
    if (rest === 'oauth2/v2.0/token') {
      if (req.method === 'POST') return tokenEndpointHandler(req, res, tenantPath, body)
      // AADSTS900561: "The endpoint only accepts POST requests" (ERRORS).
      return json(res, 400, errorBody(new AadError('invalid_request', 900561, `The endpoint only accepts POST, OPTIONS requests. Received a ${req.method} request.`), traceMeta()))
    }
    if (req.method === 'GET' && rest === 'discovery/v2.0/keys') return json(res, 200, jwks())
    if (req.method === 'GET' && rest === 'v2.0/.well-known/openid-configuration') return json(res, 200, openidConfiguration(tenantPath))
    json(res, 404, { error: 'not_found' })
  }

  const side = http.createServer((req, res) => {
    void (async () => {
      const u = new URL(req.url ?? '/', 'http://127.0.0.1')
      const body = await readBody(req)
      if (req.method === 'POST' && u.pathname === '/introspect') {
        const form = new URLSearchParams(body)
        return json(res, 200, introspect(form.get('token'), form.get('username')))
      }
      if (req.method === 'GET' && u.pathname === '/tokeninfo') return json(res, 200, introspect(u.searchParams.get('access_token')))
      json(res, 404, { error: 'not_found' })
    })().catch(() => res.destroy())
  })

  const mainPort = await listen(main)
  const sidePort = await listen(side)
  url = `https://127.0.0.1:${mainPort}`

  return {
    url,
    tenantId: homeTenant,
    introspectUrl: `http://127.0.0.1:${sidePort}/introspect`,
    tokenRequests,
    endpoint: (tenant) => `${url}/${tenant ?? 'common'}/oauth2/v2.0/`,
    registerApp(app) {
      apps.set(app.clientId, { ...app, redirectUris: [...app.redirectUris] })
    },
    addUser(email, o = {}) {
      users.set(email.toLowerCase(), { email, upn: o.upn ?? email, name: o.name ?? email.split('@')[0] ?? email, oid: randomUUID(), admin: o.admin })
    },
    consent: (authorizeUrl, o) => driveConsent(authorizeUrl, o, ca),
    mintAccessToken(o) {
      const user = findUser(o.user) ?? { email: o.user, upn: o.user, name: o.user, oid: randomUUID() }
      const scope = o.scope ?? `${OUTLOOK_SMTP_SEND} ${OUTLOOK_IMAP}`
      const first = splitScopes(scope).find((s) => s.includes('://'))
      return storeAccessToken({ user, scope, resource: first ? new URL(first).origin : GRAPH, sub: pairwiseSub(user, 'minted'), ttl: o.ttlSeconds ?? tokenLifetime() })
    },
    revokeUser(email) {
      const l = email.toLowerCase()
      for (const rt of refreshTokens.values()) if (rt.user.email.toLowerCase() === l) rt.state = 'revoked'
      for (const at of accessTokens.values()) if (at.user?.email.toLowerCase() === l) at.active = false
    },
    expireRefreshTokens(email) {
      const l = email.toLowerCase()
      for (const rt of refreshTokens.values()) if (rt.user.email.toLowerCase() === l && rt.state === 'valid') rt.state = 'expired'
    },
    expireAccessTokens(email) {
      const l = email?.toLowerCase()
      for (const at of accessTokens.values()) if (!l || at.user?.email.toLowerCase() === l) at.exp = Math.min(at.exp, nowS())
    },
    setTokenEndpoint(b) {
      tokenEndpoint = { ...b }
    },
    latestRefreshToken(email) {
      const l = email.toLowerCase()
      let best: RefreshGrant | undefined
      for (const rt of refreshTokens.values()) if (rt.user.email.toLowerCase() === l) best = rt // Map keeps insertion order
      return best?.token
    },
    issuedSecrets: () => [...codes.keys(), ...refreshTokens.keys(), ...accessTokens.keys(), ...verifiersSeen],
    tokenInfo(token) {
      const at = accessTokens.get(token)
      if (!at) return undefined
      // scp holds bare permission names; OIDC scopes are not permissions of the resource, and an app-only token has
      // roles instead (ACCESS_TOKENS, scp and roles).
      const scp = at.roles ? [] : splitScopes(at.scope).filter((s) => resourceOf(s)).map((s) => s.slice(s.lastIndexOf('/') + 1))
      return { active: at.active, aud: at.resource, scp, roles: [...(at.roles ?? [])], user: at.user?.email, appId: at.clientId, tid: at.tid, exp: at.exp }
    },
    setConsentPolicy(o) {
      consentPolicies.set((o.tenant ?? homeTenant).toLowerCase(), o.userConsent)
    },
    adminGrants: (clientId, tenant) => [...(adminGrants.get(`${clientId} ${(tenant ?? homeTenant).toLowerCase()}`) ?? [])],
    deviceSignIns: () => [...deviceGrants.values()].map((g) => ({ userCode: g.userCode, clientId: g.clientId, state: g.state, polls: g.polls })),
    completeDeviceSignIn: (userCode, o) => driveDeviceLogin(`${url}/devicelogin`, userCode, o, ca),
    grantAppAccess(o) {
      const key = `${o.clientId} ${o.tenant.toLowerCase()}`
      const access = appAccess.get(key) ?? { roles: new Set<string>(), mailboxes: new Set<string>() }
      for (const r of o.roles ?? []) access.roles.add(r)
      for (const m of o.mailboxes ?? []) access.mailboxes.add(m.toLowerCase())
      appAccess.set(key, access)
    },
    async close() {
      await Promise.all([main, side].map((s) => new Promise<void>((r) => { s.close(() => r()); s.closeAllConnections() })))
    },
  }
}

/** One RSA signing key per process: generating one per emulator would cost each test ~100–400 ms. */
let signingKeyPromise: Promise<{ privateKey: KeyObject; publicKey: KeyObject; kid: string }> | undefined
export function signingKey() {
  signingKeyPromise ??= promisify(generateKeyPair)('rsa', { modulusLength: 2048 }).then((k) => ({
    privateKey: k.privateKey as KeyObject,
    publicKey: k.publicKey as KeyObject,
    kid: randomBytes(16).toString('base64url'),
  }))
  return signingKeyPromise
}

// ---------- consent driver: what a browser would do ----------

/** GET the authorize URL, then POST the sign-in/consent form; return where Microsoft sends the browser next. */
export async function driveConsent(authorizeUrl: string, o: { user: string; approve?: boolean }, ca: Buffer): Promise<URL> {
  const first = await request(authorizeUrl, { ca })
  if (first.status === 302) return new URL(first.headers.location as string)
  const form = /<form id="consent"[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/.exec(first.body)
  if (!form) throw new Error(`consent page not shown: ${pageError(first.body)}`)
  const fields = new URLSearchParams()
  for (const m of (form[2] ?? '').matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) {
    fields.append(unesc(m[1] ?? ''), unesc(m[2] ?? ''))
  }
  fields.set('login', o.user)
  fields.set('decision', o.approve === false ? 'no' : 'yes')
  const action = new URL(unesc(form[1] ?? ''), authorizeUrl)
  const second = await request(action.toString(), {
    ca, method: 'POST', body: fields.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' },
  })
  if (second.status === 302) return new URL(second.headers.location as string)
  const post = /<form id="form_post" method="POST" action="([^"]*)">([\s\S]*?)<\/form>/.exec(second.body)
  if (post) {
    // response_mode=form_post: return the target with the posted fields as query parameters, for the caller's convenience.
    const target = new URL(unesc(post[1] ?? ''))
    for (const m of (post[2] ?? '').matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) {
      target.searchParams.set(unesc(m[1] ?? ''), unesc(m[2] ?? ''))
    }
    return target
  }
  throw new Error(`consent failed: ${pageError(second.body)}`)
}

/**
 * What a person does on the device code verification page: enter the code, sign in, answer. Returns the last page's
 * outcome text (or the error it shows).
 */
export async function driveDeviceLogin(verificationUri: string, userCode: string, o: { user: string; approve?: boolean }, ca: Buffer): Promise<string> {
  const post = (fields: Record<string, string>, target = verificationUri) =>
    request(target, { ca, method: 'POST', body: new URLSearchParams(fields).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } })
  const signIn = await post({ step: 'code', otc: userCode })
  if (!/id="device-consent"/.test(signIn.body)) throw new Error(`the code was not accepted: ${pageError(signIn.body)}`)
  const answer = await post({ step: 'consent', otc: userCode, login: o.user, decision: o.approve === false ? 'no' : 'yes' })
  const outcome = /<p id="outcome">([^<]*)<\/p>/.exec(answer.body)
  if (outcome) return unesc(outcome[1] ?? '')
  const ticket = /name="ticket" value="([^"]*)"/.exec(answer.body)
  if (ticket) return `Need admin approval (${pageError(answer.body)})`
  throw new Error(`device sign-in failed: ${pageError(answer.body)}`)
}

function pageError(body: string) {
  const m = /AADSTS\d+:[^<]*/.exec(body)
  return m ? unesc(m[0]).trim() : `unexpected page: ${body.slice(0, 200)}`
}

function request(target: string, o: { ca: Buffer; method?: string; body?: string; headers?: Record<string, string> }) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = https.request(target, { method: o.method ?? 'GET', ca: o.ca, headers: o.headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(o.body)
  })
}

// ---------- helpers ----------

interface TraceMeta { trace: string; correlation: string; timestamp: string }
function traceMeta(correlation?: string): TraceMeta {
  return { trace: randomUUID(), correlation: correlation ?? randomUUID(), timestamp: new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') }
}

/** "AADSTSxxxx: text\r\nTrace ID: ...\r\nCorrelation ID: ...\r\nTimestamp: ..." (ERRORS, sample error response). */
function describe(err: AadError, m: TraceMeta) {
  return `AADSTS${err.code}: ${err.text}\r\nTrace ID: ${m.trace}\r\nCorrelation ID: ${m.correlation}\r\nTimestamp: ${m.timestamp}`
}

/** The token endpoint error body, field for field as in ERRORS' sample. */
function errorBody(err: AadError, m: TraceMeta) {
  return {
    error: err.error,
    error_description: describe(err, m),
    error_codes: [err.code],
    timestamp: m.timestamp,
    trace_id: m.trace,
    correlation_id: m.correlation,
    error_uri: `${MS_LOGIN}/error?code=${err.code}`,
  }
}

/** AADSTS900144: "The request body must contain the following parameter: '{name}'." (ERRORS) */
function missingParam(name: string) {
  return new AadError('invalid_request', 900144, `The request body must contain the following parameter: '${name}'.`)
}

function scopeLabel(scope: string) {
  const name = scope.split('/').pop() ?? scope
  const labels: Record<string, string> = {
    openid: 'Sign you in', profile: 'View your basic profile', email: 'View your email address',
    offline_access: 'Maintain access to data you have given it access to',
    'SMTP.Send': 'Send emails from mailboxes using SMTP AUTH.',
    'IMAP.AccessAsUser.All': 'Read and write access to mailboxes via IMAP.',
    'POP.AccessAsUser.All': 'Read and write access to mailboxes via POP.',
    'Mail.Send': 'Send mail as you', 'Mail.ReadWrite': 'Read and write access to your mail', 'Mail.Read': 'Read your mail',
  }
  return labels[name] ?? ''
}

export function parseBasic(header: string | undefined): { id: string; secret: string } | undefined {
  const m = /^Basic\s+(\S+)$/i.exec(header ?? '')
  if (!m) return undefined
  const decoded = Buffer.from(m[1] ?? '', 'base64').toString('utf8')
  const i = decoded.indexOf(':')
  if (i < 0) return undefined
  // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
  const dec = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '))
  return { id: dec(decoded.slice(0, i)), secret: dec(decoded.slice(i + 1)) }
}

export function safeEqual(a: string, b: string) {
  const x = createHash('sha256').update(a).digest()
  const y = createHash('sha256').update(b).digest()
  return x.equals(y)
}

function isoDate(s: number) {
  return new Date(s * 1000).toISOString().replace(/\.\d+Z$/, 'Z')
}
export const b64json = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url')
export const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
const unesc = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&')

export function html(res: http.ServerResponse, status: number, body: string) {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' })
  res.end(body)
}

/** Token responses carry Cache-Control: no-store and Pragma: no-cache (RFC 6749 §5.1). */
export function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', Pragma: 'no-cache', ...headers })
  res.end(JSON.stringify(body))
}

export function readBody(req: http.IncomingMessage) {
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

export function listen(server: http.Server) {
  return new Promise<number>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address()
      resolve(typeof addr === 'object' && addr ? addr.port : 0)
    })
  })
}
