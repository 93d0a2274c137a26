import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DeviceCodes } from '../../src/oauth/device-code.ts'
import { ALICE, CLIENT_SECRET, startWorld, type World } from '../support/world.ts'

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'

/** A world whose Microsoft runs on a clock the test moves; Mailbridge's polls are given their own instant. */
async function deviceWorld(t: import('node:test').TestContext) {
  const clock = { ms: Date.now() }
  const w = await startWorld({ emulator: { now: () => clock.ms } })
  t.after(w.close)
  const server = await w.outgoingServer()
  return { w, clock, server }
}
const startCode = async (w: World, id: string, kind = 'outgoing') => w.mb.api('POST', `/api/v1/${kind}-servers/${id}/connect`, { flow: 'device_code' })
const tokenOf = async (w: World, id: string, kind = 'outgoing') => (await w.mb.api('GET', `/api/v1/${kind}-servers/${id}`)).json().token
const devicePolls = (w: World) => w.ms.tokenRequests.filter((r) => r.grant_type === DEVICE_GRANT)

test('device code: connect with {"flow":"device_code"} gives the code; once the person signs in, the next poll stores the credential for every server of the mailbox', async (t) => {
  const { w, clock, server } = await deviceWorld(t)
  const created = await w.mb.api('POST', '/api/v1/incoming-servers', { name: 'In', authentication: 'outlook', username: ALICE })
  assert.equal(created.statusCode, 201, created.body)
  const incoming = created.json()
  const res = await startCode(w, server.id)
  assert.equal(res.statusCode, 200, res.body)
  const code = res.json()
  assert.deepEqual(Object.keys(code).sort(), ['expires_at', 'user_code', 'verification_uri'])
  assert.equal(code.verification_uri, `${w.ms.url}/devicelogin`)
  assert.ok(Date.parse(code.expires_at) > Date.now() + 14 * 60_000)
  // The device code itself is a secret: never answered, never stored in the clear, never logged.
  const row = await w.mb.services.database.db.selectFrom('sign_ins').selectAll().executeTakeFirstOrThrow()
  assert.match(row.device_code!, /^v1:/)
  const pending = await tokenOf(w, server.id)
  assert.equal(pending.valid, false)
  assert.deepEqual({ ...pending.sign_in, expires_at: undefined }, { flow: 'device_code', state: 'pending', user_code: code.user_code, verification_uri: code.verification_uri, expires_at: undefined, reason: null, error_code: null })
  assert.equal((await tokenOf(w, incoming.id, 'incoming')).sign_in.user_code, code.user_code, 'one sign-in per mailbox: the incoming server shows it too')

  // Polls wait for the interval (5 s): none is due yet.
  assert.equal(await w.mb.services.deviceCodes.tick(), 0)
  clock.ms += 5000
  assert.equal(await w.mb.services.deviceCodes.tick(Date.now() + 5000), 1)
  assert.equal(devicePolls(w).at(-1)!.error, 'authorization_pending')
  assert.equal((await tokenOf(w, server.id)).sign_in.state, 'pending')

  assert.match(await w.ms.completeDeviceSignIn(code.user_code, { user: ALICE }), /You have signed in/)
  clock.ms += 5000
  assert.equal(await w.mb.services.deviceCodes.tick(Date.now() + 10_000), 1)
  const done = await tokenOf(w, server.id)
  assert.equal(done.valid, true, JSON.stringify(done))
  assert.equal(done.label, 'Outlook Token Valid')
  assert.deepEqual({ flow: done.sign_in.flow, state: done.sign_in.state, user_code: done.sign_in.user_code }, { flow: 'device_code', state: 'completed', user_code: null })
  assert.equal((await tokenOf(w, incoming.id, 'incoming')).valid, true)
  // The credential works as Connect's does: Test Connection authenticates with it.
  assert.deepEqual((await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/test`)).json(), { ok: true, message: 'Connection Test Successful!' })
  // Every poll was a confidential client's: the secret went along (the emulator refuses a poll without it).
  assert.ok(devicePolls(w).every((r) => r.aadsts !== 7000218))
  assert.equal(await w.mb.services.deviceCodes.tick(Date.now() + 60_000), 0, 'a completed sign-in is not polled again')
  const logs = w.mb.logs.join('')
  assert.ok(!logs.includes(CLIENT_SECRET) && !logs.includes(w.ms.latestRefreshToken(ALICE)!))
})

test('device code: slow_down adds 5 s to the interval, and Mailbridge waits that long before the next poll', async (t) => {
  const { w, clock, server } = await deviceWorld(t)
  await startCode(w, server.id)
  const at = Date.now()
  clock.ms += 5000
  assert.equal(await w.mb.services.deviceCodes.tick(at + 5000), 1)
  // Microsoft's clock saw only 2 s pass: too early, slow_down.
  clock.ms += 2000
  assert.equal(await w.mb.services.deviceCodes.tick(at + 10_000), 1)
  assert.equal(devicePolls(w).at(-1)!.error, 'slow_down')
  const row = await w.mb.services.database.db.selectFrom('sign_ins').selectAll().executeTakeFirstOrThrow()
  assert.equal(row.interval_s, 10)
  assert.equal(await w.mb.services.deviceCodes.tick(at + 15_000), 0, 'the old interval is not enough any more')
  clock.ms += 10_000
  assert.equal(await w.mb.services.deviceCodes.tick(at + 20_000), 1)
  assert.equal(devicePolls(w).at(-1)!.error, 'authorization_pending')
  assert.equal(devicePolls(w).length, 3)
})

test('device code: a declined sign-in and an expired code stop the polling, with the reason on the server', async (t) => {
  const { w, clock, server } = await deviceWorld(t)
  const a = (await startCode(w, server.id)).json()
  await w.ms.completeDeviceSignIn(a.user_code, { user: ALICE, approve: false })
  clock.ms += 5000
  await w.mb.services.deviceCodes.tick(Date.now() + 5000)
  const declined = (await tokenOf(w, server.id)).sign_in
  assert.equal(declined.state, 'declined')
  assert.equal(declined.error_code, 'authorization_declined')
  assert.match(declined.reason, /declined at Microsoft/)
  assert.equal(declined.user_code, null)

  // Microsoft says the code expired (its clock is past 15 minutes)…
  const b = (await startCode(w, server.id)).json()
  assert.notEqual(b.user_code, a.user_code)
  clock.ms += 901_000
  await w.mb.services.deviceCodes.tick(Date.now() + 5000)
  const expired = (await tokenOf(w, server.id)).sign_in
  assert.deepEqual([expired.state, expired.error_code], ['expired', 'expired_token'])
  assert.match(expired.reason, /codes last 15 minutes/)
  // …or Mailbridge sees it expire itself and does not ask.
  await startCode(w, server.id)
  const polls = devicePolls(w).length
  assert.equal(await w.mb.services.deviceCodes.tick(Date.now() + 901_000), 1)
  assert.equal(devicePolls(w).length, polls)
  assert.equal((await tokenOf(w, server.id)).sign_in.state, 'expired')
  assert.equal((await tokenOf(w, server.id)).valid, false)
})

test('device code: a code signed in by another account than the username stores nothing and says who signed in', async (t) => {
  const { w, clock, server } = await deviceWorld(t)
  const code = (await startCode(w, server.id)).json()
  await w.ms.completeDeviceSignIn(code.user_code, { user: 'bob@contoso.com' })
  clock.ms += 5000
  await w.mb.services.deviceCodes.tick(Date.now() + 5000)
  const token = await tokenOf(w, server.id)
  assert.equal(token.valid, false)
  assert.equal(token.sign_in.state, 'failed')
  assert.equal(token.sign_in.error_code, 'identity_mismatch')
  assert.match(token.sign_in.reason, /Signed in as bob@contoso\.com, but this server is for alice@contoso\.com/)
  assert.equal(await w.mb.services.database.db.selectFrom('credentials').select('id').executeTakeFirst(), undefined)
})

test('device code on two nodes: a code leased by a node that died is polled by another once the lease runs out, and redeemed once', async (t) => {
  const { w, clock, server } = await deviceWorld(t)
  const code = (await startCode(w, server.id)).json()
  const { db, box, credentials, log } = { db: w.mb.services.database.db, box: w.mb.services.box, credentials: w.mb.services.credentials, log: w.mb.services.log }
  const other = new DeviceCodes({ db, box, credentials, log, nodeId: 'n-other' })
  // A node took the code and died before it could write what came of its poll.
  const at = Date.now()
  await db.updateTable('sign_ins').set({ lease_until: new Date(at + 30_000).toISOString(), lease_holder: 'n-dead' }).execute()
  await w.ms.completeDeviceSignIn(code.user_code, { user: ALICE })
  clock.ms += 10_000
  assert.equal(await other.tick(at + 10_000), 0, 'leased by the dead node')
  assert.equal(await w.mb.services.deviceCodes.tick(at + 10_000), 0)
  // Both live nodes look once the lease has run out; one claims it, the other finds it taken or done.
  const [a, b] = await Promise.all([other.tick(at + 31_000), w.mb.services.deviceCodes.tick(at + 31_000)])
  assert.equal(a + b, 1)
  assert.equal(devicePolls(w).filter((r) => !r.error).length, 1, 'one redemption')
  assert.equal((await tokenOf(w, server.id)).valid, true)
})

test('device code: the background loop polls due codes, and stops after the poll under way on shutdown', async (t) => {
  const { w, server } = await deviceWorld(t)
  await startCode(w, server.id)
  const db = w.mb.services.database.db
  const due = () => db.updateTable('sign_ins').set({ next_poll_at: new Date(Date.now() - 1000).toISOString() }).execute()
  await due()
  const loop = new DeviceCodes({ db, box: w.mb.services.box, credentials: w.mb.services.credentials, log: w.mb.services.log, nodeId: 'n-loop', pollMs: 20 })
  loop.start()
  while (devicePolls(w).length === 0) await new Promise((r) => setTimeout(r, 20))
  await loop.stop()
  const polls = devicePolls(w).length
  await due()
  await new Promise((r) => setTimeout(r, 200))
  assert.equal(devicePolls(w).length, polls, 'no poll after stop()')
})

test('device code: refused for app-only and Gmail servers, and for an unknown flow', async (t) => {
  const { w, server } = await deviceWorld(t)
  const app = (await w.mb.api('POST', '/api/v1/outgoing-servers', { name: 'App', authentication: 'outlook_app', tenant_id: w.ms.tenantId, username: 'shared@contoso.com', host: w.smtp.host, port: w.smtp.port })).json()
  const refused = await startCode(w, app.id)
  assert.equal(refused.statusCode, 409)
  assert.match(refused.json().error.message, /no one signs in/)
  await w.mb.services.settings.update({ google_gmail_client_id: 'x.apps.googleusercontent.com', google_gmail_client_secret: 'g-secret' })
  const gmail = (await w.mb.api('POST', '/api/v1/outgoing-servers', { name: 'G', authentication: 'gmail', username: 'a@gmail.com', host: w.smtp.host, port: w.smtp.port })).json()
  const g = await startCode(w, gmail.id)
  assert.equal(g.statusCode, 409, g.body)
  assert.match(g.json().error.message, /Google offers no sign-in with a code for mail/)
  const bad = await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/connect`, { flow: 'password' })
  assert.equal(bad.statusCode, 400)
  assert.equal((await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/connect`, {})).statusCode, 200, '{} is the default flow')
})
