import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startNode, type Node } from '../support/process.ts'
import { startWorld } from '../support/world.ts'

const MAILS = 3000
const onPostgres = process.env.MAILBRIDGE_TEST_DATABASE_URL?.startsWith('postgres') ?? false

test('many nodes: three worker processes on one PostgreSQL deliver 3,000 mails exactly once; SIGKILL of one loses nothing', { skip: !onPostgres && 'several nodes share PostgreSQL, not SQLite' }, async (t) => {
  const w = await startWorld({ shared: true, smtp: { delayMs: 2 } })
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  await w.mb.api('PATCH', `/api/v1/outgoing-servers/${server.id}`, { max_per_minute: null })
  // Queue everything first through the in-process API (one INSERT each), then let the workers loose.
  for (let i = 0; i < MAILS; i++) {
    const res = await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: `n${i}`, text: 'x' })
    assert.equal(res.statusCode, 202)
  }
  // The killed node's mails and slots come back through its stopped heartbeat (MAILBRIDGE_NODE_DEAD_S), not through
  // leases so short that a live node kept off the CPU for a few seconds (other test files run beside this one)
  // would lose its mails to another while still sending them.
  const env = w.nodeEnv({ MAILBRIDGE_QUEUE_LEASE_S: '30', MAILBRIDGE_QUEUE_POLL_MS: '100', MAILBRIDGE_SMTP_SLOT_LEASE_S: '30', MAILBRIDGE_NODE_DEAD_S: '10' })
  const nodes: Node[] = []
  for (let i = 0; i < 3; i++) nodes.push(await startNode(env, ['serve', '--role', 'worker']))
  t.after(() => nodes.forEach((n) => n.child.kill('SIGKILL')))
  await w.smtp.waitFor(MAILS / 3, 300_000)
  const before = await w.smtp.messageIds()
  assert.equal(new Set(before).size, before.length, 'while all three run, no mail goes out twice')
  nodes[0]!.child.kill('SIGKILL')
  await nodes[0]!.exited
  // A bound for a stuck queue, not a speed target: on two cores shared with other test files 2,000 mails take minutes.
  const deadline = Date.now() + 400_000
  let ids = await w.smtp.messageIds()
  while (new Set(ids).size < MAILS && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500))
    ids = await w.smtp.messageIds()
  }
  assert.equal(new Set(ids).size, MAILS, 'every mail was delivered')
  // Only mails the killed node had in flight may go out twice (24 per connection slot it held, at most 3).
  assert.ok(ids.length - MAILS <= 72, `duplicates (${ids.length - MAILS}) stay within the killed node's in-flight mails`)
  assert.ok(w.smtp.connections.max <= 3, `at most 3 SMTP connections to the mailbox across nodes, saw ${w.smtp.connections.max}`)
  const left = await w.mb.services.database.db.selectFrom('mails').select('state').where('state', '!=', 'sent').execute()
  assert.deepEqual(left, [])
})
