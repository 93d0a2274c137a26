/**
 * Fault suite — SIGTERM with mails still on the wire (issue 7 §1). test/process/crash-and-drain.test.ts already
 * covers SIGKILL mid-batch (every mail delivered after a restart, duplicates within what was in flight) and a
 * SIGTERM once the queue is empty. What it leaves out: a drain that runs out of time. Here the SMTP peer takes
 * longer per message than MAILBRIDGE_DRAIN_S allows; the process must still exit 0, leave nothing in `sending`
 * (the lease is 5 minutes: only the drain can hand the mails back), and a restart must deliver every mail.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { postMail, startNode } from '../support/process.ts'
import { startWorld } from '../support/world.ts'

const MAILS = 12

test('SIGTERM while mails are on the wire and the drain time runs out: exit 0, none left in sending, all delivered after a restart', { timeout: 120_000 }, async (t) => {
  const w = await startWorld({ shared: true, smtp: { delayMs: 2000 } })
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  await w.mb.api('PATCH', `/api/v1/outgoing-servers/${server.id}`, { max_per_minute: null })
  const env = w.nodeEnv({ MAILBRIDGE_DRAIN_S: '1', MAILBRIDGE_QUEUE_POLL_MS: '100', MAILBRIDGE_SMTP_SLOT_LEASE_S: '3' })
  const first = await startNode(env)
  t.after(() => first.child.kill('SIGKILL'))
  for (let i = 0; i < MAILS; i++) {
    const res = await postMail(first, `drain ${i}`)
    assert.equal(res.status, 202)
  }
  // Mails are on the wire: the peer has their data and holds its 250 for 2 s.
  while (w.smtp.dataCommands() === 0) await new Promise((r) => setTimeout(r, 20))
  first.child.kill('SIGTERM')
  assert.equal(await first.exited, 0, first.output())
  const { db } = w.mb.services.database
  const states = (await db.selectFrom('mails').select('state').execute()).map((m) => m.state)
  assert.equal(states.filter((s) => s === 'sending').length, 0, 'the drain handed back what it could not finish')
  assert.ok(states.filter((s) => s === 'outgoing').length > 0, 'the drain ran out of time with mails unfinished')

  w.smtp.behave({ delayMs: 0 })
  const second = await startNode({ ...env, MAILBRIDGE_DRAIN_S: '30' })
  t.after(() => second.child.kill('SIGKILL'))
  const unique = async () => new Set(await w.smtp.messageIds()).size
  while ((await unique()) < MAILS) await new Promise((r) => setTimeout(r, 200))
  // Those on the wire at SIGTERM may have been taken by the server: at most one per connection (3) goes twice.
  assert.ok(w.smtp.messages.length - MAILS <= 3, `duplicates (${w.smtp.messages.length - MAILS}) within the connections that were mid-message`)
  second.child.kill('SIGTERM')
  assert.equal(await second.exited, 0, second.output())
  const after = (await db.selectFrom('mails').select('state').execute()).map((m) => m.state)
  assert.deepEqual([...new Set(after)], ['sent'])
})
