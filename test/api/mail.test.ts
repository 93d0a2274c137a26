import assert from 'node:assert/strict'
import { test } from 'node:test'
import { simpleParser } from 'mailparser'
import { outlook } from '../../src/oauth/providers.ts'
import { subscribe } from '../support/webhook-receiver.ts'
import { ALICE, runQueue, startWorld, type World } from '../support/world.ts'

const FAST = { MAILBRIDGE_RETRY_BASE_S: '0', MAILBRIDGE_SERVER_PAUSE_S: '600' }


async function ready(o: Parameters<typeof startWorld>[0] = {}) {
  const w = await startWorld({ ...o, env: { ...FAST, ...o.env } })
  const server = await w.outgoingServer()
  await w.connect(server.id)
  return { w, server }
}

const refreshes = (w: World) => w.ms.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length

test('mail: HTML + text with an attachment is stored, sent over XOAUTH2, and arrives intact with its Message-ID', async (t) => {
  const { w, server } = await ready()
  t.after(w.close)
  const pdf = Buffer.from('%PDF-1.4 fake but binary \u0000\u00ff')
  const res = await w.mb.api('POST', '/api/v1/mail', {
    from: 'Alice Example <alice@contoso.com>',
    to: ['Bob <bob@fabrikam.com>'],
    cc: ['carol@fabrikam.com'],
    bcc: ['audit@contoso.com'],
    subject: 'Quarterly report — Q3 ✓',
    text: 'See attached.',
    html: '<p>See <b>attached</b>.</p>',
    attachments: [{ filename: 'report.pdf', content_type: 'application/pdf', content_base64: pdf.toString('base64') }],
    headers: { 'X-Order': '42' },
  })
  assert.equal(res.statusCode, 202)
  const accepted = res.json()
  assert.equal(accepted.state, 'outgoing')
  assert.match(accepted.message_id, /^<[0-9a-f]+\.mailbridge@contoso\.com>$/)
  await runQueue(w)
  assert.equal(w.smtp.messages.length, 1)
  const got = w.smtp.messages[0]!
  assert.equal(got.user, ALICE)
  assert.equal(got.from, ALICE)
  assert.deepEqual([...got.to].sort(), ['audit@contoso.com', 'bob@fabrikam.com', 'carol@fabrikam.com'])
  const parsed = await simpleParser(got.raw)
  assert.equal(parsed.messageId, accepted.message_id)
  assert.equal(parsed.subject, 'Quarterly report — Q3 ✓')
  assert.equal(parsed.text?.trim(), 'See attached.')
  assert.match(parsed.html as string, /<b>attached<\/b>/)
  assert.equal(parsed.headers.get('x-order'), '42')
  assert.equal(parsed.headers.get('bcc'), undefined, 'Bcc is in the envelope only')
  assert.deepEqual(parsed.attachments[0]!.content, pdf)
  assert.equal(parsed.attachments[0]!.filename, 'report.pdf')
  const mail = (await w.mb.api('GET', `/api/v1/mail/${accepted.id}`)).json()
  assert.equal(mail.state, 'sent')
  assert.equal(mail.attempts, 1)
  assert.equal(mail.server_id, server.id)
  assert.match(mail.smtp_response, /^250/)
  assert.ok(mail.sent_at)
})

test('mail: the server is chosen by from_filter, address before domain, and an explicit server_id wins', async (t) => {
  const { w, server } = await ready()
  t.after(w.close)
  const bob = await w.outgoingServer({ username: 'bob@contoso.com', body: { name: 'Bob' } })
  const domain = await w.outgoingServer({ username: 'bob@contoso.com', body: { name: 'Domain', from_filter: 'fabrikam.com', sequence: 1 } })
  const send = async (body: object) => (await w.mb.api('POST', '/api/v1/mail', { to: ['x@example.org'], subject: 's', text: 't', ...body })).json()
  const viaAddress = await send({ from: 'bob@contoso.com' })
  assert.equal((await w.mb.api('GET', `/api/v1/mail/${viaAddress.id}`)).json().server_id, bob.id)
  const viaDomain = await send({ from: 'sales@fabrikam.com' })
  assert.equal((await w.mb.api('GET', `/api/v1/mail/${viaDomain.id}`)).json().server_id, domain.id)
  const explicit = await send({ from: 'bob@contoso.com', server_id: server.id })
  assert.equal((await w.mb.api('GET', `/api/v1/mail/${explicit.id}`)).json().server_id, server.id)
  const unknown = await w.mb.api('POST', '/api/v1/mail', { to: ['x@example.org'], subject: 's', text: 't', server_id: 'nope' })
  assert.equal(unknown.statusCode, 400)
  assert.equal(unknown.json().error.field, 'server_id')
})

test('mail: mail.force.smtp.from sends every mail from that address, keeping the name and the sender as Reply-To', async (t) => {
  const { w } = await ready()
  t.after(w.close)
  await w.mb.api('PUT', '/api/v1/parameters/mail.force.smtp.from', { value: ALICE })
  await w.mb.api('POST', '/api/v1/mail', { from: 'ERP Sales <sales@erp.example>', to: ['bob@fabrikam.com'], subject: 'Invoice', text: 'x' })
  await runQueue(w)
  const parsed = await simpleParser(w.smtp.messages[0]!.raw)
  assert.deepEqual(parsed.from?.value, [{ name: 'ERP Sales', address: ALICE }])
  assert.deepEqual(parsed.replyTo?.value, [{ name: 'ERP Sales', address: 'sales@erp.example' }])
  assert.equal(w.smtp.messages[0]!.from, ALICE, 'the envelope sender is the mailbox, as Exchange demands')
})

test('mail: a sender outside the from_filter is rewritten to the mailbox, so Exchange does not answer 5.7.60', async (t) => {
  const { w } = await ready()
  t.after(w.close)
  await w.mb.api('POST', '/api/v1/mail', { from: 'Shop <noreply@shop.example>', to: ['bob@fabrikam.com'], subject: 'Order', text: 'x' })
  await runQueue(w)
  const parsed = await simpleParser(w.smtp.messages[0]!.raw)
  assert.deepEqual(parsed.from?.value, [{ name: 'Shop', address: ALICE }])
  assert.equal(parsed.replyTo?.value[0]?.address, 'noreply@shop.example')
})

test('mail: a transient 451 is retried with backoff, then sent; attempts and the final reply are recorded', async (t) => {
  const { w } = await ready({ smtp: { dataReply: (n: number) => (n === 1 ? { code: 451, message: '4.7.500 Server busy. Please try again later.' } : undefined) } })
  t.after(w.close)
  const id = (await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 's', text: 't' })).json().id
  await w.mb.services.mailWorker.tick()
  await w.mb.services.mailWorker.idle()
  let mail = (await w.mb.api('GET', `/api/v1/mail/${id}`)).json()
  assert.equal(mail.state, 'outgoing')
  assert.equal(mail.attempts, 1)
  assert.match(mail.failure_reason, /451 4\.7\.500/)
  assert.ok(mail.next_attempt_at)
  await runQueue(w)
  mail = (await w.mb.api('GET', `/api/v1/mail/${id}`)).json()
  assert.equal(mail.state, 'sent')
  assert.equal(mail.attempts, 2)
  assert.equal(w.smtp.messages.length, 1)
})

test('mail: a rejected recipient is a permanent failure (mail_email_invalid), never retried', async (t) => {
  const { w } = await ready({ smtp: { rejectRcpt: (a: string) => (a === 'ghost@fabrikam.com' ? { code: 550, message: '5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup' } : undefined) } })
  t.after(w.close)
  const id = (await w.mb.api('POST', '/api/v1/mail', { to: ['ghost@fabrikam.com'], subject: 's', text: 't' })).json().id
  await runQueue(w)
  const mail = (await w.mb.api('GET', `/api/v1/mail/${id}`)).json()
  assert.equal(mail.state, 'exception')
  assert.equal(mail.failure_type, 'mail_email_invalid')
  assert.match(mail.failure_reason, /5\.1\.10/)
  assert.match(mail.failure_reason, /alice@contoso\.com/, 'the reason names the mailbox')
  assert.equal(mail.attempts, 1)
  // Retry puts it back in the queue; cancel takes it out.
  assert.equal((await w.mb.api('POST', `/api/v1/mail/${id}/retry`)).json().state, 'outgoing')
  assert.equal((await w.mb.api('POST', `/api/v1/mail/${id}/cancel`)).json().state, 'cancel')
  assert.equal((await w.mb.api('POST', `/api/v1/mail/${id}/retry`)).statusCode, 409)
})

test('mail: a 5.2.25x lock-out fails the mail and pauses the server; the rest wait', async (t) => {
  const { w, server } = await ready({ smtp: { dataReply: () => ({ code: 550, message: '5.2.252 SendAsDenied; alice@contoso.com not allowed to send as x; throttled' }) } })
  t.after(w.close)
  await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: '1', text: 't' })
  await runQueue(w)
  await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: '2', text: 't' })
  await runQueue(w)
  const s = (await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json()
  assert.ok(Date.parse(s.paused_until) > Date.now())
  assert.match(s.pause_reason, /5\.2\.252/)
  const mails = (await w.mb.api('GET', '/api/v1/mail')).json().items
  assert.deepEqual(mails.map((m: { state: string }) => m.state).sort(), ['exception', 'outgoing'])
})

test('mail: 535 on a stale token → one refresh → sent', async (t) => {
  const { w } = await ready()
  t.after(w.close)
  w.ms.expireAccessTokens(ALICE)
  const id = (await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 's', text: 't' })).json().id
  await runQueue(w)
  assert.equal((await w.mb.api('GET', `/api/v1/mail/${id}`)).json().state, 'sent')
  assert.equal(refreshes(w), 1)
  assert.deepEqual(w.smtp.authAttempts.map((a) => a.ok), [false, true])
})

test('mail: a burst of 40 that needs a refresh makes exactly one refresh call', async (t) => {
  const { w, server } = await ready()
  t.after(w.close)
  await w.mb.api('PATCH', `/api/v1/outgoing-servers/${server.id}`, { max_per_minute: null })
  await w.mb.services.database.db.updateTable('credentials').set({ access_expires_at: new Date(Date.now() + 60_000).toISOString() }).execute()
  w.ms.setTokenEndpoint({ delayMs: 100 })
  for (let i = 0; i < 40; i++) await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: `m${i}`, text: 't' })
  await runQueue(w)
  assert.equal(w.smtp.messages.length, 40)
  assert.equal(refreshes(w), 1)
  assert.ok(w.smtp.connections.max <= 3, `at most 3 connections per mailbox, saw ${w.smtp.connections.max}`)
})

test('mail: a dead token keeps mails queued (not failed) until Reconnect, then they go out', async (t) => {
  const { w, server } = await ready()
  t.after(w.close)
  w.ms.revokeUser(ALICE)
  await w.mb.services.database.db.updateTable('credentials').set({ access_expires_at: new Date(Date.now() + 60_000).toISOString() }).execute()
  const app = await subscribe(w.mb, ['token.invalid'])
  t.after(app.close)
  const id = (await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 's', text: 't' })).json().id
  await runQueue(w)
  let mail = (await w.mb.api('GET', `/api/v1/mail/${id}`)).json()
  assert.equal(mail.state, 'outgoing')
  assert.match(mail.failure_reason, /AADSTS50173|Reconnect/)
  await app.deliver()
  const [announced, ...more] = app.data('token.invalid') as Array<{ server_kind: string; server_id: string; mailbox: string; reason: string }>
  assert.deepEqual(more, [], 'the application is told once')
  assert.deepEqual({ ...announced, reason: undefined }, { server_kind: 'outgoing', server_id: server.id, mailbox: ALICE, reason: undefined })
  assert.match(announced!.reason, /AADSTS50173/)
  assert.equal((await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json().token.valid, false)
  w.ms.addUser(ALICE)
  assert.equal((await w.connect(server.id)).statusCode, 302)
  await w.mb.api('POST', `/api/v1/mail/${id}/retry`)
  await runQueue(w)
  mail = (await w.mb.api('GET', `/api/v1/mail/${id}`)).json()
  assert.equal(mail.state, 'sent')
})

test('mail: the per-minute limit holds; the rest wait for the next minute', async (t) => {
  const { w, server } = await ready()
  t.after(w.close)
  await w.mb.api('PATCH', `/api/v1/outgoing-servers/${server.id}`, { max_per_minute: 5 })
  for (let i = 0; i < 8; i++) await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: `m${i}`, text: 't' })
  await runQueue(w)
  assert.equal(w.smtp.messages.length, 5)
  assert.equal((await w.mb.api('GET', '/api/v1/mail?state=outgoing')).json().items.length, 3)
})

test('mail api: idempotency, paging, state filter, 413 and clear 400s', async (t) => {
  const { w } = await ready({ env: { MAILBRIDGE_MAX_MAIL_BYTES: '10000' } })
  t.after(w.close)
  const body = { to: ['bob@fabrikam.com'], subject: 's', text: 't', idempotency_key: 'order-42' }
  const a = (await w.mb.api('POST', '/api/v1/mail', body)).json()
  const b = (await w.mb.api('POST', '/api/v1/mail', body)).json()
  assert.equal(a.id, b.id)
  for (let i = 0; i < 4; i++) await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: `p${i}`, text: 't' })
  const p1 = (await w.mb.api('GET', '/api/v1/mail?limit=2')).json()
  assert.equal(p1.items.length, 2)
  const p2 = (await w.mb.api('GET', `/api/v1/mail?limit=2&cursor=${p1.next_cursor}`)).json()
  const p3 = (await w.mb.api('GET', `/api/v1/mail?limit=2&cursor=${p2.next_cursor}`)).json()
  assert.equal(p3.next_cursor, null)
  assert.equal(new Set([...p1.items, ...p2.items, ...p3.items].map((m: { id: string }) => m.id)).size, 5)
  assert.equal((await w.mb.api('GET', '/api/v1/mail?state=sent')).json().items.length, 0)
  assert.equal((await w.mb.api('GET', '/api/v1/mail?state=bogus')).statusCode, 400)
  const big = await w.mb.api('POST', '/api/v1/mail', { ...body, idempotency_key: undefined, attachments: [{ filename: 'a.bin', content_type: 'application/octet-stream', content_base64: Buffer.alloc(20_000).toString('base64') }] })
  assert.equal(big.statusCode, 413)
  assert.match(big.json().error.message, /limit/)
  const inj = await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 'x\r\nBcc: evil@x.com', text: 't' })
  assert.equal(inj.statusCode, 400)
  assert.equal(inj.json().error.field, 'subject')
  assert.equal((await w.mb.api('GET', '/api/v1/mail/nope')).statusCode, 404)
  void outlook
})
