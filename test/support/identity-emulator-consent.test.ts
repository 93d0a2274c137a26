// Contract tests of the identity emulator's consent policy, admin consent endpoint and device authorization grant,
// each against the Microsoft page it follows:
// - https://learn.microsoft.com/entra/identity-platform/v2-admin-consent (ADMIN_CONSENT)
// - https://learn.microsoft.com/entra/identity/enterprise-apps/configure-user-consent (USER_CONSENT)
// - https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code (DEVICE_CODE), RFC 8628
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { startIdentityEmulator, OUTLOOK_IMAP, OUTLOOK_SMTP_SEND, type Emulator, type EmulatorApp } from './identity-emulator.ts'

const REDIRECT = 'http://localhost:8080/microsoft_outlook/confirm'
const SCOPES = `openid email offline_access ${OUTLOOK_SMTP_SEND} ${OUTLOOK_IMAP}`
const ALICE = 'alice@contoso.example'
const ADMIN = 'admin@contoso.example'
const SECRET = 's3cret~value'

async function setup(t: TestContext, app: Partial<EmulatorApp> = {}, o: { now?: () => number } = {}) {
  const em = await startIdentityEmulator({ now: o.now })
  t.after(() => em.close())
  em.registerApp({ clientId: 'app-1', clientSecret: SECRET, redirectUris: [REDIRECT], name: 'Mailbridge', ...app })
  em.addUser(ALICE)
  em.addUser(ADMIN, { admin: true })
  return em
}

const authorizeUrl = (em: Emulator, state = 'st-1') => {
  const u = new URL('authorize', em.endpoint())
  for (const [k, v] of Object.entries({ client_id: 'app-1', response_type: 'code', redirect_uri: REDIRECT, response_mode: 'query', scope: SCOPES, state, login_hint: ALICE })) u.searchParams.set(k, v)
  return u.toString()
}
const adminConsentUrl = (em: Emulator, tenant = 'organizations', state = 'ac-1') => {
  const u = new URL(`${em.url}/${tenant}/v2.0/adminconsent`)
  for (const [k, v] of Object.entries({ client_id: 'app-1', redirect_uri: REDIRECT, state, scope: SCOPES })) u.searchParams.set(k, v)
  return u.toString()
}
const form = async (url: string, fields: Record<string, string>) =>
  fetch(url, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() })
/** Answer the admin consent page as `login`; returns the redirect (or the page). */
async function answerAdminConsent(em: Emulator, login: string, decision: 'yes' | 'no', tenant = 'organizations') {
  const page = await (await fetch(adminConsentUrl(em, tenant))).text()
  const fields: Record<string, string> = { login, decision }
  for (const m of page.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) fields[m[1]!] = m[2]!.replace(/&amp;/g, '&')
  return form(`${em.url}/${tenant}/v2.0/adminconsent`, fields)
}
async function token(em: Emulator, params: Record<string, string>) {
  const res = await form(new URL('token', em.endpoint()).toString(), params)
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}
async function deviceCode(em: Emulator, scope = SCOPES) {
  const res = await form(new URL('devicecode', em.endpoint()).toString(), { client_id: 'app-1', scope })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}
const poll = (em: Emulator, code: string, secret: string | null = SECRET) =>
  token(em, { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', client_id: 'app-1', device_code: code, ...(secret === null ? {} : { client_secret: secret }) })

test('a tenant that allows only admin consent shows a user "Need admin approval" (AADSTS90094); returning sends access_denied with error_subcode=cancel', async (t) => {
  const em = await setup(t)
  em.setConsentPolicy({ userConsent: 'admin_only' })
  await assert.rejects(em.consent(authorizeUrl(em), { user: ALICE }), /AADSTS90094/)
  // "Return to the application without granting consent" (field report: no error_description, no AADSTS number).
  const first = await fetch(authorizeUrl(em))
  const fields: Record<string, string> = { login: ALICE, decision: 'yes' }
  for (const m of (await first.text()).matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) fields[m[1]!] = m[2]!.replace(/&amp;/g, '&')
  const page = await (await form(new URL('authorize', em.endpoint()).toString(), fields)).text()
  assert.match(page, /Need admin approval/)
  const ticket = /name="ticket" value="([^"]*)"/.exec(page)![1]!
  const back = new URL((await form(`${em.url}/cancel`, { ticket })).headers.get('location')!)
  assert.equal(back.origin + back.pathname, REDIRECT)
  assert.deepEqual(Object.fromEntries(back.searchParams), { error: 'access_denied', error_subcode: 'cancel', state: 'st-1' })
  // An administrator may still consent for themselves on the same page.
  const adminUrl = authorizeUrl(em).replace(encodeURIComponent(ALICE), encodeURIComponent(ADMIN))
  assert.ok((await em.consent(adminUrl, { user: ADMIN })).searchParams.get('code'))
})

test('admin consent: an admin accepts → admin_consent=True with the tenant (GUID), scope and state; then users sign in with no consent prompt', async (t) => {
  const em = await setup(t)
  em.setConsentPolicy({ userConsent: 'admin_only' })
  const page = await (await fetch(adminConsentUrl(em))).text()
  assert.match(page, /for all users in your organization/)
  assert.match(page, /IMAP\.AccessAsUser\.All/)
  const res = await answerAdminConsent(em, ADMIN, 'yes')
  assert.equal(res.status, 302)
  const back = new URL(res.headers.get('location')!)
  assert.deepEqual(Object.fromEntries(back.searchParams), { admin_consent: 'True', tenant: em.tenantId, scope: SCOPES, state: 'ac-1' })
  assert.deepEqual(em.adminGrants('app-1').sort(), [OUTLOOK_IMAP, OUTLOOK_SMTP_SEND].sort())
  // "No one else will be prompted to review these permissions": a sign-in page, not a consent page.
  const signIn = await (await fetch(authorizeUrl(em))).text()
  assert.match(signIn, /<h1>Sign in<\/h1>/)
  assert.doesNotMatch(signIn, /Permissions requested/)
  const code = (await em.consent(authorizeUrl(em), { user: ALICE })).searchParams.get('code')
  assert.ok(code)
  const redeemed = await token(em, { grant_type: 'authorization_code', client_id: 'app-1', client_secret: SECRET, code, redirect_uri: REDIRECT, scope: `${OUTLOOK_SMTP_SEND} ${OUTLOOK_IMAP}` })
  assert.equal(redeemed.status, 200, JSON.stringify(redeemed.body))
})

test('admin consent refused: Cancel → admin_consent=True&error=consent_required (AADSTS65004); a non-admin gets AADSTS90093 on a page', async (t) => {
  const em = await setup(t)
  const declined = new URL((await answerAdminConsent(em, ADMIN, 'no')).headers.get('location')!)
  assert.equal(declined.searchParams.get('admin_consent'), 'True')
  assert.equal(declined.searchParams.get('error'), 'consent_required')
  assert.match(declined.searchParams.get('error_description')!, /^AADSTS65004: The resource owner or authorization server denied the request\./)
  assert.equal(declined.searchParams.get('state'), 'ac-1')
  const notAdmin = await answerAdminConsent(em, ALICE, 'yes')
  assert.equal(notAdmin.status, 200)
  assert.match(await notAdmin.text(), /AADSTS90093/)
  assert.deepEqual(em.adminGrants('app-1'), [])
})

test('device code: /devicecode answers user_code, device_code, verification_uri, expires_in 900, interval 5 and a message', async (t) => {
  const em = await setup(t)
  const { status, body } = await deviceCode(em)
  assert.equal(status, 200)
  assert.match(body.user_code as string, /^[A-Z0-9]{8}$/)
  assert.ok((body.device_code as string).length > 40)
  assert.equal(body.verification_uri, `${em.url}/devicelogin`)
  assert.equal(body.expires_in, 900)
  assert.equal(body.interval, 5)
  assert.match(body.message as string, new RegExp(`enter the code ${body.user_code}`))
  assert.equal((await deviceCode(em, `${SCOPES} https://nowhere.example/Thing`)).body.error, 'invalid_scope')
})

test('device code: pending (70016) until the user signs in, slow_down adds 5 s when polled early, then the tokens once', async (t) => {
  let clock = Date.now()
  const em = await setup(t, {}, { now: () => clock })
  const started = (await deviceCode(em)).body
  const code = started.device_code as string
  const first = await poll(em, code)
  assert.equal(first.status, 400)
  assert.equal(first.body.error, 'authorization_pending')
  assert.deepEqual(first.body.error_codes, [70016])
  clock += 2000
  assert.equal((await poll(em, code)).body.error, 'slow_down')
  clock += 6000 // 5 s is now too early: the interval became 10 s
  assert.equal((await poll(em, code)).body.error, 'slow_down')
  clock += 15_000
  assert.equal((await poll(em, code)).body.error, 'authorization_pending')
  assert.match(await em.completeDeviceSignIn(started.user_code as string, { user: ALICE }), /You have signed in to the Mailbridge application on your device/)
  clock += 20_000
  const done = await poll(em, code)
  assert.equal(done.status, 200, JSON.stringify(done.body))
  assert.ok(done.body.refresh_token && done.body.id_token && done.body.access_token)
  assert.equal(JSON.parse(Buffer.from((done.body.id_token as string).split('.')[1]!, 'base64url').toString()).email, ALICE)
  clock += 20_000
  const again = await poll(em, code)
  assert.equal(again.body.error, 'bad_verification_code')
})

test('device code: declined → authorization_declined; after 15 minutes → expired_token (70019); a wrong code on the page is refused', async (t) => {
  let clock = Date.now()
  const em = await setup(t, {}, { now: () => clock })
  const a = (await deviceCode(em)).body
  await assert.rejects(em.completeDeviceSignIn('WRONGCOD', { user: ALICE }), /code was not accepted/)
  assert.match(await em.completeDeviceSignIn(a.user_code as string, { user: ALICE, approve: false }), /declined/)
  assert.equal((await poll(em, a.device_code as string)).body.error, 'authorization_declined')
  const b = (await deviceCode(em)).body
  clock += 901_000
  const expired = await poll(em, b.device_code as string)
  assert.equal(expired.body.error, 'expired_token')
  assert.deepEqual(expired.body.error_codes, [70019])
})

test('device code: without its secret a confidential app gets AADSTS7000218; with "Allow public client flows" it may poll without one', async (t) => {
  const em = await setup(t)
  const code = (await deviceCode(em)).body.device_code as string
  const confidential = await poll(em, code, null)
  assert.equal(confidential.status, 401)
  assert.deepEqual(confidential.body.error_codes, [7000218])
  assert.deepEqual((await poll(em, code, 'wrong')).body.error_codes, [7000215])
  em.registerApp({ clientId: 'app-1', clientSecret: SECRET, redirectUris: [REDIRECT], allowPublicClient: true })
  assert.equal((await poll(em, code, null)).body.error, 'authorization_pending')
})

test('device code with user consent blocked: the verification page shows "Need admin approval" and the sign-in stays pending', async (t) => {
  const em = await setup(t)
  em.setConsentPolicy({ userConsent: 'admin_only' })
  const a = (await deviceCode(em)).body
  assert.match(await em.completeDeviceSignIn(a.user_code as string, { user: ALICE }), /Need admin approval \(AADSTS90094/)
  assert.equal(em.deviceSignIns()[0]!.state, 'pending')
})
