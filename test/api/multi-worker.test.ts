import assert from 'node:assert/strict'
import { test } from 'node:test'
import { MailWorker } from '../../src/outgoing/worker.ts'
import { startWorld } from '../support/world.ts'

test('queue: three workers on one database deliver each mail exactly once, over at most 3 connections in all', async (t) => {
  const w = await startWorld({ smtp: { delayMs: 5 }, env: { MAILBRIDGE_QUEUE_POLL_MS: '20' } })
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  await w.mb.api('PATCH', `/api/v1/outgoing-servers/${server.id}`, { max_per_minute: null })
  const s = w.mb.services
  const workers = [s.mailWorker, ...[1, 2].map(() => new MailWorker({ database: s.database, box: s.box, credentials: s.credentials, settings: s.settings, mails: s.mails, log: s.log, queue: s.config.queue }))]
  for (let i = 0; i < 90; i++) await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: `m${i}`, text: 't' })
  for (const worker of workers) worker.start()
  await w.smtp.waitFor(90, 60_000)
  await Promise.all(workers.slice(1).map((x) => x.stop()))
  const ids = await w.smtp.messageIds()
  assert.equal(ids.length, 90)
  assert.equal(new Set(ids).size, 90, 'no mail was sent twice')
  assert.ok(w.smtp.connections.max <= 3, `at most 3 connections at once, saw ${w.smtp.connections.max}`)
  const slots = await s.database.db.selectFrom('smtp_slots').selectAll().execute()
  assert.ok(slots.length <= 3)
})

test('queue: the per-minute limit holds across workers sharing the database', async (t) => {
  const w = await startWorld({ env: { MAILBRIDGE_QUEUE_POLL_MS: '20' } })
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  await w.mb.api('PATCH', `/api/v1/outgoing-servers/${server.id}`, { max_per_minute: 7 })
  const s = w.mb.services
  const other = new MailWorker({ database: s.database, box: s.box, credentials: s.credentials, settings: s.settings, mails: s.mails, log: s.log, queue: s.config.queue })
  for (let i = 0; i < 20; i++) await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: `m${i}`, text: 't' })
  s.mailWorker.start()
  other.start()
  await w.smtp.waitFor(7, 30_000)
  await new Promise((r) => setTimeout(r, 500))
  await other.stop()
  assert.equal(w.smtp.messages.length, 7)
})
