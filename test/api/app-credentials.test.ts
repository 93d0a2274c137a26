import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createSelfSigned } from '../../src/crypto/self-signed.ts'
import { Secret } from '../../src/crypto/secret.ts'
import { outlook } from '../../src/oauth/providers.ts'
import { ALICE, CLIENT_ID, CLIENT_SECRET, runQueue, startWorld, type World } from '../support/world.ts'

const NEXT_SECRET = 'Nx8Q~the.next.client-secret_value_0123456789'
const made = createSelfSigned({ subject: 'Mailbridge', days: 365 })
const soon = () => new Date(Date.now() + 5 * 60_000).toISOString() // inside the 10-minute refresh margin

async function send(w: World, subject: string): Promise<string> {
  const res = await w.mb.api('POST', '/api/v1/mail', { from: ALICE, to: ['bob@example.net'], subject, text: 'hello' })
  assert.equal(res.statusCode, 202, res.body)
  return res.json().id
}

test('certificate credentials: a certificate-only app connects, refreshes and sends, and no token request carries a client_secret', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const s = await made
  const pem = s.certificatePem + s.privateKeyPem
  w.ms.uploadCertificate(CLIENT_ID, s.certificatePem)
  const patched = await w.mb.api('PATCH', '/api/v1/settings', { microsoft_outlook_client_secret: null, microsoft_outlook_client_certificate: pem })
  assert.equal(patched.statusCode, 200, patched.body)
  const view = patched.json()
  assert.equal(view.microsoft_outlook_client_secret_set, false, 'no secret stored')
  assert.equal(view.microsoft_outlook_client_certificate_set, true)
  assert.match(view.microsoft_outlook_client_certificate_thumbprint, /^[0-9A-F]{40}$/)
  assert.equal(view.microsoft_outlook_client_certificate_expires_at.slice(0, 10), s.notAfter.toISOString().slice(0, 10))
  assert.ok(!patched.body.includes('PRIVATE KEY') && !patched.body.includes('BEGIN CERTIFICATE'), 'write-only')

  const server = await w.outgoingServer()
  assert.equal((await w.connect(server.id)).statusCode, 302, 'the code is redeemed with a client assertion')
  const first = await send(w, 'one')
  await runQueue(w)
  // An hour later: the access token is refreshed with a new assertion.
  await w.mb.services.database.db.updateTable('credentials').set({ access_expires_at: soon() }).execute()
  const second = await send(w, 'two')
  await runQueue(w)
  for (const id of [first, second]) assert.equal((await w.mb.api('GET', `/api/v1/mail/${id}`)).json().state, 'sent')
  assert.equal(w.smtp.messages.length, 2)
  const grants = w.ms.tokenRequests.map((r) => `${r.grant_type}:${r.clientAuth}:${r.error ?? 'ok'}`)
  assert.deepEqual(grants, ['authorization_code:client_assertion:ok', 'refresh_token:client_assertion:ok'])
  assert.ok(!w.mb.logs.join('').includes('PRIVATE KEY'), 'the key is never logged')
  // The settings row holds the key sealed, not in clear.
  const rows = await w.mb.services.database.db.selectFrom('settings').select(['key', 'value']).execute()
  assert.ok(!rows.some((r) => r.value.includes('PRIVATE KEY')))
})

test('certificate credentials: a certificate Azure does not know is refused (AADSTS700027, 422) and not saved', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const s = await made
  const server = await w.outgoingServer()
  await w.connect(server.id)
  const res = await w.mb.api('PATCH', '/api/v1/settings', { microsoft_outlook_client_certificate: s.certificatePem + s.privateKeyPem })
  assert.equal(res.statusCode, 422, res.body)
  assert.equal(res.json().error.code, 'client_certificate_refused')
  assert.equal(res.json().error.field, 'microsoft_outlook_client_certificate')
  assert.match(res.json().error.message, /AADSTS700027/)
  assert.match(res.json().error.message, /upload the certificate/)
  assert.equal((await w.mb.api('GET', '/api/v1/settings')).json().microsoft_outlook_client_certificate_set, false)
  const bad = await w.mb.api('PATCH', '/api/v1/settings', { microsoft_outlook_client_certificate: s.certificatePem })
  assert.equal(bad.statusCode, 400)
  assert.equal(bad.json().error.field, 'microsoft_outlook_client_certificate')
  assert.match(bad.json().error.message, /No private key found/)
})

test('secret rollover: the current secret expires mid-run, the next one takes over and is promoted, and no mail fails', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  w.ms.addClientSecret(CLIENT_ID, { value: NEXT_SECRET, expiresAt: new Date(Date.now() + 700 * 86_400_000) })
  const server = await w.outgoingServer()
  await w.connect(server.id)
  const saved = await w.mb.api('PATCH', '/api/v1/settings', { microsoft_outlook_client_secret_next: NEXT_SECRET, microsoft_outlook_client_secret_next_expires_at: '2029-01-31' })
  assert.equal(saved.statusCode, 200, saved.body)
  assert.equal(saved.json().microsoft_outlook_client_secret_next_check.result, 'accepted', 'the next secret is tried with Microsoft before it is saved')
  assert.equal(saved.json().microsoft_outlook_client_secret_next_set, true)
  const ids = [await send(w, 'before')]
  await runQueue(w)
  // The current secret reaches its end date; the mailbox's access token runs out at the same time.
  w.ms.expireClientSecret(CLIENT_ID, CLIENT_SECRET)
  await w.mb.services.database.db.updateTable('credentials').set({ access_expires_at: soon() }).execute()
  for (let i = 0; i < 3; i++) ids.push(await send(w, `after ${i}`))
  await runQueue(w)
  for (const id of ids) assert.equal((await w.mb.api('GET', `/api/v1/mail/${id}`)).json().state, 'sent', `mail ${id}`)
  const refreshes = w.ms.tokenRequests.filter((r) => r.grant_type === 'refresh_token').map((r) => r.aadsts ?? 'ok')
  assert.deepEqual(refreshes.slice(-2), [7000222, 'ok'], 'refused once, then the next secret')
  const view = (await w.mb.api('GET', '/api/v1/settings')).json()
  assert.equal(view.microsoft_outlook_client_secret_next_set, false, 'next := empty')
  assert.equal(view.microsoft_outlook_client_secret_expires_at, '2029-01-31T00:00:00.000Z', 'the next secret\'s expiry came along')
  assert.ok(view.microsoft_outlook_client_secret_promoted_at)
  assert.equal((await w.mb.services.settings.secret('microsoft_outlook_client_secret'))?.reveal(), NEXT_SECRET, 'current := next')
  const audit = (await w.mb.api('GET', '/api/v1/audit')).json().items
  assert.ok(audit.some((e: { action: string; detail: { refused?: string } | null }) => e.action === 'settings.client_secret_promoted' && e.detail?.refused === 'AADSTS7000222'), 'an audit entry')
  assert.ok(w.mb.logs.some((l) => l.includes('the next secret worked and is now the current one')))
  assert.ok(!w.mb.logs.join('').includes(NEXT_SECRET), 'the secret itself is never logged')
  // The token is healthy: the badge never turned red.
  assert.equal((await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json().token.valid, true)
})

test('secret rollover: two nodes promoting the same next secret at once, exactly one wins', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const { settings } = w.mb.services
  await settings.update({ microsoft_outlook_client_secret_next: NEXT_SECRET })
  const promote = () => settings.promoteSecret({ from: 'microsoft_outlook_client_secret_next', to: 'microsoft_outlook_client_secret', expected: new Secret(NEXT_SECRET) })
  const results = await Promise.all([promote(), promote(), promote()])
  assert.deepEqual(results.filter(Boolean).length, 1)
  assert.equal((await settings.secret('microsoft_outlook_client_secret'))?.reveal(), NEXT_SECRET)
  assert.equal(await settings.has('microsoft_outlook_client_secret_next'), false)
  assert.equal(await promote(), false, 'nothing left to promote')
})

test('secret rollover: with no next secret stored, an expired secret fails as before (AADSTS7000222) and nothing is promoted', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  w.ms.expireClientSecret(CLIENT_ID, CLIENT_SECRET)
  await w.mb.services.database.db.updateTable('credentials').set({ access_expires_at: soon() }).execute()
  await assert.rejects(w.mb.services.credentials.accessToken(outlook, ALICE), /AADSTS7000222|expired/)
  assert.equal((await w.mb.api('GET', '/api/v1/settings')).json().microsoft_outlook_client_secret_promoted_at, null)
})

test('certificate credentials: app-only access (client credentials in the tenant) signs in with the certificate too', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const tenant = '8f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b'
  const shared = 'sales@contoso.com'
  w.ms.grantAppAccess({ clientId: CLIENT_ID, tenant, roles: ['SMTP.SendAsApp'], mailboxes: [shared] })
  const s = await made
  w.ms.uploadCertificate(CLIENT_ID, s.certificatePem)
  await w.mb.services.settings.update({ microsoft_outlook_client_secret: null, microsoft_outlook_client_certificate: s.certificatePem + s.privateKeyPem })
  const res = await w.mb.api('POST', '/api/v1/outgoing-servers', { name: 'Sales', authentication: 'outlook_app', username: shared, tenant_id: tenant, host: w.smtp.host, port: w.smtp.port })
  assert.equal(res.statusCode, 201, res.body)
  assert.deepEqual((await w.mb.api('POST', `/api/v1/outgoing-servers/${res.json().id}/test`)).json(), { ok: true, message: 'Connection Test Successful!' })
  assert.deepEqual(w.ms.tokenRequests.map((r) => `${r.grant_type}:${r.clientAuth}:${r.error ?? 'ok'}`), ['client_credentials:client_assertion:ok'])
})
