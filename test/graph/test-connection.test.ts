/**
 * Test Connection for Graph servers (issue 16 item 6) against the Graph emulator: it proves what it can without
 * sending mail and says what it proved; delegated and app-only; the failures say what to do.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { rfc822 } from '../support/mailroom.ts'
import { startGraphEmulator, type GraphEmulator } from '../support/graph-emulator.ts'
import { ALICE, CLIENT_ID, startWorld, type World } from '../support/world.ts'

const TENANT = '8f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b'
const SHARED = 'sales@contoso.com'

async function graphWorld(t: test.TestContext): Promise<{ w: World; g: GraphEmulator }> {
  const w = await startWorld()
  const g = await startGraphEmulator({ identity: w.ms })
  t.after(async () => {
    await g.close()
    await w.close()
  })
  for (const m of [ALICE, SHARED]) g.addMailbox(m)
  await w.mb.services.settings.setParameter('microsoft_graph.endpoint', g.endpoint)
  return { w, g }
}

const create = async (w: World, kind: 'outgoing' | 'incoming', body: Record<string, unknown>) => {
  const res = await w.mb.api('POST', `/api/v1/${kind}-servers`, { name: `${kind} Graph`, authentication: 'outlook', transport: 'graph', username: ALICE, ...body })
  assert.equal(res.statusCode, 201, res.body)
  return res.json() as { id: string }
}
const testIt = async (w: World, kind: 'outgoing' | 'incoming', id: string) => (await w.mb.api('POST', `/api/v1/${kind}-servers/${id}/test`)).json() as { ok: boolean; message: string }
const graphRequests = (g: GraphEmulator) => g.requests.map((r) => `${r.method} ${r.path} ${r.status}`)

test('Test Connection, delegated: an outgoing Graph server gets a new Graph token with Mail.Send and finds the mailbox, sending nothing; SMTP is never touched', async (t) => {
  const { w, g } = await graphWorld(t)
  const s = await create(w, 'outgoing', {})
  assert.equal((await w.connect(s.id)).statusCode, 302)
  const refreshesBefore = w.ms.tokenRequests.length
  const r = await testIt(w, 'outgoing', s.id)
  assert.deepEqual(r, {
    ok: true,
    message: `Connection Test Successful! Microsoft Graph gave a delegated token with Mail.Send, and ${new URL(g.endpoint).host} found ${ALICE} and let the token in (Mail.Send does not read mail, so no folder was opened). No mail was sent: whether Exchange accepts mail from this mailbox shows with the first one.`,
  })
  assert.equal(w.ms.tokenRequests.length, refreshesBefore + 1, 'a new token, not the cached one')
  assert.deepEqual(graphRequests(g), ['GET /me/mailFolders/inbox 403'])
  assert.equal(g.sent.length, 0)
  assert.equal(w.smtp.messages.length, 0)
})

test('Test & Confirm, delegated: an incoming Graph server reads its folder and says how many messages it holds; an unknown folder is named; it stays draft until Graph fetching lands', async (t) => {
  const { w, g } = await graphWorld(t)
  const s = await create(w, 'incoming', { folder: 'Inbox/Orders' })
  assert.equal((await w.connect(s.id, { kind: 'incoming' })).statusCode, 302)
  const missing = await testIt(w, 'incoming', s.id)
  assert.equal(missing.ok, false)
  assert.match(missing.message, /^Connection Test Failed: No folder "Inbox\/Orders" in alice@contoso\.com\. Check the folder name/)
  assert.equal((await w.mb.api('GET', `/api/v1/incoming-servers/${s.id}`)).json().last_error, missing.message)
  const orders = g.addFolder(ALICE, 'Orders', 'inbox')
  for (const n of [1, 2]) g.deliver(ALICE, rfc822({ subject: `Order ${n}` }), { folder: orders })
  const r = await testIt(w, 'incoming', s.id)
  assert.equal(r.ok, true, r.message)
  assert.match(r.message, /^Connection Test Successful! Microsoft Graph gave a delegated token with Mail\.ReadWrite, and alice@contoso\.com's folder Orders \(2 messages\) was read through /)
  const server = (await w.mb.api('GET', `/api/v1/incoming-servers/${s.id}`)).json()
  assert.deepEqual([server.state, server.last_error], ['draft', null])
})

test('Test Connection: a mailbox connected without Graph says Reconnect; a Graph refusal of the refreshed token too turns the badge red', async (t) => {
  const { w, g } = await graphWorld(t)
  const smtp = await w.outgoingServer()
  assert.equal((await w.connect(smtp.id)).statusCode, 302)
  const s = await create(w, 'incoming', {})
  const r = await testIt(w, 'incoming', s.id)
  assert.equal(r.ok, false)
  assert.match(r.message, /^Connection Test Failed for alice@contoso\.com: .*connected without the Microsoft Graph permission Mail\.ReadWrite .*AADSTS65001.*Reconnect/)
  assert.equal(g.requests.length, 0, 'no token, no Graph request')

  assert.equal((await w.connect(s.id, { kind: 'incoming' })).statusCode, 302)
  g.inject({ status: 401, code: 'InvalidAuthenticationToken', message: 'Access token validation failure.', times: 2 })
  const refused = await testIt(w, 'incoming', s.id)
  assert.equal(refused.ok, false)
  assert.match(refused.message, /refused the Graph token for alice@contoso\.com \(401 InvalidAuthenticationToken: Access token validation failure\.\)/)
  assert.equal(g.requests.filter((x) => x.status === 401).length, 2, 'one retry with a refreshed token')
  assert.equal((await w.mb.api('GET', `/api/v1/incoming-servers/${s.id}`)).json().token.valid, false)
})

test('Test Connection, app-only: Graph tokens by client credentials; the mailbox found, read with Mail.ReadWrite, and an access policy or an unknown mailbox explained', async (t) => {
  const { w, g } = await graphWorld(t)
  w.ms.grantAppAccess({ clientId: CLIENT_ID, tenant: TENANT, roles: ['Mail.Send'] })
  const app = { authentication: 'outlook_app', username: SHARED, tenant_id: TENANT }
  const out = await create(w, 'outgoing', app)
  const sent = await testIt(w, 'outgoing', out.id)
  assert.equal(sent.ok, true, sent.message)
  assert.match(sent.message, /an app-only token in the tenant, and .* found sales@contoso\.com and let the token in/)
  assert.deepEqual(graphRequests(g), [`GET /users/${SHARED}/mailFolders/inbox 403`])

  g.restrictApp(CLIENT_ID, ['someone.else@contoso.com'])
  const blocked = await testIt(w, 'outgoing', out.id)
  assert.equal(blocked.ok, false)
  assert.match(blocked.message, /an application access policy in Exchange Online keeps the app from sales@contoso\.com .*Test-ApplicationAccessPolicy/)
  g.restrictApp(CLIENT_ID, [SHARED])

  const inbox = await create(w, 'incoming', app)
  const denied = await testIt(w, 'incoming', inbox.id)
  assert.equal(denied.ok, false)
  assert.match(denied.message, /denied the app access to sales@contoso\.com .*application permission Mail\.ReadWrite of Microsoft Graph, with admin consent/)
  w.ms.grantAppAccess({ clientId: CLIENT_ID, tenant: TENANT, roles: ['Mail.ReadWrite'] })
  g.deliver(SHARED, rfc822({ subject: 'Hello' }))
  const read = await testIt(w, 'incoming', inbox.id)
  assert.equal(read.ok, true, read.message)
  assert.match(read.message, /sales@contoso\.com's folder Inbox \(1 messages\) was read/)

  const ghost = await create(w, 'outgoing', { ...app, username: 'ghost@contoso.com' })
  const unknown = await testIt(w, 'outgoing', ghost.id)
  assert.match(unknown.message, /does not know the mailbox ghost@contoso\.com \(404 ErrorInvalidUser/)
})
