import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, createPublicKey, randomBytes, verify, type JsonWebKey } from 'node:crypto'
import https from 'node:https'
import { readFileSync } from 'node:fs'
import { startIdentityEmulator, OUTLOOK_IMAP, OUTLOOK_SMTP_SEND, type Emulator, type EmulatorApp, type EmulatorOptions } from './identity-emulator.ts'

const REDIRECT = 'http://localhost:8080/microsoft_outlook/confirm'
const SCOPES = `offline_access openid email ${OUTLOOK_SMTP_SEND} ${OUTLOOK_IMAP}`
const ALICE = 'alice@contoso.example'
const CA = readFileSync(new URL('./tls/ca.pem', import.meta.url))

interface Setup { em: Emulator; app: EmulatorApp }

async function setup(t: TestContext, app: Partial<EmulatorApp> = {}, opts: EmulatorOptions = {}): Promise<Setup> {
  const em = await startIdentityEmulator(opts)
  t.after(() => em.close())
  const full: EmulatorApp = { clientId: 'app-1', clientSecret: 's3cret~value', redirectUris: [REDIRECT], ...app }
  em.registerApp(full)
  em.addUser(ALICE, { upn: 'alice@contoso.onmicrosoft.example', name: 'Alice Example' })
  return { em, app: full }
}

function pkce() {
  const verifier = randomBytes(32).toString('base64url')
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') }
}

function authorizeUrl(em: Emulator, o: { tenant?: string; clientId?: string; redirectUri?: string; scope?: string | null; challenge?: string; state?: string; loginHint?: string; nonce?: string } = {}) {
  const u = new URL('authorize', em.endpoint(o.tenant))
  u.searchParams.set('client_id', o.clientId ?? 'app-1')
  u.searchParams.set('response_type', 'code')
  u.searchParams.set('redirect_uri', o.redirectUri ?? REDIRECT)
  u.searchParams.set('response_mode', 'query')
  if (o.scope !== null) u.searchParams.set('scope', o.scope ?? SCOPES)
  u.searchParams.set('state', o.state ?? 'st-123')
  if (o.challenge) {
    u.searchParams.set('code_challenge', o.challenge)
    u.searchParams.set('code_challenge_method', 'S256')
  }
  if (o.loginHint) u.searchParams.set('login_hint', o.loginHint)
  if (o.nonce) u.searchParams.set('nonce', o.nonce)
  return u.toString()
}

async function token(em: Emulator, params: Record<string, string>, o: { tenant?: string; headers?: Record<string, string> } = {}) {
  const res = await fetch(new URL('token', em.endpoint(o.tenant)), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...o.headers },
    body: new URLSearchParams(params).toString(),
  })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

/** Run consent and return the code, plus what the redemption needs. */
async function getCode(em: Emulator, o: { tenant?: string; scope?: string; nonce?: string } = {}) {
  const { verifier, challenge } = pkce()
  const back = await em.consent(authorizeUrl(em, { challenge, tenant: o.tenant, scope: o.scope, nonce: o.nonce }), { user: ALICE })
  const code = back.searchParams.get('code')
  assert.ok(code, `no code in ${back.toString()}`)
  return { code, verifier, back }
}

const redeem = (em: Emulator, code: string, verifier: string, extra: Record<string, string> = {}, tenant?: string) =>
  token(em, { client_id: 'app-1', client_secret: 's3cret~value', grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, ...extra }, { tenant })

function aadsts(body: Record<string, unknown>) {
  return (body.error_codes as number[] | undefined)?.[0]
}

function decodeJwt(jwt: string) {
  const [h, p, s] = jwt.split('.')
  return {
    header: JSON.parse(Buffer.from(h ?? '', 'base64url').toString()) as Record<string, unknown>,
    claims: JSON.parse(Buffer.from(p ?? '', 'base64url').toString()) as Record<string, unknown>,
    signed: `${h}.${p}`,
    signature: Buffer.from(s ?? '', 'base64url'),
  }
}

function rawGet(url: string) {
  return new Promise<{ status: number; location?: string; body: string }>((resolve, reject) => {
    https.get(url, { ca: CA }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, body }))
    }).on('error', reject)
  })
}

test('authorization code flow: consent returns a code and state, and the code with PKCE and the client secret buys tokens', async (t) => {
  const { em } = await setup(t)
  const { code, verifier, back } = await getCode(em)
  assert.equal(`${back.origin}${back.pathname}`, REDIRECT)
  assert.equal(back.searchParams.get('state'), 'st-123')

  const { status, body } = await redeem(em, code, verifier)
  assert.equal(status, 200)
  assert.equal(body.token_type, 'Bearer')
  assert.equal(body.scope, `${OUTLOOK_SMTP_SEND} ${OUTLOOK_IMAP}`)
  assert.ok(typeof body.expires_in === 'number' && body.expires_in >= 3600 && body.expires_in <= 5400, `expires_in ${String(body.expires_in)}`)
  assert.equal(body.ext_expires_in, body.expires_in)
  assert.equal(typeof body.access_token, 'string')
  assert.equal(typeof body.refresh_token, 'string')
  assert.equal(typeof body.id_token, 'string')
  assert.equal(em.latestRefreshToken(ALICE), body.refresh_token)
  assert.deepEqual(em.tokenRequests.map((r) => [r.grant_type, r.client_id, r.error]), [['authorization_code', 'app-1', undefined]])
})

test('the consent page is a sign-in form with the scopes, a prefilled login and real Yes and No buttons', async (t) => {
  const { em } = await setup(t)
  const page = await rawGet(authorizeUrl(em, { loginHint: ALICE }))
  assert.equal(page.status, 200)
  assert.match(page.body, /<title>Permissions requested<\/title>/)
  assert.match(page.body, /app-1/)
  assert.match(page.body, /SMTP\.Send/)
  assert.match(page.body, /<label for="login">Email, phone, or Skype<\/label>/)
  assert.match(page.body, new RegExp(`name="login"[^>]*value="${ALICE.replace('.', '\\.')}"`))
  assert.match(page.body, /<button type="submit" name="decision" value="yes">Yes<\/button>/)
  assert.match(page.body, /<button type="submit" name="decision" value="no">No<\/button>/)
})

test('a code redeemed a second time is refused with invalid_grant AADSTS54005', async (t) => {
  const { em } = await setup(t)
  const { code, verifier } = await getCode(em)
  assert.equal((await redeem(em, code, verifier)).status, 200)
  const again = await redeem(em, code, verifier)
  assert.equal(again.status, 400)
  assert.equal(again.body.error, 'invalid_grant')
  assert.equal(aadsts(again.body), 54005)
})

test('a wrong code_verifier is refused with invalid_grant AADSTS501481', async (t) => {
  const { em } = await setup(t)
  const { code } = await getCode(em)
  const res = await redeem(em, code, pkce().verifier)
  assert.equal(res.status, 400)
  assert.equal(res.body.error, 'invalid_grant')
  assert.equal(aadsts(res.body), 501481)
})

test('a wrong client secret gets 401 invalid_client AADSTS7000215 in Microsoft\'s error shape', async (t) => {
  const { em } = await setup(t)
  const { code, verifier } = await getCode(em)
  const res = await redeem(em, code, verifier, { client_secret: 'the-secret-id-not-its-value' })
  assert.equal(res.status, 401)
  assert.deepEqual(Object.keys(res.body).sort(), ['correlation_id', 'error', 'error_codes', 'error_description', 'error_uri', 'timestamp', 'trace_id'])
  assert.equal(res.body.error, 'invalid_client')
  assert.deepEqual(res.body.error_codes, [7000215])
  const uuid = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
  assert.match(String(res.body.error_description), new RegExp(`^AADSTS7000215: .+\\r\\nTrace ID: ${uuid}\\r\\nCorrelation ID: ${uuid}\\r\\nTimestamp: \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ$`))
  assert.match(String(res.body.timestamp), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/)
  assert.equal(res.body.error_uri, 'https://login.microsoftonline.com/error?code=7000215')
  assert.equal(em.tokenRequests.at(-1)?.error, 'invalid_client')
  assert.equal(em.tokenRequests.at(-1)?.aadsts, 7000215)
})

test('an expired client secret gets 401 invalid_client AADSTS7000222', async (t) => {
  const { em } = await setup(t, { secretExpiresAt: new Date(Date.now() - 1000) })
  const { code, verifier } = await getCode(em)
  const res = await redeem(em, code, verifier)
  assert.equal(res.status, 401)
  assert.equal(res.body.error, 'invalid_client')
  assert.equal(aadsts(res.body), 7000222)
})

test('a missing secret gets AADSTS7000218, an unknown app AADSTS700016, and HTTP Basic client auth works', async (t) => {
  const { em } = await setup(t)
  const { code, verifier } = await getCode(em)
  const missing = await token(em, { client_id: 'app-1', grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier })
  assert.deepEqual([missing.status, missing.body.error, aadsts(missing.body)], [401, 'invalid_client', 7000218])
  const unknown = await redeem(em, code, verifier, { client_id: 'nobody' })
  assert.deepEqual([unknown.status, unknown.body.error, aadsts(unknown.body)], [400, 'unauthorized_client', 700016])
  const basic = `Basic ${Buffer.from(`${encodeURIComponent('app-1')}:${encodeURIComponent('s3cret~value')}`).toString('base64')}`
  const ok = await token(em, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }, { headers: { authorization: basic } })
  assert.equal(ok.status, 200)
})

test('a redirect_uri at the token endpoint other than the one used at authorize is refused with invalid_grant', async (t) => {
  const { em } = await setup(t, { redirectUris: [REDIRECT, 'http://localhost:8080/other'] })
  const { code, verifier } = await getCode(em)
  const res = await redeem(em, code, verifier, { redirect_uri: 'http://localhost:8080/other' })
  assert.equal(res.status, 400)
  assert.equal(res.body.error, 'invalid_grant')
  assert.equal(aadsts(res.body), 70000)
  assert.match(String(res.body.error_description), /redirect_uri/)
})

test('a code older than ten minutes is refused with AADSTS70008, and one redeemed on another tenant path with AADSTS700005', async (t) => {
  let clock = Date.now()
  const { em } = await setup(t, {}, { now: () => clock })
  const first = await getCode(em)
  clock += 11 * 60 * 1000
  const late = await redeem(em, first.code, first.verifier)
  assert.deepEqual([late.status, late.body.error, aadsts(late.body)], [400, 'invalid_grant', 70008])
  const second = await getCode(em)
  const elsewhere = await redeem(em, second.code, second.verifier, {}, 'organizations')
  assert.deepEqual([elsewhere.body.error, aadsts(elsewhere.body)], ['invalid_grant', 700005])
})

test('refresh tokens rotate on every use, the old one stays valid, and the log shows each presented generation', async (t) => {
  const { em } = await setup(t)
  const { code, verifier } = await getCode(em)
  const first = (await redeem(em, code, verifier)).body
  const refresh = (rt: unknown) => token(em, { client_id: 'app-1', client_secret: 's3cret~value', grant_type: 'refresh_token', refresh_token: String(rt) })
  const second = await refresh(first.refresh_token)
  assert.equal(second.status, 200)
  assert.notEqual(second.body.refresh_token, first.refresh_token)
  assert.notEqual(second.body.access_token, first.access_token)
  assert.equal(second.body.scope, `${OUTLOOK_SMTP_SEND} ${OUTLOOK_IMAP}`)
  const third = await refresh(second.body.refresh_token)
  assert.equal(third.status, 200)
  assert.equal(em.latestRefreshToken(ALICE), third.body.refresh_token)
  // Microsoft does not revoke the old refresh token when it issues a new one.
  assert.equal((await refresh(first.refresh_token)).status, 200)
  assert.deepEqual(em.tokenRequests.map((r) => [r.grant_type, r.refreshGeneration]), [
    ['authorization_code', undefined], ['refresh_token', 1], ['refresh_token', 2], ['refresh_token', 1],
  ])
})

test('refresh tokens of a user whose tokens expired are refused with invalid_grant AADSTS700082', async (t) => {
  const { em } = await setup(t)
  const { code, verifier } = await getCode(em)
  const first = (await redeem(em, code, verifier)).body
  em.expireRefreshTokens(ALICE)
  const res = await token(em, { client_id: 'app-1', client_secret: 's3cret~value', grant_type: 'refresh_token', refresh_token: String(first.refresh_token) })
  assert.deepEqual([res.status, res.body.error, aadsts(res.body)], [400, 'invalid_grant', 700082])
  assert.deepEqual([em.tokenRequests.at(-1)?.error, em.tokenRequests.at(-1)?.aadsts], ['invalid_grant', 700082])
})

test('revokeUser makes refreshes fail with invalid_grant AADSTS50173 and the user\'s access tokens inactive', async (t) => {
  const { em } = await setup(t)
  const { code, verifier } = await getCode(em)
  const first = (await redeem(em, code, verifier)).body
  em.revokeUser(ALICE)
  const res = await token(em, { client_id: 'app-1', client_secret: 's3cret~value', grant_type: 'refresh_token', refresh_token: String(first.refresh_token) })
  assert.deepEqual([res.status, res.body.error, aadsts(res.body)], [400, 'invalid_grant', 50173])
  const info = await fetch(em.introspectUrl, { method: 'POST', body: new URLSearchParams({ token: String(first.access_token) }) })
  assert.deepEqual(await info.json(), { active: false })
})

test('a redirect_uri that is not registered shows AADSTS50011 on a page and does not redirect', async (t) => {
  const { em } = await setup(t)
  const url = authorizeUrl(em, { redirectUri: 'https://evil.example/cb' })
  const page = await rawGet(url)
  assert.equal(page.status, 200)
  assert.equal(page.location, undefined)
  assert.match(page.body, /AADSTS50011: The redirect URI 'https:\/\/evil\.example\/cb' specified in the request does not match/)
  await assert.rejects(em.consent(url, { user: ALICE }), /AADSTS50011/)
})

test('answering "No" sends access_denied with AADSTS65004 and the state back to the app', async (t) => {
  const { em } = await setup(t)
  const back = await em.consent(authorizeUrl(em, { state: 'xyz' }), { user: ALICE, approve: false })
  assert.equal(`${back.origin}${back.pathname}`, REDIRECT)
  assert.equal(back.searchParams.get('error'), 'access_denied')
  assert.match(back.searchParams.get('error_description') ?? '', /^AADSTS65004: User declined to consent to access the app\./)
  assert.equal(back.searchParams.get('state'), 'xyz')
  assert.equal(back.searchParams.get('code'), null)
})

test('an account that is not in the directory gets AADSTS50034 on the sign-in page', async (t) => {
  const { em } = await setup(t)
  await assert.rejects(em.consent(authorizeUrl(em), { user: 'mallory@contoso.example' }), /AADSTS50034/)
})

test('authorize errors after the redirect URI is trusted go back to the app; a single-tenant app on /common gets AADSTS50194', async (t) => {
  const { em } = await setup(t, { tenant: '11111111-2222-3333-4444-555555555555' })
  const noScope = await em.consent(authorizeUrl(em, { tenant: '11111111-2222-3333-4444-555555555555', scope: null }), { user: ALICE })
  assert.equal(noScope.searchParams.get('error'), 'invalid_request')
  assert.match(noScope.searchParams.get('error_description') ?? '', /^AADSTS900144: .*'scope'/)
  await assert.rejects(em.consent(authorizeUrl(em), { user: ALICE }), /AADSTS50194/)
})

test('the id_token is an RS256 JWT with Microsoft\'s claims, signed by a key from the published JWKS', async (t) => {
  const { em } = await setup(t)
  const tenant = '0f0e0d0c-0b0a-4909-8807-060504030201'
  em.registerApp({ clientId: 'app-2', clientSecret: 'x', redirectUris: [REDIRECT] })
  const { verifier, challenge } = pkce()
  const u = new URL(authorizeUrl(em, { tenant, challenge, nonce: 'n-1', scope: `openid profile email offline_access ${OUTLOOK_SMTP_SEND}` }))
  u.searchParams.set('client_id', 'app-2')
  const back = await em.consent(u.toString(), { user: ALICE })
  const res = await token(em, { client_id: 'app-2', client_secret: 'x', grant_type: 'authorization_code', code: back.searchParams.get('code') ?? '', redirect_uri: REDIRECT, code_verifier: verifier }, { tenant })
  assert.equal(res.status, 200)
  const jwt = decodeJwt(String(res.body.id_token))
  assert.equal(jwt.header.alg, 'RS256')
  const c = jwt.claims
  assert.equal(c.iss, `https://login.microsoftonline.com/${tenant}/v2.0`)
  assert.equal(c.aud, 'app-2')
  assert.equal(c.tid, tenant)
  assert.equal(c.email, ALICE)
  assert.equal(c.preferred_username, 'alice@contoso.onmicrosoft.example')
  assert.equal(c.name, 'Alice Example')
  assert.equal(c.nonce, 'n-1')
  assert.match(String(c.oid), /^[0-9a-f-]{36}$/)
  assert.equal(typeof c.sub, 'string')
  const now = Math.floor(Date.now() / 1000)
  assert.ok(Number(c.iat) <= now + 1 && Number(c.nbf) <= now + 1 && Number(c.exp) > now)

  const keys = (await (await fetch(`${em.url}/${tenant}/discovery/v2.0/keys`)).json()) as { keys: Array<JsonWebKey & { kid: string }> }
  const key = keys.keys.find((k) => k.kid === jwt.header.kid)
  assert.ok(key, 'signing key is published')
  assert.ok(verify('sha256', Buffer.from(jwt.signed), createPublicKey({ key, format: 'jwk' }), jwt.signature))
  const conf = (await (await fetch(`${em.url}/${tenant}/v2.0/.well-known/openid-configuration`)).json()) as Record<string, unknown>
  assert.equal(conf.token_endpoint, `${em.url}/${tenant}/oauth2/v2.0/token`)
  assert.equal(conf.issuer, c.iss)
})

test('without the profile scope the id_token has email but no preferred_username, name or oid (as Microsoft documents)', async (t) => {
  const { em } = await setup(t)
  const { code, verifier } = await getCode(em)
  const claims = decodeJwt(String((await redeem(em, code, verifier)).body.id_token)).claims
  assert.equal(claims.email, ALICE)
  assert.equal(claims.preferred_username, undefined)
  assert.equal(claims.name, undefined)
  assert.equal(claims.oid, undefined)
  assert.equal(claims.tid, em.tenantId)
})

test('introspection says active for a live token and inactive for an expired or unknown one', async (t) => {
  const { em } = await setup(t)
  const { code, verifier } = await getCode(em)
  const at = String((await redeem(em, code, verifier)).body.access_token)
  const ask = async (tok: string) => (await (await fetch(em.introspectUrl, { method: 'POST', body: new URLSearchParams({ token: tok }) })).json()) as Record<string, unknown>
  const live = await ask(at)
  assert.equal(live.active, true)
  assert.equal(live.username, ALICE)
  assert.equal(live.email, ALICE)
  assert.equal(live.client_id, 'app-1')
  assert.equal(live.scope, `${OUTLOOK_SMTP_SEND} ${OUTLOOK_IMAP}`)
  assert.ok(Number(live.exp) > Date.now() / 1000)
  const info = (await (await fetch(`${em.introspectUrl.replace('/introspect', '/tokeninfo')}?access_token=${at}`)).json()) as Record<string, unknown>
  assert.equal(info.username, ALICE)
  assert.deepEqual(await ask('not-a-token'), { active: false })
  const minted = em.mintAccessToken({ user: 'bob@contoso.example', scope: OUTLOOK_IMAP, ttlSeconds: 60 })
  assert.equal((await ask(minted)).username, 'bob@contoso.example')
  em.expireAccessTokens(ALICE)
  assert.deepEqual(await ask(at), { active: false })
  assert.equal((await ask(minted)).active, true)
})

test('client_credentials works with a tenant id and /.default, and is refused on /common with AADSTS9001023', async (t) => {
  const { em } = await setup(t)
  const tenant = '9a8b7c6d-5e4f-4321-8765-0123456789ab'
  const base = { client_id: 'app-1', client_secret: 's3cret~value', grant_type: 'client_credentials' }
  // A multitenant app has no service principal in a tenant whose admin never consented: AADSTS700016.
  const unprovisioned = await token(em, { ...base, scope: 'https://outlook.office365.com/.default' }, { tenant })
  assert.deepEqual([unprovisioned.status, unprovisioned.body.error, aadsts(unprovisioned.body)], [400, 'unauthorized_client', 700016])
  em.grantAppAccess({ clientId: 'app-1', tenant, roles: ['IMAP.AccessAsApp'], mailboxes: ['shared@contoso.com'] })
  const ok = await token(em, { ...base, scope: 'https://outlook.office365.com/.default' }, { tenant })
  assert.equal(ok.status, 200)
  assert.equal(ok.body.token_type, 'Bearer')
  assert.equal(typeof ok.body.access_token, 'string')
  assert.equal(ok.body.refresh_token, undefined)
  assert.equal(ok.body.id_token, undefined)
  const common = await token(em, { ...base, scope: 'https://outlook.office365.com/.default' })
  assert.deepEqual([common.status, common.body.error, aadsts(common.body)], [400, 'invalid_request', 9001023])
  const notDefault = await token(em, { ...base, scope: OUTLOOK_SMTP_SEND }, { tenant })
  assert.deepEqual([notDefault.body.error, aadsts(notDefault.body)], ['invalid_scope', 1002012])
  // Introspection: the consented roles; a username only for a mailbox the app was given.
  const ask = async (username?: string) =>
    (await fetch(em.introspectUrl, { method: 'POST', body: new URLSearchParams({ token: ok.body.access_token as string, ...(username ? { username } : {}) }) })).json() as Promise<Record<string, unknown>>
  const plain = await ask()
  assert.deepEqual([plain.active, plain.roles, plain.username], [true, 'IMAP.AccessAsApp', undefined])
  assert.equal((await ask('Shared@contoso.com')).username, 'shared@contoso.com')
  assert.equal((await ask('ceo@contoso.com')).username, undefined)
})

test('setTokenEndpoint can cut the connection, answer 503 or delay, and touches neither authorize nor introspection', async (t) => {
  const { em } = await setup(t)
  const { code, verifier } = await getCode(em)
  em.setTokenEndpoint({ down: true })
  await assert.rejects(redeem(em, code, verifier))
  em.setTokenEndpoint({ status503: true })
  const busy = await redeem(em, code, verifier)
  assert.deepEqual([busy.status, busy.body.error], [503, 'temporarily_unavailable'])
  const minted = em.mintAccessToken({ user: ALICE })
  const info = (await (await fetch(em.introspectUrl, { method: 'POST', body: new URLSearchParams({ token: minted }) })).json()) as Record<string, unknown>
  assert.equal(info.active, true)
  em.setTokenEndpoint({ delayMs: 150 })
  const started = Date.now()
  assert.equal((await redeem(em, code, verifier)).status, 200)
  assert.ok(Date.now() - started >= 140)
  assert.deepEqual(em.tokenRequests.map((r) => r.error), ['down', 'temporarily_unavailable', undefined])
})

// ---------- tokens per resource (one consent, an access token per resource from the one refresh token) ----------

const GRAPH_SEND = 'https://graph.microsoft.com/Mail.Send'
const GRAPH_RW = 'https://graph.microsoft.com/Mail.ReadWrite'
const TWO_RESOURCES = `offline_access openid email ${OUTLOOK_SMTP_SEND} ${GRAPH_SEND} ${GRAPH_RW}`

test('one consent may name Outlook and Graph scopes; the code buys a token for the first resource, and the refresh token buys one for each', async (t) => {
  // "For the /authorize leg of the request, this parameter can cover multiple resources"; the refresh token is
  // "valid for all permissions that your client has already received consent for" (AUTH_CODE, scope; refresh).
  const { em } = await setup(t)
  const { code, verifier } = await getCode(em, { scope: TWO_RESOURCES })
  const first = await redeem(em, code, verifier, { scope: `offline_access ${OUTLOOK_SMTP_SEND}` })
  assert.equal(first.status, 200)
  assert.equal(first.body.scope, OUTLOOK_SMTP_SEND)
  assert.equal(em.tokenInfo(String(first.body.access_token))?.aud, 'https://outlook.office.com')
  const refresh = (scope: string, rt = first.body.refresh_token) =>
    token(em, { client_id: 'app-1', client_secret: 's3cret~value', grant_type: 'refresh_token', refresh_token: String(rt), scope })
  const graph = await refresh(`offline_access ${GRAPH_SEND} ${GRAPH_RW}`)
  assert.equal(graph.status, 200)
  assert.equal(graph.body.scope, `${GRAPH_SEND} ${GRAPH_RW}`)
  const info = em.tokenInfo(String(graph.body.access_token))
  assert.deepEqual([info?.aud, info?.scp, info?.user, info?.roles], ['https://graph.microsoft.com', ['Mail.Send', 'Mail.ReadWrite'], ALICE, []])
  // The rotated refresh token serves Outlook again; a bare Graph name is the same permission as its full URI.
  const back = await refresh(`offline_access ${OUTLOOK_SMTP_SEND}`, graph.body.refresh_token)
  assert.equal(em.tokenInfo(String(back.body.access_token))?.aud, 'https://outlook.office.com')
  assert.equal((await refresh('offline_access Mail.Send')).status, 200)
})

test('a token request naming scopes of two resources is refused with invalid_scope AADSTS28000, at redemption and at refresh', async (t) => {
  const { em } = await setup(t)
  const { code, verifier } = await getCode(em, { scope: TWO_RESOURCES })
  const mixed = await redeem(em, code, verifier, { scope: `offline_access ${OUTLOOK_SMTP_SEND} ${GRAPH_SEND}` })
  assert.deepEqual([mixed.status, mixed.body.error, aadsts(mixed.body)], [400, 'invalid_scope', 28000])
  assert.match(String(mixed.body.error_description), /contains more than one resource/)
  const ok = await redeem(em, code, verifier, { scope: `offline_access ${GRAPH_SEND}` })
  assert.equal(ok.status, 200)
  const refreshed = await token(em, { client_id: 'app-1', client_secret: 's3cret~value', grant_type: 'refresh_token', refresh_token: String(ok.body.refresh_token), scope: `${GRAPH_SEND} ${OUTLOOK_SMTP_SEND}` })
  assert.deepEqual([refreshed.status, refreshed.body.error, aadsts(refreshed.body)], [400, 'invalid_scope', 28000])
})

test('a refresh asking for Graph when the consent named only Outlook is refused with AADSTS65001 (consent required)', async (t) => {
  const { em } = await setup(t)
  const { code, verifier } = await getCode(em)
  const first = (await redeem(em, code, verifier)).body
  const res = await token(em, { client_id: 'app-1', client_secret: 's3cret~value', grant_type: 'refresh_token', refresh_token: String(first.refresh_token), scope: `offline_access ${GRAPH_SEND}` })
  assert.deepEqual([res.status, res.body.error, aadsts(res.body)], [400, 'invalid_grant', 65001])
})

test('client_credentials with https://graph.microsoft.com/.default gives an app token for Graph with the consented roles; two resources get AADSTS70011', async (t) => {
  const { em } = await setup(t)
  const tenant = '9a8b7c6d-5e4f-4321-8765-0123456789ab'
  em.grantAppAccess({ clientId: 'app-1', tenant, roles: ['Mail.Send', 'Mail.ReadWrite'] })
  const base = { client_id: 'app-1', client_secret: 's3cret~value', grant_type: 'client_credentials' }
  const ok = await token(em, { ...base, scope: 'https://graph.microsoft.com/.default' }, { tenant })
  assert.equal(ok.status, 200)
  const info = em.tokenInfo(String(ok.body.access_token))
  assert.deepEqual([info?.aud, info?.roles, info?.scp, info?.user, info?.tid, info?.appId], ['https://graph.microsoft.com', ['Mail.Send', 'Mail.ReadWrite'], [], undefined, tenant, 'app-1'])
  const two = await token(em, { ...base, scope: 'https://graph.microsoft.com/.default https://outlook.office365.com/.default' }, { tenant })
  assert.deepEqual([two.status, two.body.error, aadsts(two.body)], [400, 'invalid_scope', 70011])
  assert.equal(em.tokenInfo('not-a-token'), undefined)
})
