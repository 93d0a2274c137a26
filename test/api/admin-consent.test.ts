import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ALICE, CLIENT_ID, startWorld, type World } from '../support/world.ts'

const ADMIN = 'admin@contoso.com'

/** A tenant whose user consent setting is "Do not allow user consent", with an administrator (USER_CONSENT). */
async function lockedTenant(t: import('node:test').TestContext) {
  const w = await startWorld()
  t.after(w.close)
  w.ms.addUser(ADMIN, { admin: true })
  w.ms.setConsentPolicy({ userConsent: 'admin_only' })
  return { w, server: await w.outgoingServer() }
}

/** What a browser does on the admin consent page: sign in as `login` and answer; then lands on Mailbridge's callback. */
async function answerAdminConsent(w: World, url: string, login: string, decision: 'yes' | 'no') {
  const page = await (await fetch(url)).text()
  const fields: Record<string, string> = { login, decision }
  for (const m of page.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) fields[m[1]!] = m[2]!.replace(/&amp;/g, '&')
  const res = await fetch(new URL(url).origin + new URL(url).pathname, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() })
  const back = new URL(res.headers.get('location')!)
  return { back, answer: await w.mb.app.inject({ method: 'GET', url: back.pathname + back.search }) }
}

/** A user's Connect that meets "Need admin approval" and clicks "Return to the application without granting consent". */
async function connectAndCancel(w: World, id: string) {
  const url = (await w.mb.api('POST', `/api/v1/outgoing-servers/${id}/connect`)).json().authorize_url as string
  const fields: Record<string, string> = { login: ALICE, decision: 'yes' }
  for (const m of (await (await fetch(url)).text()).matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) fields[m[1]!] = m[2]!.replace(/&amp;/g, '&')
  const page = await (await fetch(new URL(url).origin + new URL(url).pathname, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() })).text()
  assert.match(page, /Need admin approval/)
  const ticket = /name="ticket" value="([^"]*)"/.exec(page)![1]!
  const res = await fetch(`${w.ms.url}/cancel`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ ticket }).toString() })
  const back = new URL(res.headers.get('location')!)
  return w.mb.app.inject({ method: 'GET', url: back.pathname + back.search })
}

test('admin consent: a user\'s Connect meets "Need admin approval"; an admin grants consent for the tenant; then the user connects with no consent prompt', async (t) => {
  const { w, server } = await lockedTenant(t)
  const cancelled = await connectAndCancel(w, server.id)
  assert.equal(cancelled.statusCode, 400)
  assert.match(cancelled.body, /cancelled\. If Microsoft showed &quot;Need admin approval&quot;|cancelled\. If Microsoft showed "Need admin approval"/)
  assert.match(cancelled.body, /Grant admin consent/)
  const before = (await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json().token
  assert.deepEqual([before.sign_in.state, before.sign_in.error_code], ['declined', 'cancel'])

  const res = await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/admin-consent`)
  assert.equal(res.statusCode, 200, res.body)
  const url = new URL(res.json().admin_consent_url)
  // The endpoint is /common: the mailbox's domain names the tenant ("Do not use 'common'", v2-admin-consent).
  assert.equal(url.origin + url.pathname, `${w.ms.url}/contoso.com/v2.0/adminconsent`)
  const q = Object.fromEntries(url.searchParams)
  assert.deepEqual(Object.keys(q).sort(), ['client_id', 'redirect_uri', 'scope', 'state'])
  assert.equal(q.client_id, CLIENT_ID)
  assert.equal(q.redirect_uri, 'http://localhost:8080/microsoft_outlook/confirm')
  assert.equal(q.scope, 'openid email offline_access https://outlook.office.com/SMTP.Send https://outlook.office.com/IMAP.AccessAsUser.All')
  assert.ok(q.state!.length >= 40)

  const { back, answer } = await answerAdminConsent(w, url.toString(), ADMIN, 'yes')
  assert.equal(back.searchParams.get('admin_consent'), 'True')
  assert.equal(answer.statusCode, 200, answer.body)
  assert.match(answer.body, /Admin consent granted/)
  assert.match(answer.body, new RegExp(`tenant ${w.ms.tenantId}`))
  assert.match(answer.body, /IMAP\.AccessAsUser\.All<\/code> — read and change the user/)
  assert.match(answer.body, new RegExp(`href="/admin/outgoing-servers/${server.id}"`))
  // The state is single-use, like Connect's.
  const replay = await w.mb.app.inject({ method: 'GET', url: back.pathname + back.search })
  assert.equal(replay.statusCode, 400)
  assert.match(replay.body, /already used/)
  const granted = (await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json().token
  assert.equal(granted.sign_in.state, 'admin_consented')
  assert.equal(granted.admin_consent_required, false)
  assert.equal(granted.valid, false, 'an admin consent is no sign-in: the mailbox still connects')

  // A normal Connect: Microsoft signs the user in and asks nothing.
  const authorize = (await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/connect`)).json().authorize_url
  const signIn = await (await fetch(authorize)).text()
  assert.doesNotMatch(signIn, /Permissions requested/)
  const connected = await w.connect(server.id)
  assert.equal(connected.statusCode, 302, connected.body)
  const after = (await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json().token
  assert.equal(after.label, 'Outlook Token Valid')
  assert.equal(after.sign_in.state, 'completed')
})

test('admin consent refused: Cancel comes back as admin_consent=True&error=consent_required, shown as a 400 page; a forged or swapped state is refused', async (t) => {
  const { w, server } = await lockedTenant(t)
  const url = (await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/admin-consent`)).json().admin_consent_url
  const { answer } = await answerAdminConsent(w, url, ADMIN, 'no')
  assert.equal(answer.statusCode, 400)
  assert.match(answer.body, /AADSTS65004: The resource owner or authorization server denied the request/)
  const token = (await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json().token
  assert.deepEqual([token.sign_in.flow, token.sign_in.state, token.sign_in.error_code], ['admin_consent', 'declined', 'AADSTS65004'])

  // A Connect's state cannot carry an admin consent's answer, nor an admin consent's a code.
  const connectState = new URL((await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/connect`)).json().authorize_url).searchParams.get('state')!
  const swapped = await w.mb.app.inject(`/microsoft_outlook/confirm?admin_consent=True&tenant=${w.ms.tenantId}&state=${encodeURIComponent(connectState)}`)
  assert.equal(swapped.statusCode, 400)
  assert.match(swapped.body, /unknown or was forged/)
  const adminState = new URL((await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/admin-consent`)).json().admin_consent_url).searchParams.get('state')!
  const withCode = await w.mb.app.inject(`/microsoft_outlook/confirm?code=abc&state=${encodeURIComponent(adminState)}`)
  assert.equal(withCode.statusCode, 400)
  assert.match(withCode.body, /unknown or was forged/)
})

test('admin consent: Microsoft naming AADSTS90094 or 65001 sets token.admin_consent_required; Gmail and app-only servers have no admin consent here', async (t) => {
  const { w, server } = await lockedTenant(t)
  const state = new URL((await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/connect`)).json().authorize_url).searchParams.get('state')!
  const refused = await w.mb.app.inject(`/microsoft_outlook/confirm?error=access_denied&error_description=${encodeURIComponent('AADSTS90094: The grant requires admin permission.\r\nTrace ID: x')}&state=${encodeURIComponent(state)}`)
  assert.equal(refused.statusCode, 400)
  const token = (await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json().token
  assert.equal(token.admin_consent_required, true)
  assert.equal(token.sign_in.error_code, 'AADSTS90094')

  const app = (await w.mb.api('POST', '/api/v1/outgoing-servers', { name: 'App', authentication: 'outlook_app', tenant_id: w.ms.tenantId, username: 'shared@contoso.com', host: w.smtp.host, port: w.smtp.port })).json()
  const appOnly = await w.mb.api('POST', `/api/v1/outgoing-servers/${app.id}/admin-consent`)
  assert.equal(appOnly.statusCode, 409)
  assert.match(appOnly.json().error.message, /Grant admin consent for your tenant/)
  await w.mb.services.settings.update({ google_gmail_client_id: 'x.apps.googleusercontent.com', google_gmail_client_secret: 'g-secret' })
  const gmail = (await w.mb.api('POST', '/api/v1/incoming-servers', { name: 'G', authentication: 'gmail', username: 'a@gmail.com' })).json()
  const g = await w.mb.api('POST', `/api/v1/incoming-servers/${gmail.id}/admin-consent`)
  assert.equal(g.statusCode, 409, g.body)
  assert.match(g.json().error.message, /Google has no admin consent/)
  // With a tenant in the endpoint, that tenant is the admin consent's.
  await w.mb.services.settings.setParameter('microsoft_outlook.endpoint', w.ms.endpoint(w.ms.tenantId))
  const incoming = (await w.mb.api('POST', '/api/v1/incoming-servers', { name: 'In', authentication: 'outlook', username: ALICE })).json()
  const url = new URL((await w.mb.api('POST', `/api/v1/incoming-servers/${incoming.id}/admin-consent`)).json().admin_consent_url)
  assert.equal(url.pathname, `/${w.ms.tenantId}/v2.0/adminconsent`)
})
