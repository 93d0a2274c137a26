import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { createTestDatabase } from '../../test/support/harness.ts'
import { deliveryReport, outOfOffice, type ReportLine } from '../../test/support/delivery-report.ts'
import { SecretBox } from '../crypto/secret-box.ts'
import { type Database, migrate, newId, now, openDatabase } from '../db/index.ts'
import type { MailState } from '../db/schema.ts'
import { MailbridgeError } from '../errors.ts'
import { TrustedHosts } from '../host-policy.ts'
import { createLogger } from '../log.ts'
import { WebhookService } from '../webhooks/service.ts'
import { bouncesOf } from './mail-bounces.ts'
import { recogniseStored, recordRecognition } from './record.ts'

const SERVER = 'in-1'

/** A migrated database (SQLite, or PostgreSQL by MAILBRIDGE_TEST_DATABASE_URL) with one webhook for mail.bounced. */
async function setup(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'mailbridge-bounces-'))
  const testDb = await createTestDatabase(dir)
  const database: Database = openDatabase(testDb.url)
  t.after(async () => {
    await database.close()
    await testDb.drop()
    rmSync(dir, { recursive: true, force: true })
  })
  await migrate(database.db, database.schema)
  const { db } = database
  const box = new SecretBox([randomBytes(32)])
  const webhooks = new WebhookService({ db, box, log: createLogger('silent'), trustedHosts: new TrustedHosts() })
  await webhooks.create({ url: 'https://app.example.com/hook', events: ['mail.bounced'] })
  const at = now()

  async function mail(o: { to: string[]; cc?: string[]; state?: MailState }) {
    const id = newId()
    const message_id = `<${id}.mailbridge@contoso.com>`
    await db
      .insertInto('mails')
      .values({ id, state: o.state ?? 'sent', message_id, from_addr: 'Alice <alice@contoso.com>', to_addrs: JSON.stringify(o.to), cc_addrs: JSON.stringify(o.cc ?? []), bcc_addrs: '[]', subject: 'Invoice 42', content: '{}', size: 1, server_id: 'out-1', next_attempt_at: at, created_at: at, updated_at: at })
      .execute()
    return { id, message_id }
  }

  /** Store the raw message as the fetch path does and recognise it in the same transaction. */
  async function store(raw: Buffer, serverId = SERVER) {
    const id = newId()
    const result = await db.transaction().execute(async (tx) => {
      await tx.insertInto('messages').values({ id, server_id: SERVER, folder: 'INBOX', uidvalidity: '1', uid: Math.floor(Math.random() * 1e9), thread_id: `<${id}>`, references: '[]', to_addrs: '[]', cc_addrs: '[]', size: raw.length, received_at: at }).execute()
      return recogniseStored(tx, webhooks, { id, server_id: serverId, raw })
    })
    return { id, result }
  }

  const report = (returnedMessageId: string | null, lines: ReportLine[], o: { inReplyTo?: string } = {}) => deliveryReport({ to: 'alice@contoso.com', returnedMessageId, lines, ...o })
  const stateOf = async (id: string) => (await db.selectFrom('mails').select('state').where('id', '=', id).executeTakeFirstOrThrow()).state
  const message = (id: string) => db.selectFrom('messages').select(['bounce', 'auto_reply']).where('id', '=', id).executeTakeFirstOrThrow()
  const deliveries = async () => (await db.selectFrom('webhook_deliveries').select(['event', 'payload']).orderBy('id').execute()).map((d) => ({ event: d.event, data: JSON.parse(d.payload).data }))
  return { db, webhooks, mail, store, report, stateOf, message, deliveries }
}

const failed = (recipient: string, status = '5.1.1'): ReportLine => ({ recipient, action: 'failed', status, diagnostic: `550 ${status} <${recipient}>: user unknown` })

test('recordRecognition(): a report that every recipient failed makes the sent mail bounced, with bounces[] and one mail.bounced each', async (t) => {
  const s = await setup(t)
  const m = await s.mail({ to: ['Bob <bob@fabrikam.example>'], cc: ['carol@fabrikam.example'] })
  const { id, result } = await s.store(s.report(m.message_id, [failed('bob@fabrikam.example'), failed('Carol@Fabrikam.example', '5.2.2')]))
  assert.deepEqual([result.mail_id, result.bounced], [m.id, true])
  assert.equal(await s.stateOf(m.id), 'bounced')
  const bounces = (await bouncesOf(s.db, [m.id])).get(m.id)!
  assert.deepEqual(
    bounces.map((b) => [b.recipient, b.status, b.action, b.message_id]),
    [['bob@fabrikam.example', '5.1.1', 'failed', id], ['Carol@Fabrikam.example', '5.2.2', 'failed', id]],
  )
  assert.match(bounces[0]!.diagnostic!, /user unknown/)
  const row = await s.message(id)
  assert.equal(row.auto_reply, 0)
  assert.deepEqual(JSON.parse(row.bounce!), {
    mail_id: m.id,
    original_message_id: m.message_id,
    recipients: [
      { recipient: 'bob@fabrikam.example', status: '5.1.1', action: 'failed', diagnostic: '550 5.1.1 <bob@fabrikam.example>: user unknown' },
      { recipient: 'Carol@Fabrikam.example', status: '5.2.2', action: 'failed', diagnostic: '550 5.2.2 <Carol@Fabrikam.example>: user unknown' },
    ],
  })
  const events = await s.deliveries()
  assert.deepEqual(events.map((e) => e.event), ['mail.bounced', 'mail.bounced'])
  assert.deepEqual(events[0]!.data, {
    mail_id: m.id,
    message_id: id,
    internet_message_id: m.message_id,
    server_id: 'out-1',
    recipient: 'bob@fabrikam.example',
    status: '5.1.1',
    action: 'failed',
    diagnostic: '550 5.1.1 <bob@fabrikam.example>: user unknown',
  })
})

test('recordRecognition(): one recipient failed of two keeps the mail sent; the second report, later, makes it bounced', async (t) => {
  const s = await setup(t)
  const m = await s.mail({ to: ['bob@fabrikam.example', 'carol@fabrikam.example'] })
  assert.equal((await s.store(s.report(m.message_id, [failed('bob@fabrikam.example')]))).result.bounced, false)
  assert.equal(await s.stateOf(m.id), 'sent')
  assert.equal((await s.store(s.report(m.message_id, [failed('carol@fabrikam.example')]))).result.bounced, true)
  assert.equal(await s.stateOf(m.id), 'bounced')
  assert.equal((await bouncesOf(s.db, [m.id])).get(m.id)!.length, 2)
  assert.equal((await s.deliveries()).length, 2)
})

test('recordRecognition(): a delayed report is recorded without a state change and without mail.bounced', async (t) => {
  const s = await setup(t)
  const m = await s.mail({ to: ['bob@fabrikam.example'] })
  await s.store(s.report(m.message_id, [{ recipient: 'bob@fabrikam.example', action: 'delayed', status: '4.4.1' }]))
  assert.equal(await s.stateOf(m.id), 'sent')
  assert.deepEqual((await bouncesOf(s.db, [m.id])).get(m.id)!.map((b) => [b.action, b.status]), [['delayed', '4.4.1']])
  assert.deepEqual(await s.deliveries(), [])
})

test('recordRecognition(): without a returned message the report links by its In-Reply-To', async (t) => {
  const s = await setup(t)
  const m = await s.mail({ to: ['bob@fabrikam.example'] })
  const { result } = await s.store(s.report(null, [failed('bob@fabrikam.example')], { inReplyTo: m.message_id }))
  assert.equal(result.mail_id, m.id)
  assert.equal(await s.stateOf(m.id), 'bounced')
})

test('recordRecognition(): links by References when neither the returned message nor In-Reply-To names a mail', async (t) => {
  const s = await setup(t)
  const m = await s.mail({ to: ['bob@fabrikam.example'] })
  const recognition = {
    auto_reply: false,
    bounce: {
      kind: 'ndr' as const,
      format: 'exchange',
      reporting_mta: null,
      recipients: [{ recipient: 'bob@fabrikam.example', original_recipient: null, status: '5.1.10', action: 'failed' as const, diagnostic: null, remote_mta: null }],
      original: { message_id: '<unknown@elsewhere>', in_reply_to: '<unknown@elsewhere>', references: [m.message_id, '<later@fabrikam.example>'], envelope_id: null, subject: null, from: null, to: [] },
    },
  }
  const id = newId()
  const recorded = await s.db.transaction().execute(async (tx) => {
    await tx.insertInto('messages').values({ id, server_id: SERVER, folder: 'INBOX', uidvalidity: '1', uid: 1, thread_id: `<${id}>`, references: '[]', to_addrs: '[]', cc_addrs: '[]', size: 1, received_at: now() }).execute()
    return recordRecognition(tx, s.webhooks, { messageRowId: id, serverId: SERVER, recognition })
  })
  assert.equal(recorded.mail_id, m.id)
  assert.equal(JSON.parse((await s.message(id)).bounce!).original_message_id, '<unknown@elsewhere>')
})

test('recordRecognition(): a report about a mail Mailbridge did not send is kept with mail_id null and tells no webhook', async (t) => {
  const s = await setup(t)
  const m = await s.mail({ to: ['bob@fabrikam.example'] })
  const { id, result } = await s.store(s.report('<sent-from-outlook@contoso.com>', [failed('bob@fabrikam.example')]))
  assert.equal(result.mail_id, null)
  assert.equal(await s.stateOf(m.id), 'sent')
  assert.equal(JSON.parse((await s.message(id)).bounce!).mail_id, null)
  const rows = await s.db.selectFrom('mail_bounces').selectAll().execute()
  assert.deepEqual(rows.map((r) => [r.mail_id, r.message_id, r.recipient, r.remote_mta]), [[null, id, 'bob@fabrikam.example', 'mx.fabrikam.example']])
  assert.deepEqual(await s.deliveries(), [])
})

test('recordRecognition(): a failed report names the address the mail went to when Original-Recipient is it (an alias forwarded elsewhere)', async (t) => {
  const s = await setup(t)
  const m = await s.mail({ to: ['sales@fabrikam.example'] })
  await s.store(s.report(m.message_id, [{ ...failed('j.doe@mail.fabrikam.example'), originalRecipient: 'sales@fabrikam.example' }]))
  assert.deepEqual((await bouncesOf(s.db, [m.id])).get(m.id)!.map((b) => b.recipient), ['sales@fabrikam.example'])
  assert.equal(await s.stateOf(m.id), 'bounced')
})

test('recordRecognition(): a mail that is not sent (retried, cancelled) keeps its state; its bounces[] still show the report', async (t) => {
  const s = await setup(t)
  const m = await s.mail({ to: ['bob@fabrikam.example'], state: 'cancel' })
  assert.equal((await s.store(s.report(m.message_id, [failed('bob@fabrikam.example')]))).result.bounced, false)
  assert.equal(await s.stateOf(m.id), 'cancel')
  assert.equal((await bouncesOf(s.db, [m.id])).get(m.id)!.length, 1)
})

test('recogniseStored(): an out-of-office reply is marked auto_reply and is no bounce; an ordinary message writes nothing', async (t) => {
  const s = await setup(t)
  const m = await s.mail({ to: ['bob@fabrikam.example'] })
  const ooo = await s.store(outOfOffice(m.message_id))
  assert.equal(ooo.result.auto_reply, true)
  assert.deepEqual(await s.message(ooo.id), { bounce: null, auto_reply: 1 })
  const plain = await s.store(Buffer.from('From: bob@fabrikam.example\r\nTo: alice@contoso.com\r\nSubject: Re: Invoice 42\r\nMessage-ID: <r1@fabrikam.example>\r\n\r\nThanks!\r\n'))
  assert.deepEqual([plain.result.bounce, plain.result.auto_reply], [null, false])
  assert.deepEqual(await s.message(plain.id), { bounce: null, auto_reply: 0 })
  assert.equal(await s.stateOf(m.id), 'sent')
})

test('recordRecognition(): a message row of another incoming server is refused and the transaction records nothing', async (t) => {
  const s = await setup(t)
  const m = await s.mail({ to: ['bob@fabrikam.example'] })
  await assert.rejects(s.store(s.report(m.message_id, [failed('bob@fabrikam.example')]), 'in-2'), (e: MailbridgeError) => e.code === 'internal' && /incoming server in-2/.test(String((e.detail as { message?: string }).message)))
  assert.equal(await s.stateOf(m.id), 'sent')
  assert.deepEqual(await s.db.selectFrom('mail_bounces').selectAll().execute(), [])
  assert.deepEqual(await s.deliveries(), [])
})
