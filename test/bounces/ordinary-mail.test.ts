import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import fc from 'fast-check'
import MailComposer from 'nodemailer/lib/mail-composer/index.js'
import { recognise } from '../../src/bounces/recognise.ts'

/** Old bounces a person may forward: an RFC 3464 report, an Exim text bounce, an Exchange NDR, an out-of-office. */
const CORPUS = new URL('../corpus/bounces/', import.meta.url)
const OLD_REPORTS = ['lhost-postfix-01.eml', 'lhost-exim-01.eml', 'lhost-exchange2007-01.eml', 'lhost-qmail-01.eml', 'rfc3834-01.eml'].map((f) => readFileSync(new URL(f, CORPUS)))

const build = (mail: ConstructorParameters<typeof MailComposer>[0]) => new MailComposer(mail).compile().build()

const person = fc.constantFrom('Alice <alice@contoso.com>', 'bob@fabrikam.example', '"Ops, Team" <ops@example.org>', 'jörg@bücher.example')
const words = fc.array(fc.constantFrom('invoice', 'undeliverable', 'delivery', 'failed', 'status', 'returned', 'mail', 'report', 'out of office', 'meeting', 'Re:', 'Fwd:', '5.1.1', 'MAILER-DAEMON', 'postmaster'), { maxLength: 8 }).map((w) => w.join(' '))
// Subjects a person writes, bounce words among them: "Fwd: Undeliverable: …" is a person forwarding one.
const subject = fc.oneof(words, fc.string({ maxLength: 60 }), fc.constantFrom('Fwd: Undeliverable: Invoice 42', 'Re: Delivery Status Notification (Failure)', 'Fw: Mail delivery failed: returning message to sender', 'Re: Automatic reply: Invoice 42'))
// A postmaster forwards old bounces too; that mail comes from a mail system's address and must still not count.
const postmaster = fc.constant('Postmaster <postmaster@contoso.com>')
const prose = fc.oneof(fc.string({ maxLength: 400 }), words)
const body = fc.oneof(prose, fc.constantFrom('The following address(es) failed:\n\n  x@example.org\n    550 5.1.1 unknown', 'Hi. This is the qmail-send program at example.org.\n<x@example.org>:\nno mailbox (#5.1.1)'))
const attachment = fc.oneof(
  fc.record({ filename: fc.constantFrom('a.pdf', 'report.txt', 'photo.jpg', 'delivery-status.txt'), content: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)), contentType: fc.constantFrom('application/pdf', 'text/plain', 'image/jpeg', 'message/delivery-status', 'text/rfc822-headers') }),
  // A forwarded bounce, attached as a message (message/rfc822), inline or as an attachment.
  fc.record({ filename: fc.constant('forwarded.eml'), content: fc.constantFrom(...OLD_REPORTS), contentType: fc.constant('message/rfc822'), contentDisposition: fc.constantFrom('attachment' as const, 'inline' as const) }),
)
const reply = fc.option(fc.constantFrom('<m1@contoso.com>', '<CAB+x=y@mail.gmail.com>'), { nil: undefined })

test('recognise: no ordinary message is taken for a bounce or an automatic reply (replies, attachments, forwarded bounces)', async () => {
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.tuple(person, body), fc.tuple(postmaster, prose)), person, subject, fc.array(attachment, { maxLength: 3 }), reply, async ([from, text], to, subj, attachments, inReplyTo) => {
      const raw = await build({ from, to, subject: subj, text, attachments, inReplyTo, references: inReplyTo, messageId: '<p1@contoso.com>' })
      const r = await recognise(raw)
      assert.equal(r.bounce, null, `taken for a bounce: ${raw.toString('utf8').slice(0, 400)}`)
      assert.equal(r.auto_reply, false, `taken for an automatic reply: ${raw.toString('utf8').slice(0, 400)}`)
    }),
    { numRuns: 300 },
  )
})

test('recognise: the same bounce that a forward carries is recognised on its own', async () => {
  for (const raw of OLD_REPORTS.slice(0, 4)) assert.ok((await recognise(raw)).bounce)
})
