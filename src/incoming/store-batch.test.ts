import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import { freshDatabase } from '../../test/support/fresh-database.ts'
import { SecretBox } from '../crypto/secret-box.ts'
import { migrate, type Database } from '../db/index.ts'
import { TrustedHosts } from '../host-policy.ts'
import { createLogger } from '../log.ts'
import { WebhookService } from '../webhooks/service.ts'
import { parseOrKeep } from './parse.ts'
import { storeBatch, type Batch } from './store-batch.ts'

// storeBatch is a function of a transaction: these run it on a real database (SQLite, or PostgreSQL when
// MAILBRIDGE_TEST_DATABASE_URL points at one), no IMAP server, no Mailbridge.

const ORDERS = { id: 'srv-orders', folder: 'INBOX', username: 'orders@contoso.com' }

async function world(t: TestContext): Promise<{ database: Database; webhooks: WebhookService; webhookId: string; store(b: Omit<Batch, 'uidvalidity'> & { uidvalidity?: string }): ReturnType<typeof storeBatch> }> {
  const database = await freshDatabase(t)
  await migrate(database.db, database.schema)
  const webhooks = new WebhookService({ db: database.db, box: new SecretBox([randomBytes(32)]), log: createLogger('silent'), trustedHosts: new TrustedHosts() })
  const hook = await webhooks.create({ url: 'https://app.example.com/mailbridge', events: ['message.received'] })
  return {
    database,
    webhooks,
    webhookId: hook.id,
    store: (b) => database.db.transaction().execute((tx) => storeBatch(tx, webhooks, { uidvalidity: '7', ...b })),
  }
}

const mail = (o: { id?: string; subject?: string; inReplyTo?: string }) =>
  Buffer.from(
    `From: customer@fabrikam.com\r\nTo: ${ORDERS.username}\r\nSubject: ${o.subject ?? 'Order'}\r\n` +
      (o.id ? `Message-ID: ${o.id}\r\n` : '') +
      (o.inReplyTo ? `In-Reply-To: ${o.inReplyTo}\r\nReferences: ${o.inReplyTo}\r\n` : '') +
      `\r\nBody\r\n`,
  )

const fetched = async (uid: number, source: Buffer) => ({ uid, source, parsed: await parseOrKeep(source) })

const stored = (database: Database) => database.db.selectFrom('messages').select(['id', 'server_id', 'uid', 'message_id', 'thread_id', 'parse_error', 'seq']).orderBy('seq').execute()

test('storeBatch(): a UID of the folder already stored is a duplicate; under a new UIDVALIDITY it is not', async (t) => {
  const w = await world(t)
  const batch = [await fetched(1, mail({ subject: 'no id 1' })), await fetched(2, mail({ subject: 'no id 2' }))]
  assert.deepEqual(await w.store({ server: ORDERS, messages: batch }), { stored: 2, duplicates: 0, keptRaw: [] })
  assert.deepEqual(await w.store({ server: ORDERS, messages: batch }), { stored: 0, duplicates: 2, keptRaw: [] })
  assert.equal((await w.store({ server: ORDERS, uidvalidity: '8', messages: batch })).stored, 2, 'messages without a Message-ID come again under a new UIDVALIDITY')
  assert.deepEqual(
    (await stored(w.database)).map((m) => Number(m.seq)),
    [1, 2, 3, 4],
    'seq follows the commits, with no gap for the duplicates',
  )
})

test('storeBatch(): the same Message-ID on the server is a duplicate (another UID, or earlier in the same batch); on another server it is not', async (t) => {
  const w = await world(t)
  const first = await w.store({ server: ORDERS, messages: [await fetched(1, mail({ id: '<a@fabrikam.com>' }))] })
  assert.equal(first.stored, 1)
  const again = await w.store({
    server: ORDERS,
    messages: [await fetched(5, mail({ id: '<a@fabrikam.com>' })), await fetched(6, mail({ id: '<b@fabrikam.com>' })), await fetched(7, mail({ id: '<b@fabrikam.com>' }))],
  })
  assert.deepEqual(again, { stored: 1, duplicates: 2, keptRaw: [] })
  const elsewhere = await w.store({ server: { ...ORDERS, id: 'srv-sales' }, messages: [await fetched(1, mail({ id: '<a@fabrikam.com>' }))] })
  assert.equal(elsewhere.stored, 1)
  assert.deepEqual(
    (await stored(w.database)).map((m) => [m.server_id, m.uid, m.message_id]),
    [
      ['srv-orders', 1, '<a@fabrikam.com>'],
      ['srv-orders', 6, '<b@fabrikam.com>'],
      ['srv-sales', 1, '<a@fabrikam.com>'],
    ],
  )
})

test('storeBatch(): a reply joins the thread of the message it answers, in the same batch and in a later one', async (t) => {
  const w = await world(t)
  await w.store({ server: ORDERS, messages: [await fetched(1, mail({ id: '<q@x>' })), await fetched(2, mail({ id: '<r1@x>', inReplyTo: '<q@x>' }))] })
  await w.store({ server: ORDERS, messages: [await fetched(3, mail({ id: '<r2@x>', inReplyTo: '<r1@x>' })), await fetched(4, mail({ id: '<other@x>' }))] })
  const [q, r1, r2, other] = await stored(w.database)
  assert.equal(r1!.thread_id, q!.thread_id)
  assert.equal(r2!.thread_id, q!.thread_id)
  assert.notEqual(other!.thread_id, q!.thread_id)
})

test('storeBatch(): message.received deliveries are written in the transaction of the messages: a rollback leaves neither', async (t) => {
  const w = await world(t)
  const deliveries = () => w.database.db.selectFrom('webhook_deliveries').select(['webhook_id', 'event', 'payload']).execute()
  await assert.rejects(
    w.database.db.transaction().execute(async (tx) => {
      assert.equal((await storeBatch(tx, w.webhooks, { server: ORDERS, uidvalidity: '7', messages: [await fetched(1, mail({ id: '<a@x>' }))] })).stored, 1)
      assert.equal((await tx.selectFrom('webhook_deliveries').select('id').execute()).length, 1, 'written inside the transaction')
      throw new Error('the commit failed')
    }),
    /the commit failed/,
  )
  assert.equal((await stored(w.database)).length, 0)
  assert.equal((await deliveries()).length, 0)

  await w.store({ server: ORDERS, messages: [await fetched(1, mail({ id: '<a@x>' }))] })
  const [m] = await stored(w.database)
  const [d] = await deliveries()
  assert.equal(d!.webhook_id, w.webhookId)
  assert.equal(d!.event, 'message.received')
  const data = (JSON.parse(d!.payload) as { data: Record<string, unknown> }).data
  assert.deepEqual([data.message_id, data.internet_message_id, data.uid, data.mailbox, data.thread_id], [m!.id, '<a@x>', 1, ORDERS.username, m!.thread_id])
})

test('storeBatch(): a message the parser refuses is stored raw, byte for byte, with its parse error and its Message-ID', async (t) => {
  const w = await world(t)
  // A header block past mailparser's limit for one MIME node: it refuses the whole message.
  const broken = Buffer.from(`Message-ID: <broken@fabrikam.com>\r\nSubject: ${'x'.repeat(3 * 1024 * 1024)}\r\n\r\nbody\r\n`)
  const outcome = await w.store({ server: ORDERS, messages: [await fetched(1, broken), await fetched(2, mail({ id: '<fine@x>' }))] })
  assert.equal(outcome.stored, 2)
  const [kept, fine] = await stored(w.database)
  assert.deepEqual(outcome.keptRaw, [{ uid: 1, id: kept!.id, cause: kept!.parse_error }])
  assert.match(kept!.parse_error ?? '', /Max header size/)
  assert.equal(kept!.message_id, '<broken@fabrikam.com>')
  assert.equal(fine!.parse_error, null)
  const raw = await w.database.db.selectFrom('message_raws').select('raw').where('message_id', '=', kept!.id).executeTakeFirstOrThrow()
  assert.ok(Buffer.from(raw.raw).equals(broken))
})
