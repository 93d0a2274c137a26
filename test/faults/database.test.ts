/**
 * Fault suite — the database refuses (issue 7 §1). SQLite busy (another connection holds the write lock beyond
 * busy_timeout) and full (PRAGMA max_page_count on Mailbridge's own connection: SQLite then answers SQLITE_FULL
 * exactly as on a full disk). The API answers 503 / 507 naming the cause, never a 500; the worker keeps its mail;
 * once the condition clears everything works and `PRAGMA integrity_check` is ok.
 *
 * SQLite only: PostgreSQL's equivalents (SQLSTATE 53100 disk_full, 55P03 lock_not_available) map through the same
 * table in src/errors.ts, but a PostgreSQL server cannot be filled or locked this way from a test.
 * Already covered elsewhere: a batch of fetched messages the database refuses stays unread and comes again
 * (test/incoming/fetch.test.ts).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import SQLite from 'better-sqlite3'
import { sql } from 'kysely'
import { adminClient } from '../support/admin-client.ts'
import { ALICE, runQueue, startWorld, type World } from '../support/world.ts'

const skip = process.env.MAILBRIDGE_TEST_DATABASE_URL?.startsWith('postgres') ? 'SQLite faults (busy lock, page limit)' : false

async function ready(env: Record<string, string> = {}) {
  const w = await startWorld({ env: { MAILBRIDGE_RETRY_BASE_S: '0', ...env } })
  const server = await w.outgoingServer()
  await w.connect(server.id)
  return { w, server }
}

const send = (w: World, body: Record<string, unknown> = {}) => w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 's', text: 't', ...body })
const file = (w: World) => w.mb.config.databaseUrl.slice('sqlite:'.length)
/** Await a condition (polled); the test's own timeout bounds it. */
async function until(cond: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await cond())) await new Promise((r) => setTimeout(r, 50))
}

const pragma = async (w: World, p: string) => (await sql.raw(`PRAGMA ${p}`).execute(w.mb.services.database.db)).rows as Array<Record<string, unknown>>

test('disk full (SQLITE_FULL): POST /api/v1/mail answers 507 naming the cause, the process lives on; once there is room the mail is accepted and sent; integrity_check ok', { skip }, async (t) => {
  const { w } = await ready()
  t.after(w.close)
  const before = await send(w)
  assert.equal(before.statusCode, 202)
  // No page may be added: the file is "full" where it stands.
  const pages = Number((await pragma(w, 'page_count'))[0]!.page_count)
  const free = Number((await pragma(w, 'freelist_count'))[0]!.freelist_count)
  await pragma(w, `max_page_count = ${pages}`)
  const attachment = { filename: 'a.bin', content_type: 'application/octet-stream', content_base64: Buffer.alloc(Math.max(200_000, (free + 10) * 4096), 1).toString('base64') }
  const full = await send(w, { attachments: [attachment] })
  assert.equal(full.statusCode, 507, full.body)
  assert.equal(full.json().error.code, 'storage_full')
  assert.match(full.json().error.message, /no room left \(disk full/)
  assert.doesNotMatch(full.body, /at |SqliteError|stack/)
  assert.ok(w.mb.logs.some((l) => l.includes('"level":50') && l.includes('database or disk is full')), 'the log has the driver error')
  assert.equal((await w.mb.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
  // The mail accepted before is still there and still goes out.
  await runQueue(w)
  assert.equal((await w.mb.api('GET', `/api/v1/mail/${before.json().id}`)).json().state, 'sent')

  await pragma(w, 'max_page_count = 1073741823')
  const after = await send(w, { attachments: [attachment] })
  assert.equal(after.statusCode, 202, after.body)
  await runQueue(w)
  assert.equal((await w.mb.api('GET', `/api/v1/mail/${after.json().id}`)).json().state, 'sent')
  assert.equal(w.smtp.messages.length, 2)
  assert.deepEqual(await pragma(w, 'integrity_check'), [{ integrity_check: 'ok' }])
})

test('database busy (another process holds the write lock past busy_timeout): the API answers 503; the worker keeps the mail it was sending, which goes out once the lock is gone; integrity_check ok', { skip, timeout: 120_000 }, async (t) => {
  const { w } = await ready({ MAILBRIDGE_QUEUE_LEASE_S: '1', MAILBRIDGE_QUEUE_POLL_MS: '100' })
  t.after(w.close)
  const other = new SQLite(file(w))
  t.after(() => other.close())
  const queued = (await send(w)).json()
  const admin = await adminClient(w.mb.app, w.mb.services)

  // The API: a write waits busy_timeout (5 s), then SQLITE_BUSY becomes a 503; an admin form says the same.
  other.exec('BEGIN IMMEDIATE')
  const busy = await send(w)
  const form = await admin.post('/admin/parameters', { key: 'mail.force.smtp.from', value: ALICE })
  other.exec('COMMIT')
  assert.equal(busy.statusCode, 503, busy.body)
  assert.equal(busy.json().error.code, 'database_busy')
  assert.match(busy.json().error.message, /busy: another process held its write lock/)
  assert.equal(form.statusCode, 503)
  assert.match(form.body, /class="banner bad" role="alert">The database is busy: another process held its write lock/)
  assert.equal((await send(w)).statusCode, 202, 'the next request works')

  // The worker, running as in production (its poll loop): the lock is taken while the mails are on the wire, so
  // recording 'sent' meets SQLITE_BUSY. Before this was handled, the rejection escaped and ended the process.
  let locked = false
  w.smtp.behave({
    dataReply: () => {
      if (!locked) {
        locked = true
        other.exec('BEGIN IMMEDIATE')
      }
      return undefined
    },
  })
  w.mb.services.mailWorker.start()
  await until(() => w.mb.logs.some((l) => l.includes('could not record the outcome of a mail') && l.includes('database is locked')))
  other.exec('COMMIT')
  // Nothing is lost: the lease (1 s) hands the mails back and they go out again — at least once.
  const states = async () => (await w.mb.api('GET', '/api/v1/mail')).json().items.map((m: { state: string }) => m.state)
  await until(async () => (await states()).every((s: string) => s === 'sent'))
  const mailsSent = (await states()).length
  assert.equal(mailsSent, 2)
  assert.ok(w.smtp.messages.length >= mailsSent && w.smtp.messages.length <= 2 * mailsSent, `at least once, duplicates no more than were in flight (${w.smtp.messages.length})`)
  assert.ok(!w.mb.logs.some((l) => l.includes('mail deferred') && l.includes('database is locked')), 'the database error is not taken for the SMTP server\'s answer')
  assert.deepEqual(await pragma(w, 'integrity_check'), [{ integrity_check: 'ok' }])
})
