import assert from 'node:assert/strict'
import { test } from 'node:test'
import { sql } from 'kysely'
import { dovecotAvailable } from '../support/dovecot.ts'
import { rfc822, startMailroom } from '../support/mailroom.ts'
import { ALICE } from '../support/world.ts'

const skip = dovecotAvailable() ? false : 'Dovecot is not installed: run .ci/install-peers.sh'

test('incoming servers: Outlook fills in host, port and TLS, a new server is draft, and a missing username is refused with its field', { skip }, async (t) => {
  const room = await startMailroom()
  t.after(room.close)
  const created = await room.mb.api('POST', '/api/v1/incoming-servers', { name: 'Orders', authentication: 'outlook', username: ALICE })
  assert.equal(created.statusCode, 201, created.body)
  const s = created.json()
  assert.deepEqual(
    { host: s.host, port: s.port, encryption: s.encryption, folder: s.folder, state: s.state, poll_interval_s: s.poll_interval_s, mark_seen: s.mark_seen },
    { host: 'outlook.office365.com', port: 993, encryption: 'ssl', folder: 'INBOX', state: 'draft', poll_interval_s: 60, mark_seen: true },
  )
  const bad = await room.mb.api('POST', '/api/v1/incoming-servers', { name: 'No user', authentication: 'outlook' })
  assert.equal(bad.statusCode, 400)
  assert.equal(bad.json().error.field, 'username')
  assert.match(bad.json().error.message, /mailbox address/)
})

test('Test & Confirm: a good token confirms the server; one consent serves the outgoing and the incoming server of a mailbox', { skip }, async (t) => {
  const room = await startMailroom()
  t.after(room.close)
  const out = await room.outgoingServer()
  await room.connect(out.id)
  const server = await room.incomingServer()
  assert.equal(server.token && (server.token as { valid: boolean }).valid, true, 'the mailbox is already connected')
  const res = await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/test`)
  assert.equal(res.json().ok, true, res.body)
  assert.match(res.json().message, /Connection Test Successful/)
  assert.equal((await room.mb.api('GET', `/api/v1/incoming-servers/${server.id}`)).json().state, 'confirmed')
})

test('Test & Confirm: a token Dovecot refuses gets one refresh; a revoked consent is refused with a message naming the mailbox', { skip }, async (t) => {
  const room = await startMailroom()
  t.after(room.close)
  const server = await room.incomingServer()
  await room.connect(server.id, { kind: 'incoming' })
  room.ms.expireAccessTokens(ALICE)
  const refreshes = () => room.ms.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length
  const before = refreshes()
  const ok = await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/test`)
  assert.equal(ok.json().ok, true, ok.body)
  assert.equal(refreshes(), before + 1, 'the refused token was replaced once')

  room.ms.revokeUser(ALICE)
  room.ms.expireAccessTokens(ALICE)
  const refused = await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/test`)
  assert.equal(refused.json().ok, false)
  assert.match(refused.json().message, new RegExp(ALICE.replace('.', '\\.')))
  const after = (await room.mb.api('GET', `/api/v1/incoming-servers/${server.id}`)).json()
  assert.equal(after.token.valid, false, 'the badge turned red')
  assert.ok(after.last_error)
})

test('Test & Confirm: a missing folder is named in the message and the server stays draft', { skip }, async (t) => {
  const room = await startMailroom()
  t.after(room.close)
  const server = await room.incomingServer({ body: { folder: 'Orders/Nowhere' } })
  await room.connect(server.id, { kind: 'incoming' })
  const res = await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/test`)
  assert.equal(res.json().ok, false)
  assert.match(res.json().message, /folder "Orders\/Nowhere" could not be opened/)
  assert.equal((await room.mb.api('GET', `/api/v1/incoming-servers/${server.id}`)).json().state, 'draft')
})

test('fetch: seeded messages are stored raw and parsed (on a parser thread), marked \\Seen, listed in pages, and a refetch stores no duplicates', { skip }, async (t) => {
  const room = await startMailroom({ env: { MAILBRIDGE_PARSE_THREADS: '1' } })
  t.after(room.close)
  const server = await room.confirmedServer()
  const raws = Array.from({ length: 120 }, (_, i) => rfc822({ subject: `Order ${i}`, messageId: `<order-${i}@fabrikam.com>` }))
  await room.dovecot.seedMany(ALICE, raws)
  const withFile =
    `From: Customer <customer@fabrikam.com>\r\nTo: ${ALICE}\r\nCc: Sales <sales@contoso.com>\r\nSubject: Invoice\r\nMessage-ID: <invoice@fabrikam.com>\r\n` +
    `MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n` +
    `--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="invoice.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n${Buffer.from('%PDF-1.4 fake').toString('base64')}\r\n--b1--\r\n`
  await room.dovecot.seed(ALICE, withFile)

  // This process's counters (other tests in the file may have fetched too).
  const counted = async () => {
    const m = (await room.mb.app.inject('/metrics')).body
    const n = (re: RegExp) => Number(re.exec(m)?.[1] ?? 0)
    return { ok: n(/^mailbridge_fetches_total\{result="ok"\} (\d+)$/m), stored: n(/^mailbridge_messages_fetched_total\{outcome="stored"\} (\d+)$/m), duplicate: n(/^mailbridge_messages_fetched_total\{outcome="duplicate"\} (\d+)$/m) }
  }
  const diff = (a: Record<string, number>, b: Record<string, number>) => Object.fromEntries(Object.keys(a).map((k) => [k, b[k]! - a[k]!]))
  const before = await counted()
  const res = await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)
  assert.equal(res.statusCode, 200, res.body)
  assert.deepEqual(res.json(), { fetched: 121, stored: 121, duplicates: 0, failed: 0, parse_errors: 0 })
  const flags = await room.dovecot.flags(ALICE)
  assert.equal(flags.filter((f) => f.flags.includes('\\Seen')).length, 121)

  // Pages, oldest first.
  const first = (await room.mb.api('GET', `/api/v1/messages?server_id=${server.id}&limit=100`)).json()
  assert.equal(first.items.length, 100)
  assert.equal(first.items[0].subject, 'Order 0')
  const second = (await room.mb.api('GET', `/api/v1/messages?server_id=${server.id}&limit=100&cursor=${first.next_cursor}`)).json()
  assert.equal(second.items.length, 21)
  assert.equal(second.next_cursor, null)
  const invoice = second.items[20]
  assert.equal(invoice.message_id, '<invoice@fabrikam.com>')
  assert.deepEqual(invoice.cc, ['Sales <sales@contoso.com>'])
  assert.equal(invoice.text.trim(), 'See attached.')
  assert.equal(invoice.attachments.length, 1)
  assert.equal(invoice.attachments[0].filename, 'invoice.pdf')
  const raw = await room.mb.api('GET', `/api/v1/messages/${invoice.id}/raw`)
  assert.equal(raw.headers['content-type'], 'message/rfc822')
  assert.equal(raw.body, withFile)
  const file = await room.mb.api('GET', `/api/v1/messages/${invoice.id}/attachments/${invoice.attachments[0].id}`)
  assert.equal(file.headers['content-type'], 'application/pdf')
  assert.equal(file.body, '%PDF-1.4 fake')
  assert.equal((await room.mb.api('GET', '/api/v1/messages/nope')).statusCode, 404)

  // Nothing new: nothing fetched.
  assert.deepEqual((await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)).json(), { fetched: 0, stored: 0, duplicates: 0, failed: 0, parse_errors: 0 })
  // Forget where we stood: every message comes again, and every one is recognised.
  await room.mb.services.database.db.deleteFrom('incoming_sync').execute()
  assert.deepEqual((await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)).json(), { fetched: 121, stored: 0, duplicates: 121, failed: 0, parse_errors: 0 })
  // Three fetches on this node, every message counted by what became of it.
  assert.deepEqual(diff(before, await counted()), { ok: 3, stored: 121, duplicate: 121 })
  // The same Message-ID under a new UID (a copy) is a duplicate too.
  await room.dovecot.seed(ALICE, raws[7]!)
  assert.deepEqual((await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)).json(), { fetched: 1, stored: 0, duplicates: 1, failed: 0, parse_errors: 0 })
  const count = await room.mb.services.database.db.selectFrom('messages').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  assert.equal(Number(count.n), 121)
})

test('fetch: \\Seen is set only after the store; a batch that cannot be stored stays unread and comes again', { skip }, async (t) => {
  const room = await startMailroom({ env: { MAILBRIDGE_FETCH_BATCH: '10' } })
  t.after(room.close)
  const server = await room.confirmedServer()
  await room.dovecot.seedMany(ALICE, Array.from({ length: 30 }, (_, i) => rfc822({ subject: i === 15 ? 'poison' : `Mail ${i}`, messageId: `<m-${i}@fabrikam.com>` })))
  const { db } = room.mb.services.database
  // A real failure inside the transaction, on the second batch (UIDs 11-20): the database refuses the row.
  if (room.mb.services.database.traits.dialect === 'sqlite') {
    await sql`CREATE TRIGGER refuse_poison BEFORE INSERT ON messages WHEN NEW.subject = 'poison' BEGIN SELECT RAISE(ABORT, 'disk full'); END`.execute(db)
  } else {
    await sql`CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN IF NEW.subject = 'poison' THEN RAISE EXCEPTION 'disk full'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`.execute(db)
    await sql`CREATE TRIGGER refuse_poison BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse_poison()`.execute(db)
  }
  const res = await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)
  assert.equal(res.statusCode, 200, res.body)
  // The FETCH stream runs ahead of the commits: all 30 arrived, the first batch was stored, the rest was not.
  assert.deepEqual(res.json(), { fetched: 30, stored: 10, duplicates: 0, failed: 20, parse_errors: 0 })
  const seen = (await room.dovecot.flags(ALICE)).filter((f) => f.flags.includes('\\Seen')).map((f) => f.uid)
  assert.deepEqual(seen, Array.from({ length: 10 }, (_, i) => i + 1), 'only the stored batch is \\Seen')
  const s = (await room.mb.api('GET', `/api/v1/incoming-servers/${server.id}`)).json()
  assert.match(s.last_error, /disk full/)
  assert.match(s.last_error, new RegExp(ALICE.replace('.', '\\.')))

  await (room.mb.services.database.traits.dialect === 'sqlite' ? sql`DROP TRIGGER refuse_poison` : sql`DROP TRIGGER refuse_poison ON messages`).execute(db)
  assert.deepEqual((await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)).json(), { fetched: 20, stored: 20, duplicates: 0, failed: 0, parse_errors: 0 })
  assert.equal((await room.dovecot.flags(ALICE)).filter((f) => f.flags.includes('\\Seen')).length, 30)
})

test('messages: the cursor follows commit order, so a message committed after a later-numbered one is not skipped; an unknown cursor is refused', { skip }, async (t) => {
  const room = await startMailroom()
  t.after(room.close)
  const server = await room.confirmedServer()
  const { db } = room.mb.services.database
  await room.dovecot.seedMany(ALICE, [1, 2, 3].map((i) => rfc822({ subject: `first ${i}`, messageId: `<first-${i}@x>` })))
  await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)
  const page = (await room.mb.api('GET', `/api/v1/messages?server_id=${server.id}`)).json()
  assert.deepEqual(page.items.map((m: { subject: string }) => m.subject), ['first 1', 'first 2', 'first 3'])
  const cursor = page.items[2].id as string
  // Another node whose clock runs behind commits later with ids below the cursor: its ids sort first, its seq after.
  await room.dovecot.seed(ALICE, rfc822({ subject: 'late', messageId: '<late@x>' }))
  await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)
  await db.updateTable('messages').set({ id: '0000000000late' }).where('message_id', '=', '<late@x>').execute()
  const next = (await room.mb.api('GET', `/api/v1/messages?server_id=${server.id}&cursor=${cursor}`)).json()
  assert.deepEqual(next.items.map((m: { subject: string }) => m.subject), ['late'])
  const counter = await db.selectFrom('counters').select('value').where('name', '=', 'messages').executeTakeFirstOrThrow()
  const seqs = (await db.selectFrom('messages').select('seq').orderBy('seq').execute()).map((r) => Number(r.seq))
  assert.deepEqual(seqs, [1, 2, 3, 4], 'one seq per stored message, gapless, in commit order')
  assert.equal(Number(counter.value), 4)
  const unknown = await room.mb.api('GET', '/api/v1/messages?cursor=01JNOTAMESSAGE000000000000')
  assert.equal(unknown.statusCode, 400, unknown.body)
  assert.equal(unknown.json().error.field, 'cursor')
})

test('fetch: with mark_seen false the flags are left alone', { skip }, async (t) => {
  const room = await startMailroom()
  t.after(room.close)
  const server = await room.confirmedServer({ body: { mark_seen: false } })
  await room.dovecot.seedMany(ALICE, [rfc822({ subject: 'a', messageId: '<a@x>' }), rfc822({ subject: 'b', messageId: '<b@x>' })])
  assert.equal((await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)).json().stored, 2)
  assert.deepEqual((await room.dovecot.flags(ALICE)).map((f) => f.flags), [[], []])
})

test('fetch: a message mailparser cannot read is kept raw with its parse error', { skip }, async (t) => {
  const room = await startMailroom()
  t.after(room.close)
  const server = await room.confirmedServer()
  // A header block past mailparser's limit for one MIME node: it refuses the whole message.
  const broken = `Message-ID: <broken@fabrikam.com>\r\nSubject: ${'x'.repeat(3 * 1024 * 1024)}\r\n\r\nbody\r\n`
  await room.dovecot.seedMany(ALICE, [broken, rfc822({ subject: 'fine', messageId: '<fine@fabrikam.com>' })])
  assert.deepEqual((await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)).json(), { fetched: 2, stored: 2, duplicates: 0, failed: 0, parse_errors: 1 })
  const [kept, fine] = (await room.mb.api('GET', '/api/v1/messages')).json().items
  assert.match(kept.parse_error, /Max header size/)
  assert.equal(kept.message_id, '<broken@fabrikam.com>')
  assert.equal((await room.mb.api('GET', `/api/v1/messages/${kept.id}/raw`)).body, broken)
  assert.equal(fine.parse_error, null)
  assert.ok(room.mb.logs.some((l) => l.includes('message kept raw')))
})

test('fetch: a session cut mid-fetch with an expired token reconnects with a fresh token and stores everything once', { skip }, async (t) => {
  const room = await startMailroom({ env: { MAILBRIDGE_FETCH_BATCH: '20' } })
  t.after(room.close)
  const server = await room.confirmedServer()
  await room.dovecot.seedMany(ALICE, Array.from({ length: 100 }, (_, i) => rfc822({ subject: `n${i}`, messageId: `<n-${i}@fabrikam.com>` })))
  const refreshes = () => room.ms.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length
  const before = refreshes()
  let cut = false
  const result = await room.mb.services.fetcher.fetch(server.id, {
    afterBatch: async () => {
      if (cut) return
      cut = true
      // What Exchange does when the token runs out: the token is dead and the session is dropped.
      room.ms.expireAccessTokens(ALICE)
      await room.dovecot.kickAll()
    },
  })
  assert.ok(cut)
  assert.deepEqual(result, { fetched: 100, stored: 100, duplicates: 0, failed: 0, parse_errors: 0 })
  assert.equal(refreshes(), before + 1, 'one refresh for the new session')
  assert.ok(room.mb.logs.some((l) => l.includes('IMAP session lost; reconnecting')))
  assert.equal((await room.dovecot.flags(ALICE)).filter((f) => f.flags.includes('\\Seen')).length, 100)
})

test('fetch: the scheduler fetches confirmed servers only, and the server shows progress while it runs', { skip }, async (t) => {
  const room = await startMailroom({ env: { MAILBRIDGE_FETCH_BATCH: '25' } })
  t.after(room.close)
  const draft = await room.incomingServer({ username: 'bob@contoso.com' })
  const server = await room.confirmedServer()
  await room.dovecot.seedMany(ALICE, Array.from({ length: 100 }, (_, i) => rfc822({ subject: `s${i}`, messageId: `<s-${i}@fabrikam.com>` })))
  await room.dovecot.seed('bob@contoso.com', rfc822({ subject: 'for bob', messageId: '<bob@x>' }))
  const seenProgress: string[] = []
  const fetcher = room.mb.services.fetcher
  const original = fetcher.fetch.bind(fetcher)
  fetcher.fetch = (id, o = {}) =>
    original(id, { ...o, afterBatch: async () => void seenProgress.push((await room.mb.api('GET', `/api/v1/incoming-servers/${id}`)).json().sync_progress) })
  assert.equal(await room.mb.services.scheduler.tick(), 1)
  await room.mb.services.scheduler.idle()
  assert.deepEqual(seenProgress, ['25 of 100 new messages stored', '50 of 100 new messages stored', '75 of 100 new messages stored', '100 of 100 new messages stored'])
  const after = (await room.mb.api('GET', `/api/v1/incoming-servers/${server.id}`)).json()
  assert.equal(after.sync_progress, null)
  assert.ok(after.last_fetch_at)
  assert.equal((await room.mb.api('GET', `/api/v1/messages?server_id=${draft.id}`)).json().items.length, 0)
  assert.equal(await room.mb.services.scheduler.tick(), 0, 'not due again before its poll interval')
  assert.ok(room.mb.logs.some((l) => l.includes('"done":100') && l.includes('"total":100')))
})
