import assert from 'node:assert/strict'
import { test } from 'node:test'
import { hashPassword } from '../../src/crypto/passwords.ts'
import { LOGIN_FAILURES_ALLOWED } from '../../src/access/admin-sessions.ts'
import { adminClient, cookieOf, signInForm } from '../support/admin-client.ts'
import { startMailbridge } from '../support/harness.ts'
import { ALICE, CLIENT_SECRET, startWorld } from '../support/world.ts'

test('sign-in: after too many wrong passwords from one address even the right one gets 429 for a while, other addresses still sign in', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  await mb.services.settings.set('admin_password_hash', await hashPassword('right-password'))
  for (let i = 0; i < LOGIN_FAILURES_ALLOWED; i++) {
    const res = await signInForm(mb.app, { password: `wrong-${i}`, ip: '203.0.113.7' })
    assert.equal(res.statusCode, 401)
    assert.match(res.body, /Wrong username or password/)
  }
  const limited = await signInForm(mb.app, { password: 'right-password', ip: '203.0.113.7' })
  assert.equal(limited.statusCode, 429)
  assert.match(limited.body, /Too many failed sign-ins from your address\. Wait \d+ minutes?/)
  assert.ok(Number(limited.headers['retry-after']) > 0)
  assert.equal(cookieOf(limited, 'mb_session'), undefined)
  assert.equal((await signInForm(mb.app, { password: 'right-password', ip: '198.51.100.2' })).statusCode, 303)
  assert.ok(mb.logs.some((l) => l.includes('too many failed attempts') && l.includes('203.0.113.7')), 'the log names the client')
  assert.ok(!mb.logs.join('').includes('right-password') && !mb.logs.join('').includes('wrong-3'), 'passwords are never logged')
})

test('sign-in: a wrong username fails like a wrong password; the sign-in form refuses a post without its CSRF cookie', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  await mb.services.settings.set('admin_password_hash', await hashPassword('right-password'))
  assert.equal((await signInForm(mb.app, { username: 'root', password: 'right-password' })).statusCode, 401)
  const forged = await mb.app.inject({
    method: 'POST',
    url: '/admin/login',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: 'username=admin&password=right-password&_csrf=guessed-guessed-guessed-guessed',
  })
  assert.equal(forged.statusCode, 403)
  assert.equal(cookieOf(forged, 'mb_session'), undefined)
})

test('sign-in: the session cookie is HttpOnly, SameSite=Lax and Secure when the base URL is https; next never leaves the admin UI', async (t) => {
  const mb = await startMailbridge({ env: { MAILBRIDGE_BASE_URL: 'https://mail.example.com' } })
  t.after(mb.close)
  await mb.services.settings.set('admin_password_hash', await hashPassword('right-password'))
  const res = await signInForm(mb.app, { password: 'right-password', next: '//evil.example/admin' })
  assert.equal(res.statusCode, 303)
  assert.equal(res.headers.location, '/admin')
  const cookie = cookieOf(res, 'mb_session')!
  assert.match(cookie, /; HttpOnly/)
  assert.match(cookie, /; SameSite=Lax/)
  assert.match(cookie, /; Secure/)
  const row = await mb.services.database.db.selectFrom('admin_sessions').selectAll().executeTakeFirstOrThrow()
  assert.ok(!cookie.includes(row.token_hash), 'the database holds only a hash of the cookie')
  assert.equal((await signInForm(mb.app, { password: 'right-password', next: '/admin/mail?state=exception' })).headers.location, '/admin/mail?state=exception')
})

test('pages: every admin page sends a signed-out visitor to the sign-in form, and a POST without a session changes nothing', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  for (const url of ['/admin', '/admin/settings', '/admin/outgoing-servers', '/admin/outgoing-servers/new', '/admin/parameters', '/admin/mail']) {
    const res = await mb.app.inject(url)
    assert.equal(res.statusCode, 302, url)
    assert.equal(res.headers.location, `/admin/login?next=${encodeURIComponent(url)}`)
  }
  const post = await mb.app.inject({ method: 'POST', url: '/admin/parameters', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'key=a.b&value=c' })
  assert.equal(post.statusCode, 303)
  assert.equal((await mb.services.settings.listParameters()).length, 0)
  const login = await mb.app.inject('/admin/login')
  assert.match(login.body, /<label for="f-username">Username<\/label>/)
  assert.match(login.body, /<label for="f-password">Password<\/label>/)
})

test('settings: the secret is write-only, a bad Client ID is shown beside its field, and the expiry warning appears from 30 days before', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const admin = await adminClient(mb.app, mb.services)
  const secret = 'Zx8Q~a-secret-value-that-must-never-come-back'
  const saved = await admin.post('/admin/settings', { external_email_servers: '1', microsoft_outlook_client_id: '6731de76-14a6-49ae-97bc-6eba6914391e', microsoft_outlook_client_secret: secret })
  // Saved, and the page says nothing could check the secret yet (no mailbox is connected).
  assert.equal(saved.statusCode, 200)
  assert.match(saved.body, /class="banner warn" role="alert">No mailbox is connected with the Outlook Credentials yet/)
  assert.ok(!saved.body.includes(secret))
  const page = await admin.get('/admin/settings')
  assert.ok(!page.body.includes(secret))
  assert.match(page.body, /<span class="tag set">set<\/span>/)
  assert.equal((await mb.services.settings.secret('microsoft_outlook_client_secret'))?.reveal(), secret)
  // Saving again with the secret field empty keeps the stored secret.
  await admin.post('/admin/settings', { external_email_servers: '1', microsoft_outlook_client_id: '6731de76-14a6-49ae-97bc-6eba6914391e', microsoft_outlook_client_secret: '' })
  assert.equal((await mb.services.settings.secret('microsoft_outlook_client_secret'))?.reveal(), secret)

  const bad = await admin.post('/admin/settings', { external_email_servers: '1', microsoft_outlook_client_id: 'not a client id!' })
  assert.equal(bad.statusCode, 400)
  assert.match(bad.body, /id="f-microsoft_outlook_client_id-error">The Client ID is the Application \(client\) ID/)
  assert.match(bad.body, /aria-invalid="true"/)

  const inDays = (d: number) => new Date(Date.now() + d * 86_400_000).toISOString().slice(0, 10)
  await admin.post('/admin/settings', { external_email_servers: '1', microsoft_outlook_client_secret_expires_at: inDays(45) })
  assert.doesNotMatch((await admin.get('/admin/mail')).body, /Client Secret expires/)
  await admin.post('/admin/settings', { external_email_servers: '1', microsoft_outlook_client_secret_expires_at: inDays(12) })
  const warned = await admin.get('/admin/mail')
  assert.match(warned.body, /class="banner warn" role="alert">The Outlook Client Secret expires on \d{4}-\d\d-\d\d, in 1[12] days\./)
  await admin.post('/admin/settings', { external_email_servers: '1', microsoft_outlook_client_secret_expires_at: inDays(-2) })
  assert.match((await admin.get('/admin/outgoing-servers')).body, /class="banner bad" role="alert">The Outlook Client Secret expired on/)
})

test('settings: a Client Secret Microsoft refuses is not saved, and the page says why beside the field; an accepted one says so', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  const admin = await adminClient(w.mb.app, w.mb.services)
  const refused = await admin.post('/admin/settings', { external_email_servers: '1', microsoft_outlook_client_secret: '8f2b6c1e-secret-id-not-value' })
  assert.equal(refused.statusCode, 400)
  // Text beyond ASCII (Microsoft's description, an arrow) is isolated in <bdi> (issue 21 item 11).
  assert.match(refused.body, /id="f-microsoft_outlook_client_secret-error">(<bdi>)?Microsoft refused this Client Secret \(AADSTS7000215\) when Mailbridge tried it for alice@contoso\.com/)
  assert.match(refused.body, /Nothing was saved/)
  assert.ok(!refused.body.includes('8f2b6c1e-secret-id-not-value'), 'the refused secret is not shown back')
  assert.equal((await w.mb.services.settings.secret('microsoft_outlook_client_secret'))?.reveal(), CLIENT_SECRET)
  const accepted = await admin.post('/admin/settings', { external_email_servers: '1', microsoft_outlook_client_secret: CLIENT_SECRET })
  assert.equal(accepted.statusCode, 200)
  assert.match(accepted.body, /class="banner ok"[^>]*>Microsoft accepted the Client Secret: a token request for alice@contoso\.com with it succeeded\./)
})

test('system parameters: create, edit, refuse a bad endpoint beside its field, delete', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const admin = await adminClient(mb.app, mb.services)
  assert.equal((await admin.post('/admin/parameters', { key: 'mail.force.smtp.from', value: ALICE })).headers.location, '/admin/parameters?done=saved')
  const list = await admin.get('/admin/parameters?done=saved')
  assert.match(list.body, /Parameter saved\./)
  assert.match(list.body, /<code>mail\.force\.smtp\.from<\/code><\/td><td class="mono">alice@contoso\.com/)
  const edit = await admin.get('/admin/parameters/mail.force.smtp.from')
  assert.match(edit.body, /value="alice@contoso\.com"/)
  await admin.post('/admin/parameters/mail.force.smtp.from', { value: 'sales@contoso.com' })
  assert.equal(await mb.services.settings.parameter('mail.force.smtp.from'), 'sales@contoso.com')
  const bad = await admin.post('/admin/parameters', { key: 'microsoft_outlook.endpoint', value: 'http://login.example.com/' })
  assert.equal(bad.statusCode, 400)
  assert.match(bad.body, /id="f-value-error">microsoft_outlook\.endpoint must use https:\/\//)
  assert.match(bad.body, /value="http:\/\/login\.example\.com\/"/, 'the form keeps what was typed')
  assert.equal((await admin.post('/admin/parameters/mail.force.smtp.from/delete')).statusCode, 303)
  assert.equal(await mb.services.settings.parameter('mail.force.smtp.from'), undefined)
  assert.equal((await admin.post('/admin/parameters/mail.force.smtp.from/delete')).statusCode, 404)
  assert.equal((await admin.get('/admin/parameters/nope')).statusCode, 404)
  const unknown = await admin.get('/admin/no-such-page')
  assert.equal(unknown.statusCode, 404)
  assert.match(unknown.body, /The page \/admin\/no-such-page does not exist\./)
  assert.match(unknown.body, /<nav aria-label="Main">/)
})

test('outgoing servers: an Outlook server without a Username is refused beside the field; Connect without credentials says where to enter them', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const admin = await adminClient(mb.app, mb.services)
  const bad = await admin.post('/admin/outgoing-servers', { name: 'Sales', authentication: 'outlook', username: '', then: 'save' })
  assert.equal(bad.statusCode, 400)
  assert.match(bad.body, /id="f-username-error">An Outlook server needs a Username/)
  assert.match(bad.body, /value="Sales"/)
  assert.equal((await mb.services.outgoingServers.list()).length, 0)
  const connect = await admin.post('/admin/outgoing-servers', { name: 'Sales', authentication: 'outlook', username: ALICE, then: 'connect' })
  assert.equal(connect.statusCode, 409)
  assert.match(connect.body, /Enter the Outlook Credentials \(Client ID and Client Secret\) in Settings → General Settings first\./)
  assert.match(connect.body, /href="\/admin\/settings">Open General Settings/)
  const [server] = await mb.services.outgoingServers.list()
  assert.equal(server?.host, 'smtp.office365.com', 'saved first, with Outlook\'s defaults')
  assert.match(connect.body, /Outlook Token Missing/)
})

test('outgoing servers: Connect from the UI binds the state to the admin session; the callback in another browser is refused', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const admin = await adminClient(w.mb.app, w.mb.services)
  const server = await w.outgoingServer()
  const res = await admin.post(`/admin/outgoing-servers/${server.id}`, { then: 'connect' })
  assert.equal(res.statusCode, 303)
  const authorize = res.headers.location as string
  assert.ok(authorize.startsWith(w.ms.endpoint() + 'authorize?'))
  const back = await w.ms.consent(authorize, { user: ALICE })
  const elsewhere = await w.mb.app.inject(back.pathname + back.search)
  assert.equal(elsewhere.statusCode, 400, 'no session cookie: not the browser that started Connect')
  assert.match(elsewhere.body, /started from an admin session this browser does not send/, 'the page says the session is missing, not that the link was forged')
  assert.equal((await w.mb.services.outgoingServers.get(server.id)).token.valid, false)

  const again = await admin.post(`/admin/outgoing-servers/${server.id}`, { then: 'connect' })
  const back2 = await w.ms.consent(again.headers.location as string, { user: ALICE })
  const home = await w.mb.app.inject({ url: back2.pathname + back2.search, headers: { cookie: admin.cookie } })
  assert.equal(home.statusCode, 302)
  const page = await admin.get(home.headers.location as string)
  assert.match(page.body, /<span class="tag ok" role="status">Outlook Token Valid<\/span>/)
  assert.match(page.body, /Connected: alice@contoso\.com is linked to Mailbridge\./)
  assert.match(page.body, />Reconnect your Outlook account</)
})

test('outgoing servers: a dead token shows a red tag with its cause, and Reconnect still starts a new consent', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const admin = await adminClient(w.mb.app, w.mb.services)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  const deadBanner = /class="banner bad" role="alert">The token of this server no longer works, so it waits for a Reconnect: <a href="\/admin\/outgoing-servers\/([^"]+)">Outlook \(alice@contoso\.com\)<\/a>\./
  assert.doesNotMatch((await admin.get('/admin/mail')).body, deadBanner, 'no banner while the token works')
  w.ms.revokeUser(ALICE)
  w.ms.expireAccessTokens(ALICE)
  const tested = await admin.post(`/admin/outgoing-servers/${server.id}/test`)
  assert.equal(tested.statusCode, 200)
  assert.match(tested.body, /class="banner bad" role="alert">/)
  assert.match(tested.body, /<span class="tag bad" role="status">(<bdi>)?Outlook Token (Invalid|Expired): [^<]+(<\/bdi>)?<\/span>/)
  // Every page now says which server needs a Reconnect, with a link to it.
  assert.equal(deadBanner.exec((await admin.get('/admin/mail')).body)?.[1], server.id)
  const reconnect = await admin.post(`/admin/outgoing-servers/${server.id}`, { then: 'connect' })
  assert.equal(reconnect.statusCode, 303)
  assert.ok((reconnect.headers.location as string).startsWith(w.ms.endpoint()))
})

test('mail queue: the state filter, the failure reason, Retry and Cancel', async (t) => {
  const w = await startWorld({
    env: { MAILBRIDGE_RETRY_BASE_S: '0' },
    smtp: { rejectRcpt: (a) => (a === 'ghost@fabrikam.com' ? { code: 550, message: '5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup' } : undefined) },
  })
  t.after(w.close)
  const admin = await adminClient(w.mb.app, w.mb.services)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  const ghost = (await w.mb.api('POST', '/api/v1/mail', { to: ['ghost@fabrikam.com'], subject: 'To a ghost', text: 't' })).json().id
  await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 'To Bob', text: 't' })
  await w.mb.services.mailWorker.tick()
  await w.mb.services.mailWorker.idle()

  const failed = await admin.get('/admin/mail?state=exception')
  assert.match(failed.body, /To a ghost/)
  assert.doesNotMatch(failed.body, /To Bob/)
  assert.match(failed.body, /<code>mail_email_invalid<\/code> [^<]*5\.1\.10/)
  assert.match(failed.body, /<option value="exception" selected>Failed<\/option>/)
  const sent = await admin.get('/admin/mail?state=sent')
  assert.match(sent.body, /To Bob/)
  assert.doesNotMatch(sent.body, />Retry</, 'a sent mail has no Retry')

  const retried = await admin.post(`/admin/mail/${ghost}/retry`, { state: 'exception' })
  assert.equal(retried.headers.location, '/admin/mail?state=exception&done=retried')
  assert.equal((await w.mb.services.mails.get(ghost)).state, 'outgoing')
  assert.equal((await admin.post(`/admin/mail/${ghost}/cancel`, { state: '' })).headers.location, '/admin/mail?done=cancelled')
  assert.equal((await w.mb.services.mails.get(ghost)).state, 'cancel')
  const refused = await admin.post(`/admin/mail/${ghost}/retry`)
  assert.equal(refused.statusCode, 409)
  assert.match(refused.body, /is cancel and cannot be retried/)
  const forged = await w.mb.app.inject({ method: 'POST', url: `/admin/mail/${ghost}/cancel`, headers: { cookie: admin.cookie, 'content-type': 'application/x-www-form-urlencoded' }, payload: '_csrf=nope' })
  assert.equal(forged.statusCode, 403)
})
