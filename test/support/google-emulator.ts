/**
 * A test emulator of Google's OAuth 2.0 endpoints for web server applications (authorize, token), plus the same
 * RFC 7662 introspection listener the Microsoft emulator offers, so the SMTP peer and Dovecot validate Gmail tokens
 * the way they validate Outlook ones. It shares the consent driver, the signing key and the HTTP helpers with
 * identity-emulator.ts; what differs is Google's protocol, kept here.
 *
 * It follows Google's documents, not Mailbridge's code:
 * - WEB      https://developers.google.com/identity/protocols/oauth2/web-server
 * - OIDC     https://developers.google.com/identity/openid-connect/openid-connect (id_token claims)
 * - EXPIRY   https://developers.google.com/identity/protocols/oauth2#expiration
 * - GMAIL    https://developers.google.com/gmail/imap/xoauth2-protocol (scope https://mail.google.com/)
 */
import { createHash, randomBytes, randomUUID, sign } from 'node:crypto'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { b64json, driveConsent, esc, html, json, listen, parseBasic, readBody, safeEqual, signingKey } from './identity-emulator.ts'

export interface GoogleClient {
  clientId: string
  clientSecret: string
  redirectUris: string[]
  name?: string
}

export interface GoogleTokenRequest {
  grant_type: string
  at: Date
  error?: string
  /** what came back: did the answer carry a refresh_token? */
  refreshToken?: boolean
}

export interface GoogleEmulator {
  url: string
  /** what Mailbridge stores as google_gmail.auth_endpoint / google_gmail.token_endpoint */
  authEndpoint: string
  tokenEndpoint: string
  introspectUrl: string
  registerClient(c: GoogleClient): void
  addUser(email: string): void
  consent(authorizeUrl: string, o: { user: string; approve?: boolean }): Promise<URL>
  /** the user removes the app's access (myaccount.google.com → Security → Third-party access) */
  revokeUser(email: string): void
  expireAccessTokens(email?: string): void
  tokenRequests: GoogleTokenRequest[]
  latestRefreshToken(email: string): string | undefined
  close(): Promise<void>
}

const TLS_DIR = new URL('./tls/', import.meta.url)
// Access tokens: "expires_in": 3599 in Google's samples and in practice (WEB, step 5).
const ACCESS_TTL_S = 3599
const CODE_TTL_S = 600
const GMAIL_SCOPE = 'https://mail.google.com/'
// Google names the OpenID scopes by URL in the scope it grants back (WEB, "scope" in the token response).
const GRANTED_AS: Record<string, string> = {
  email: 'https://www.googleapis.com/auth/userinfo.email',
  profile: 'https://www.googleapis.com/auth/userinfo.profile',
  openid: 'openid',
}
const KNOWN_SCOPES = new Set(['openid', 'email', 'profile', GMAIL_SCOPE, ...Object.values(GRANTED_AS)])

interface User { email: string; sub: string }
interface Code { clientId: string; redirectUri: string; scopes: string[]; user: User; offline: boolean; consentPrompt: boolean; challenge?: string; method?: string; nonce?: string; issuedAt: number; used: boolean }
interface Refresh { token: string; clientId: string; user: User; scopes: string[]; revoked: boolean }
interface Access { token: string; clientId: string; user: User; scope: string; exp: number; active: boolean }

/** Google's error bodies are the bare RFC 6749 §5.2 pair (WEB, "Error responses"). */
class GoogleError {
  constructor(readonly error: string, readonly description: string, readonly status = 400) {}
}

export async function startGoogleEmulator(): Promise<GoogleEmulator> {
  const ca = readFileSync(new URL('ca.pem', TLS_DIR))
  const { privateKey, kid } = await signingKey()
  const clients = new Map<string, GoogleClient>()
  const users = new Map<string, User>()
  const codes = new Map<string, Code>()
  const refreshTokens = new Map<string, Refresh>()
  const accessTokens = new Map<string, Access>()
  const granted = new Set<string>() // `${clientId} ${email}`: has consented with access_type=offline before
  const tokenRequests: GoogleTokenRequest[] = []
  const nowS = () => Math.floor(Date.now() / 1000)
  let url = ''

  /**
   * Authorization errors about the client or the redirect URI are shown to the user on Google's page
   * ("Error 400: redirect_uri_mismatch"), never sent to an unverified redirect URI (WEB, "Authorization errors").
   */
  function errorPage(res: http.ServerResponse, status: number, err: GoogleError) {
    html(res, 200, `<!doctype html><html lang="en"><head><title>Error ${status}: ${esc(err.error)}</title></head><body>
<h1>Access blocked: This app's request is invalid</h1>
<p id="error" role="alert">Error ${status}: ${esc(err.error)}</p><p>${esc(err.description)}</p></body></html>`)
  }

  function back(res: http.ServerResponse, redirectUri: string, fields: Record<string, string | undefined>) {
    const target = new URL(redirectUri)
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) target.searchParams.set(k, v)
    res.writeHead(302, { Location: target.toString(), 'Cache-Control': 'no-store' })
    res.end()
  }

  /** Validate an authorization request (WEB, step 1 "Set authorization parameters"). */
  function validate(p: URLSearchParams): { page: [number, GoogleError] } | { redirect: [string, GoogleError, string | undefined] } | { ok: { client: GoogleClient; redirectUri: string; scopes: string[] } } {
    const client = clients.get(p.get('client_id') ?? '')
    if (!client) return { page: [401, new GoogleError('invalid_client', 'The OAuth client was not found.')] }
    const redirectUri = p.get('redirect_uri') ?? ''
    if (!client.redirectUris.includes(redirectUri)) {
      return { page: [400, new GoogleError('redirect_uri_mismatch', `You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy. If you're the app developer, register the redirect URI in the Google Cloud Console. Request details: redirect_uri=${redirectUri}`)] }
    }
    const state = p.get('state') ?? undefined
    if (p.get('response_type') !== 'code') return { redirect: [redirectUri, new GoogleError('unsupported_response_type', 'Invalid response_type'), state] }
    const scopes = (p.get('scope') ?? '').split(/\s+/).filter(Boolean)
    if (!scopes.length) return { page: [400, new GoogleError('invalid_request', 'Missing required parameter: scope')] }
    const unknown = scopes.find((s) => !KNOWN_SCOPES.has(s))
    if (unknown) return { page: [400, new GoogleError('invalid_scope', `Some requested scopes were invalid. {invalid=[${unknown}]}`)] }
    const accessType = p.get('access_type') ?? 'online'
    if (accessType !== 'online' && accessType !== 'offline') return { page: [400, new GoogleError('invalid_request', `Invalid access_type: ${accessType}`)] }
    const method = p.get('code_challenge_method')
    if (method && method !== 'S256' && method !== 'plain') return { page: [400, new GoogleError('invalid_request', 'Invalid code_challenge_method')] }
    return { ok: { client, redirectUri, scopes } }
  }

  function authorize(res: http.ServerResponse, method: string, p: URLSearchParams, form?: URLSearchParams) {
    const v = validate(p)
    if ('page' in v) return errorPage(res, v.page[0], v.page[1])
    if ('redirect' in v) return back(res, v.redirect[0], { error: v.redirect[1].error, state: v.redirect[2] })
    const { client, redirectUri, scopes } = v.ok
    if (method === 'GET') {
      const hidden = [...p].map(([k, val]) => `<input type="hidden" name="p:${esc(k)}" value="${esc(val)}">`).join('\n')
      return html(res, 200, `<!doctype html><html lang="en"><head><title>Sign in - Google Accounts</title></head><body>
<h1>${esc(client.name ?? client.clientId)} wants access to your Google Account</h1>
<ul id="scopes">${scopes.map((s) => `<li><code>${esc(s)}</code></li>`).join('')}</ul>
<form id="consent" method="POST" action="/o/oauth2/v2/auth">
${hidden}
<label for="login">Email or phone</label>
<input type="text" id="login" name="login" value="${esc(p.get('login_hint') ?? '')}">
<button type="submit" name="decision" value="yes">Allow</button>
<button type="submit" name="decision" value="no">Cancel</button>
</form></body></html>`)
    }
    const state = p.get('state') ?? undefined
    const user = users.get((form?.get('login') ?? '').trim().toLowerCase())
    if (!user) return errorPage(res, 400, new GoogleError('invalid_request', "Couldn't find your Google Account"))
    // The user clicks Cancel: error=access_denied goes back to the app (WEB, step 4 "Handle the OAuth 2.0 server response").
    if (form?.get('decision') !== 'yes') return back(res, redirectUri, { error: 'access_denied', state })
    const code = `4/0${randomBytes(40).toString('base64url')}`
    codes.set(code, {
      clientId: client.clientId, redirectUri, scopes, user, offline: p.get('access_type') === 'offline',
      consentPrompt: (p.get('prompt') ?? '').split(/\s+/).includes('consent'), challenge: p.get('code_challenge') ?? undefined,
      method: p.get('code_challenge_method') ?? undefined, nonce: p.get('nonce') ?? undefined, issuedAt: nowS(), used: false,
    })
    // Google echoes the granted scope in the redirect, beside code and state.
    back(res, redirectUri, { state, code, scope: grantedScope(scopes), authuser: '0', prompt: 'consent' })
  }

  const grantedScope = (scopes: string[]) => scopes.map((s) => GRANTED_AS[s] ?? s).join(' ')

  function issueAccess(client: GoogleClient, user: User, scopes: string[]) {
    const token = `ya29.${randomBytes(48).toString('base64url')}`
    accessTokens.set(token, { token, clientId: client.clientId, user, scope: grantedScope(scopes), exp: nowS() + ACCESS_TTL_S, active: true })
    return token
  }

  /** id_token claims (OIDC, "An ID token's payload"): email and email_verified only with the email scope. */
  function idToken(client: GoogleClient, user: User, scopes: string[], nonce?: string) {
    const iat = nowS()
    const claims: Record<string, unknown> = { iss: 'https://accounts.google.com', azp: client.clientId, aud: client.clientId, sub: user.sub, iat, exp: iat + 3600 }
    if (scopes.includes('email')) Object.assign(claims, { email: user.email, email_verified: true })
    if (nonce) claims.nonce = nonce
    const head = b64json({ alg: 'RS256', kid, typ: 'JWT' })
    const payload = b64json(claims)
    return `${head}.${payload}.${sign('sha256', Buffer.from(`${head}.${payload}`), privateKey).toString('base64url')}`
  }

  /** The token endpoint (WEB, step 5 "Exchange authorization code"; "Refreshing an access token"). */
  function token(req: http.IncomingMessage, form: URLSearchParams, record: GoogleTokenRequest): Record<string, unknown> | GoogleError {
    const basic = parseBasic(req.headers.authorization)
    const client = clients.get(basic?.id ?? form.get('client_id') ?? '')
    if (!client) return new GoogleError('invalid_client', 'The OAuth client was not found.', 401)
    const secret = basic?.secret ?? form.get('client_secret') ?? ''
    if (!secret || !safeEqual(secret, client.clientSecret)) return new GoogleError('invalid_client', 'Unauthorized', 401)
    const grant = form.get('grant_type') ?? ''
    if (grant === 'authorization_code') {
      const c = codes.get(form.get('code') ?? '')
      if (!c || c.clientId !== client.clientId || nowS() - c.issuedAt > CODE_TTL_S) return new GoogleError('invalid_grant', 'Malformed auth code.')
      if (c.used) return new GoogleError('invalid_grant', 'Bad Request')
      if (form.get('redirect_uri') !== c.redirectUri) return new GoogleError('redirect_uri_mismatch', 'Bad Request')
      if (c.challenge) {
        const verifier = form.get('code_verifier') ?? ''
        if (!verifier) return new GoogleError('invalid_grant', 'Missing code verifier.')
        const computed = c.method === 'S256' ? createHash('sha256').update(verifier).digest('base64url') : verifier
        if (computed !== c.challenge) return new GoogleError('invalid_grant', 'Invalid code verifier.')
      }
      c.used = true
      const body: Record<string, unknown> = { access_token: issueAccess(client, c.user, c.scopes), expires_in: ACCESS_TTL_S, scope: grantedScope(c.scopes), token_type: 'Bearer' }
      // A refresh token only with access_type=offline, and only on the first consent unless prompt=consent asks
      // again (WEB, "Refreshing an access token (offline access)"; prompt parameter).
      const key = `${client.clientId} ${c.user.email}`
      if (c.offline && (c.consentPrompt || !granted.has(key))) {
        const rt = `1//0${randomBytes(60).toString('base64url')}`
        refreshTokens.set(rt, { token: rt, clientId: client.clientId, user: c.user, scopes: c.scopes, revoked: false })
        body.refresh_token = rt
        granted.add(key)
      }
      if (c.scopes.includes('openid')) body.id_token = idToken(client, c.user, c.scopes, c.nonce)
      return body
    }
    if (grant === 'refresh_token') {
      const rt = refreshTokens.get(form.get('refresh_token') ?? '')
      // Revoked, expired (six months unused) or unknown: "Token has been expired or revoked." (EXPIRY; WEB, invalid_grant).
      if (!rt || rt.revoked || rt.clientId !== client.clientId) return new GoogleError('invalid_grant', 'Token has been expired or revoked.')
      // The refresh response has no refresh_token: Google keeps the same one (WEB, "Refreshing an access token").
      const body: Record<string, unknown> = { access_token: issueAccess(client, rt.user, rt.scopes), expires_in: ACCESS_TTL_S, scope: grantedScope(rt.scopes), token_type: 'Bearer' }
      if (rt.scopes.includes('openid')) body.id_token = idToken(client, rt.user, rt.scopes)
      return body
    }
    return new GoogleError(grant ? 'unsupported_grant_type' : 'invalid_request', grant ? `Invalid grant_type: ${grant}` : 'Missing required parameter: grant_type')
  }

  const main = https.createServer({ key: readFileSync(new URL('key.pem', TLS_DIR)), cert: readFileSync(new URL('cert.pem', TLS_DIR)) }, (req, res) => {
    void (async () => {
      const u = new URL(req.url ?? '/', url)
      const body = await readBody(req)
      if (u.pathname === '/o/oauth2/v2/auth') {
        if (req.method === 'GET') return authorize(res, 'GET', u.searchParams)
        const form = new URLSearchParams(body)
        const p = new URLSearchParams()
        for (const [k, v] of form) if (k.startsWith('p:')) p.set(k.slice(2), v)
        return authorize(res, 'POST', p, form)
      }
      if (u.pathname === '/token' && req.method === 'POST') {
        const form = new URLSearchParams(body)
        const record: GoogleTokenRequest = { grant_type: form.get('grant_type') ?? '', at: new Date() }
        tokenRequests.push(record)
        const out = token(req, form, record)
        if (out instanceof GoogleError) {
          record.error = out.error
          return json(res, out.status, { error: out.error, error_description: out.description })
        }
        record.refreshToken = typeof out.refresh_token === 'string'
        return json(res, 200, out)
      }
      json(res, 404, { error: 'not_found' })
    })().catch((e: unknown) => {
      if (!res.headersSent) json(res, 500, { error: 'internal_failure', error_description: String(e) })
    })
  })

  /** RFC 7662 for the test peers (Google's own tokeninfo answers the same facts: email, scope, exp, aud). */
  const side = http.createServer((req, res) => {
    void (async () => {
      const u = new URL(req.url ?? '/', 'http://127.0.0.1')
      const body = await readBody(req)
      if (req.method !== 'POST' || u.pathname !== '/introspect') return json(res, 404, { error: 'not_found' })
      const at = accessTokens.get(new URLSearchParams(body).get('token') ?? '')
      if (!at || !at.active || at.exp <= nowS()) return json(res, 200, { active: false })
      json(res, 200, { active: true, token_type: 'Bearer', scope: at.scope, client_id: at.clientId, aud: at.clientId, sub: at.user.sub, exp: at.exp, username: at.user.email, email: at.user.email })
    })().catch(() => res.destroy())
  })

  url = `https://127.0.0.1:${await listen(main)}`
  const sidePort = await listen(side)
  return {
    url,
    authEndpoint: `${url}/o/oauth2/v2/auth`,
    tokenEndpoint: `${url}/token`,
    introspectUrl: `http://127.0.0.1:${sidePort}/introspect`,
    tokenRequests,
    registerClient: (c) => void clients.set(c.clientId, { ...c, redirectUris: [...c.redirectUris] }),
    addUser: (email) => void users.set(email.toLowerCase(), { email, sub: String(BigInt('0x' + randomUUID().replace(/-/g, '').slice(0, 15))) }),
    consent: (authorizeUrl, o) => driveConsent(authorizeUrl, o, ca),
    revokeUser(email) {
      const l = email.toLowerCase()
      for (const rt of refreshTokens.values()) if (rt.user.email.toLowerCase() === l) rt.revoked = true
      for (const at of accessTokens.values()) if (at.user.email.toLowerCase() === l) at.active = false
    },
    expireAccessTokens(email) {
      const l = email?.toLowerCase()
      for (const at of accessTokens.values()) if (!l || at.user.email.toLowerCase() === l) at.exp = Math.min(at.exp, nowS())
    },
    latestRefreshToken(email) {
      let last: string | undefined
      for (const rt of refreshTokens.values()) if (rt.user.email.toLowerCase() === email.toLowerCase()) last = rt.token
      return last
    },
    async close() {
      await Promise.all([main, side].map((s) => new Promise<void>((r) => { s.close(() => r()); s.closeAllConnections() })))
    },
  }
}
