import assert from 'node:assert/strict'
import { test } from 'node:test'
import { simpleParser } from 'mailparser'
import { joinMessage, readRawMail, rewriteRawHeaders, setField, splitMessage } from './raw-message.ts'

const RAW = Buffer.from(
  'Received: from printer\r\n  by relay; Fri, 27 Nov 2026 10:00:00 +0000\r\nFrom: =?UTF-8?Q?B=C3=BCro?= <office@contoso.com>\r\nTo: Bob <bob@fabrikam.com>, team: carol@fabrikam.com;\r\n' +
    'Bcc: audit@contoso.com\r\nSubject: =?UTF-8?B?U2NhbiDinJM=?=\r\n\r\nBody \u00ff\r\n\r\nsecond paragraph\r\n',
  'latin1',
)

test('splitMessage/joinMessage: folded fields stay whole and the message round-trips byte for byte', () => {
  const m = splitMessage(RAW)
  assert.deepEqual(m.fields.map((f) => f.name), ['Received', 'From', 'To', 'Bcc', 'Subject'])
  assert.match(m.fields[0]!.text, /\r\n {2}by relay/)
  assert.deepEqual(joinMessage(m), RAW)
  assert.deepEqual(joinMessage(splitMessage(Buffer.from('Subject: no body'))), Buffer.from('Subject: no body\r\n'))
})

test('setField: replaces in place (every duplicate too), or adds on top', () => {
  const m = setField(splitMessage(Buffer.from('A: 1\r\nSubject: a\r\nsubject: b\r\nZ: 2\r\n\r\nbody')), 'Subject', 'c')
  assert.equal(joinMessage(m).toString(), 'A: 1\r\nSubject: c\r\nZ: 2\r\n\r\nbody')
  assert.equal(joinMessage(setField(m, 'Date', 'x')).toString(), 'Date: x\r\nA: 1\r\nSubject: c\r\nZ: 2\r\n\r\nbody')
})

test('readRawMail: the envelope decides the recipients, Bcc is dropped from the header, a Message-ID and Date are added', async () => {
  const mail = await readRawMail(RAW, { from: 'office@contoso.com', to: ['bob@fabrikam.com', 'carol@fabrikam.com', 'audit@contoso.com'] }, (d) => `<generated@${d}>`)
  assert.deepEqual(mail.from, { name: 'Büro', address: 'office@contoso.com' })
  assert.deepEqual([mail.to, mail.cc, mail.bcc], [['bob@fabrikam.com', 'carol@fabrikam.com'], [], ['audit@contoso.com']])
  assert.equal(mail.subject, 'Scan ✓')
  assert.equal(mail.messageId, '<generated@contoso.com>')
  const parsed = await simpleParser(mail.raw)
  assert.equal(parsed.headers.get('bcc'), undefined)
  assert.equal(parsed.messageId, '<generated@contoso.com>')
  assert.ok(parsed.date instanceof Date)
  assert.ok(mail.raw.toString('latin1').endsWith('\r\n\r\nBody \u00ff\r\n\r\nsecond paragraph\r\n'), 'the body is untouched')
})

test('readRawMail: a message without From gets the envelope sender; its own Message-ID is kept', async () => {
  const mail = await readRawMail(Buffer.from('Message-ID: <abc@app.example>\r\nTo: bob@fabrikam.com\r\n\r\nhi\r\n'), { from: 'app@contoso.com', to: ['bob@fabrikam.com'] }, () => assert.fail('no new Message-ID is needed'))
  assert.equal(mail.messageId, '<abc@app.example>')
  assert.equal((await simpleParser(mail.raw)).from?.value[0]?.address, 'app@contoso.com')
})

test('rewriteRawHeaders: From changes only with the address; Reply-To is added only when absent; a non-ASCII name is encoded', async () => {
  const from = { name: 'Büro', address: 'office@contoso.com' }
  assert.equal(rewriteRawHeaders(RAW, from, { from }), RAW, 'nothing to rewrite: the very same bytes')
  const out = rewriteRawHeaders(RAW, from, { from: { name: 'Büro', address: 'alice@contoso.com' }, replyTo: from })
  assert.match(out.toString('latin1'), /^From: =\?UTF-8\?Q\?B=C3=BCro\?= <alice@contoso\.com>$/m)
  const parsed = await simpleParser(out)
  assert.deepEqual(parsed.from?.value, [{ name: 'Büro', address: 'alice@contoso.com' }])
  assert.deepEqual(parsed.replyTo?.value, [{ name: 'Büro', address: 'office@contoso.com' }])
  const withReplyTo = Buffer.from('From: a@x.example\r\nReply-To: keep@x.example\r\n\r\nb')
  const kept = rewriteRawHeaders(withReplyTo, { name: '', address: 'a@x.example' }, { from: { name: '', address: 'alice@contoso.com' }, replyTo: { name: '', address: 'a@x.example' } })
  assert.equal(kept.toString(), 'From: alice@contoso.com\r\nReply-To: keep@x.example\r\n\r\nb')
})
