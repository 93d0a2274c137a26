import assert from 'node:assert/strict'
import { test } from 'node:test'
import { postMail, startNode } from '../support/process.ts'
import { startWorld } from '../support/world.ts'

const MAILS = 150

test('queue: SIGKILL mid-batch, restart → every mail delivered, duplicates no more than were in flight; SIGTERM drains', async (t) => {
  // Set up the database in-process (settings, server, consent), then hand it to real processes.
  const w = await startWorld({ shared: true, smtp: { delayMs: 15 } })
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  await w.mb.api('PATCH', `/api/v1/outgoing-servers/${server.id}`, { max_per_minute: null })
  const env = w.nodeEnv({ MAILBRIDGE_QUEUE_LEASE_S: '2', MAILBRIDGE_QUEUE_POLL_MS: '100', MAILBRIDGE_SMTP_SLOT_LEASE_S: '5' })
  const first = await startNode(env)
  t.after(() => first.child.kill('SIGKILL'))
  const ids: string[] = []
  for (let i = 0; i < MAILS; i++) {
    const res = await postMail(first, `crash ${i}`)
    assert.equal(res.status, 202)
    ids.push(((await res.json()) as { id: string }).id)
  }
  await w.smtp.waitFor(30, 30_000)
  first.child.kill('SIGKILL')
  await first.exited
  const atKill = w.smtp.messages.length
  assert.ok(atKill < MAILS, `the kill came mid-batch (${atKill} of ${MAILS} delivered)`)

  const second = await startNode(env)
  t.after(() => second.child.kill('SIGKILL'))
  const deadline = Date.now() + 60_000
  const unique = async () => new Set(await w.smtp.messageIds()).size
  while ((await unique()) < MAILS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200))
  assert.equal(await unique(), MAILS, 'every mail was delivered')
  const duplicates = w.smtp.messages.length - MAILS
  assert.ok(duplicates <= 24, `duplicates (${duplicates}) stay within what one worker has in flight (24)`)

  // The node's /metrics (web thread) reports the sends its background thread made: one per 250 it got.
  const sentHere = w.smtp.messages.length - atKill
  const sentCount = async () => Number(/^mailbridge_send_duration_seconds_count\{outcome="sent"\} (\d+)$/m.exec(await (await fetch(`${second.url}/metrics`)).text())?.[1])
  while ((await sentCount()) !== sentHere && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  assert.equal(await sentCount(), sentHere, 'sends counted on the background thread, summed into the web thread\'s /metrics')

  // SIGTERM: a graceful drain leaves nothing in 'sending'.
  second.child.kill('SIGTERM')
  assert.equal(await second.exited, 0, second.output())
  const states = await w.mb.services.database.db.selectFrom('mails').select(['state']).execute()
  assert.equal(states.filter((s) => s.state === 'sent').length, MAILS)
  assert.equal(states.filter((s) => s.state === 'sending').length, 0)
})
