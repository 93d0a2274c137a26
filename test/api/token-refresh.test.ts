import assert from 'node:assert/strict'
import { test } from 'node:test'
import { outlook } from '../../src/oauth/providers.ts'
import { ALICE, startWorld } from '../support/world.ts'

const soon = () => new Date(Date.now() + 5 * 60_000).toISOString() // inside the 10-minute margin

test('refresh: a token within 10 minutes of expiry is refreshed, and the rotated refresh token is saved each time', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  const { credentials, database, box } = w.mb.services
  const first = await credentials.accessToken(outlook, ALICE)
  assert.equal(w.ms.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length, 0, 'a fresh token is reused')
  for (let round = 1; round <= 3; round++) {
    await database.db.updateTable('credentials').set({ access_expires_at: soon() }).execute()
    const token = await credentials.accessToken(outlook, ALICE)
    assert.notEqual(token.reveal(), first.reveal())
    const row = await database.db.selectFrom('credentials').selectAll().executeTakeFirstOrThrow()
    assert.equal(box.open(row.refresh_token!, 'credentials.refresh_token').reveal(), w.ms.latestRefreshToken(ALICE), `round ${round}: the newest refresh token is stored`)
    assert.equal(row.refresh_count, round)
  }
  // Each refresh presented the token the previous one returned: generations 1, 2, 3.
  assert.deepEqual(w.ms.tokenRequests.filter((r) => r.grant_type === 'refresh_token').map((r) => r.refreshGeneration), [1, 2, 3])
})

test('refresh: twenty callers at once make exactly one refresh call', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  await w.mb.services.database.db.updateTable('credentials').set({ access_expires_at: soon() }).execute()
  w.ms.setTokenEndpoint({ delayMs: 200 })
  const tokens = await Promise.all(Array.from({ length: 20 }, () => w.mb.services.credentials.accessToken(outlook, ALICE)))
  assert.equal(new Set(tokens.map((x) => x.reveal())).size, 1)
  assert.equal(w.ms.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length, 1)
})

test('refresh: the lease also holds between two services on one database (two nodes)', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  const { CredentialService } = await import('../../src/oauth/credentials.ts')
  const s = w.mb.services
  const other = new CredentialService({ db: s.database.db, box: s.box, settings: s.settings, log: s.log, refreshMarginSeconds: 600, trustedHosts: s.settings.trustedHosts })
  await s.database.db.updateTable('credentials').set({ access_expires_at: soon() }).execute()
  w.ms.setTokenEndpoint({ delayMs: 300 })
  const [a, b] = await Promise.all([s.credentials.accessToken(outlook, ALICE), other.accessToken(outlook, ALICE)])
  assert.equal(a.reveal(), b.reveal())
  assert.equal(w.ms.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length, 1)
})

test('refresh: a revoked grant (AADSTS50173) marks the token invalid, and stops asking Microsoft until Reconnect', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  w.ms.revokeUser(ALICE)
  await w.mb.services.database.db.updateTable('credentials').set({ access_expires_at: soon() }).execute()
  await assert.rejects(w.mb.services.credentials.accessToken(outlook, ALICE), /AADSTS50173/)
  await assert.rejects(w.mb.services.credentials.accessToken(outlook, ALICE), /Reconnect/)
  assert.equal(w.ms.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length, 1, 'no second call to a dead grant')
  const s = (await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json()
  assert.equal(s.token.status, 'invalid')
  assert.match(s.token.last_error, /revoked/)
})

test('refresh: the token endpoint being down is recorded and retried on the next call', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  await w.mb.services.database.db.updateTable('credentials').set({ access_expires_at: soon() }).execute()
  w.ms.setTokenEndpoint({ down: true })
  await assert.rejects(w.mb.services.credentials.accessToken(outlook, ALICE), /could not be reached|did not answer/)
  w.ms.setTokenEndpoint({})
  const token = await w.mb.services.credentials.accessToken(outlook, ALICE)
  assert.ok(token.reveal().length > 10)
  assert.equal((await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json().token.valid, true)
})
