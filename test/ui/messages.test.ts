import assert from 'node:assert/strict'
import { test } from 'node:test'
import { adminClient } from '../support/admin-client.ts'
import { dovecotAvailable } from '../support/dovecot.ts'
import { rfc822, startMailroom } from '../support/mailroom.ts'
import { ALICE } from '../support/world.ts'

/** A message with one attachment, as a mail client sends it. */
const withAttachment = (subject: string, name: string, content: Buffer) =>
  [
    'From: Bob <bob@fabrikam.com>', `To: ${ALICE}`, `Subject: ${subject}`, '<invoice-7@fabrikam.com>'.replace(/^/, 'Message-ID: '), 'Date: Tue, 3 Mar 2026 09:30:00 +0100',
    'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b1"', '', '--b1', 'Content-Type: text/plain; charset=utf-8', '', 'See the attachment.', '--b1',
    `Content-Type: application/pdf; name="${name}"`, `Content-Disposition: attachment; filename="${name}"`, 'Content-Transfer-Encoding: base64', '', content.toString('base64'), '--b1--', '',
  ].join('\r\n')

test('messages: search by subject, sender and server, newest first by page, threads as trees, the Date header beside the fetch time, an attachment downloaded', { skip: !dovecotAvailable() && 'Dovecot is not installed' }, async (t) => {
  const room = await startMailroom()
  t.after(room.close)
  const admin = await adminClient(room.mb.app, room.mb.services)
  const server = await room.confirmedServer({ body: { name: 'Support inbox' } })
  const pdf = Buffer.from('%PDF-1.4\n% a tiny invoice\n')
  await room.dovecot.seed(ALICE, withAttachment('Invoice 7', 'invoice-7.pdf', pdf))
  await room.dovecot.seed(ALICE, rfc822({ subject: 'Re: Invoice 7', messageId: '<invoice-7-re@contoso.com>', from: 'Alice <alice@contoso.com>', headers: 'In-Reply-To: <invoice-7@fabrikam.com>\r\n' }))
  await room.dovecot.seed(ALICE, rfc822({ subject: 'Re: Re: Invoice 7', messageId: '<invoice-7-re-re@fabrikam.com>', from: 'Bob <bob@fabrikam.com>', headers: 'In-Reply-To: <invoice-7-re@contoso.com>\r\n' }))
  for (let i = 0; i < 52; i++) await room.dovecot.seed(ALICE, rfc822({ subject: `Newsletter ${i}`, messageId: `<news-${i}@news.example>`, from: 'News <news@news.example>' }))
  await room.mb.services.fetcher.fetch(server.id)

  const first = await admin.get('/admin/messages')
  assert.equal((first.body.match(/<div class="msg">/g) ?? []).length, 50, 'a page holds 50 messages')
  assert.match(first.body, /Newsletter 51</, 'newest first')
  assert.doesNotMatch(first.body, /Invoice 7/)
  const older = /href="(\/admin\/messages\?cursor=[0-9a-f]+)">Older messages/.exec(first.body)?.[1]
  assert.ok(older)
  const second = await admin.get(older)
  assert.match(second.body, /Invoice 7 <span class="muted">3 messages<\/span>/)
  // The thread is a tree: the reply sits inside the first message's item, its reply inside that one.
  assert.match(second.body, /<ul class="thread-tree"><li><div class="msg"><a href="[^"]+">Invoice 7<\/a>[\s\S]*?<ul><li><div class="msg"><a href="[^"]+">Re: Invoice 7<\/a>[\s\S]*?<ul><li><div class="msg"><a href="[^"]+">Re: Re: Invoice 7<\/a>/)
  assert.match(second.body, /Date 2026-03-03 08:30 UTC · fetched <time datetime=/, 'the Date header in UTC beside the fetch time')

  const bySender = await admin.get('/admin/messages?q=BOB%40fabrikam')
  assert.equal((bySender.body.match(/<div class="msg">/g) ?? []).length, 2)
  const bySubject = await admin.get('/admin/messages?q=re%3A+re')
  assert.equal((bySubject.body.match(/<div class="msg">/g) ?? []).length, 1)
  assert.match((await admin.get(`/admin/messages?server_id=${server.id}&q=newsletter+5`)).body, /Newsletter 5</)
  assert.match((await admin.get('/admin/messages?server_id=0123&q=newsletter')).body, /Newsletter/, 'an unknown server is no filter')
  assert.match((await admin.get('/admin/messages?q=nothing-like-this')).body, /No message matches this search\./)

  const invoice = (await room.mb.services.messages.list({ limit: 500 })).items.find((m) => m.subject === 'Invoice 7')!
  const page = await admin.get(`/admin/messages/${invoice.id}`)
  const href = new RegExp(`<a href="(/admin/messages/${invoice.id}/attachments/[0-9a-f]+)" download>(?:<bdi>)?invoice-7\\.pdf(?:</bdi>)?</a>`).exec(page.body)?.[1]
  assert.ok(href, 'the attachment is a link')
  assert.match(page.body, /<th scope="row">Date<\/th><td>2026-03-03 08:30 UTC<\/td>/)
  const file = await admin.get(href)
  assert.equal(file.statusCode, 200)
  assert.equal(file.headers['content-type'], 'application/pdf')
  assert.match(String(file.headers['content-disposition']), /^attachment; filename="invoice-7\.pdf"/)
  assert.deepEqual(file.rawPayload, pdf)
  const signedOut = await room.mb.app.inject(href)
  assert.equal(signedOut.statusCode, 302, 'no download without a signed-in admin')
})
