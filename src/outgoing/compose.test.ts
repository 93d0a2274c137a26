import assert from 'node:assert/strict'
import { test } from 'node:test'
import { simpleParser } from 'mailparser'
import nodemailer from 'nodemailer'
import type { OutgoingServerRow } from '../db/schema.ts'
import type { ClaimedMail } from './claimed-mail.ts'
import { composeMail } from './compose.ts'
import type { ComposedMail } from './mail-transport.ts'

const server = { from_filter: 'alice@contoso.com', username: 'alice@contoso.com' } as OutgoingServerRow
const mail = (o: Partial<ClaimedMail> = {}) =>
  ({
    id: 'm1',
    message_id: '<m1.abc@contoso.com>',
    from_addr: '"Ada Lovelace" <ada@contoso.com>',
    to_addrs: JSON.stringify(['Bob <bob@fabrikam.com>']),
    cc_addrs: JSON.stringify(['carol@fabrikam.com']),
    bcc_addrs: JSON.stringify(['audit@contoso.com']),
    reply_to: null,
    subject: 'Invoice =?utf-8?q?not-encoded-word?=',
    created_at: '2026-12-01T10:00:00.000Z',
    ...o,
  }) as ClaimedMail
const content = JSON.stringify({ text: 'Hello', headers: { 'X-Order': '42' }, attachments: [{ filename: 'a.txt', content_type: 'text/plain', content_base64: Buffer.from('attached').toString('base64') }] })

/** The message as nodemailer writes it on the wire, and its envelope. */
async function rendered(m: ComposedMail) {
  const info = await nodemailer.createTransport({ streamTransport: true, buffer: true }).sendMail(m)
  return { parsed: await simpleParser(info.message as Buffer), envelope: info.envelope }
}

test('composeMail(): a sender the server may not send as leaves From the server\'s address, the display name kept and the original as Reply-To', async () => {
  const { parsed, envelope } = await rendered(composeMail(server, mail(), content, undefined))
  assert.deepEqual(parsed.from?.value, [{ name: 'Ada Lovelace', address: 'alice@contoso.com' }])
  assert.deepEqual(parsed.replyTo?.value, [{ name: 'Ada Lovelace', address: 'ada@contoso.com' }])
  assert.deepEqual(envelope, { from: 'alice@contoso.com', to: ['bob@fabrikam.com', 'carol@fabrikam.com', 'audit@contoso.com'] })
  assert.equal(parsed.messageId, '<m1.abc@contoso.com>', 'the Message-ID is the mail\'s own, the same at every attempt')
  assert.equal(parsed.date?.toISOString(), '2026-12-01T10:00:00.000Z')
  assert.equal(parsed.subject, 'Invoice =?utf-8?q?not-encoded-word?=', 'the subject is taken literally, never decoded as an encoded word')
  assert.equal(parsed.headers.get('x-order'), '42')
  assert.equal(parsed.text?.trim(), 'Hello')
  assert.deepEqual(parsed.attachments.map((a) => [a.filename, a.content.toString()]), [['a.txt', 'attached']])
})

test('composeMail(): a sender the server may send as stays as it is; a given Reply-To is kept', async () => {
  const { parsed, envelope } = await rendered(composeMail(server, mail({ from_addr: 'Alice <alice@contoso.com>', reply_to: 'desk@contoso.com' }), content, undefined))
  assert.deepEqual(parsed.from?.value, [{ name: 'Alice', address: 'alice@contoso.com' }])
  assert.deepEqual(parsed.replyTo?.value, [{ name: '', address: 'desk@contoso.com' }])
  assert.equal(envelope.from, 'alice@contoso.com')
})

test('composeMail(): mail.force.smtp.from makes every mail leave From that address, whatever the server allows', async () => {
  const { parsed, envelope } = await rendered(composeMail(server, mail({ from_addr: 'Alice <alice@contoso.com>' }), content, 'noreply@contoso.com'))
  assert.deepEqual(parsed.from?.value, [{ name: 'Alice', address: 'noreply@contoso.com' }])
  assert.deepEqual(parsed.replyTo?.value, [{ name: 'Alice', address: 'alice@contoso.com' }])
  assert.equal(envelope.from, 'noreply@contoso.com')
})

test('composeMail(): a relayed mail goes out as it came, only From and Reply-To rewritten, to its SMTP session\'s recipients', async () => {
  const raw = 'From: Printer <scanner@contoso.com>\r\nTo: bob@fabrikam.com\r\nMessage-ID: <scan.1@contoso.com>\r\nSubject: Scan\r\n\r\nbody\r\n'
  const stored = JSON.stringify({ raw: Buffer.from(raw).toString('base64'), envelope_to: ['bob@fabrikam.com', 'hidden@fabrikam.com'] })
  const composed = composeMail(server, mail({ from_addr: 'Printer <scanner@contoso.com>' }), stored, undefined)
  const { parsed, envelope } = await rendered(composed)
  assert.deepEqual(envelope, { from: 'alice@contoso.com', to: ['bob@fabrikam.com', 'hidden@fabrikam.com'] })
  assert.deepEqual(parsed.from?.value, [{ name: 'Printer', address: 'alice@contoso.com' }])
  assert.deepEqual(parsed.replyTo?.value, [{ name: 'Printer', address: 'scanner@contoso.com' }])
  assert.equal(parsed.messageId, '<scan.1@contoso.com>')
  assert.equal(parsed.text?.trim(), 'body')
})
