import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import MailComposer from 'nodemailer/lib/mail-composer'
import { simpleParser } from 'mailparser'
import { takeAttachments } from './mime-parts.ts'

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

test('takeAttachments: the attachments come out decoded, the rest stays byte for byte with its headers and bodies', async () => {
  const pdf = randomBytes(50_000)
  const png = randomBytes(3000)
  const mime = await new MailComposer({
    from: 'alice@contoso.example', to: 'carol@fabrikam.example', subject: 'Ünïcode report', messageId: '<r-1@contoso.example>',
    inReplyTo: '<q-1@fabrikam.example>', text: 'See the report.', html: '<p>See <img src="cid:logo@x"></p>',
    attachments: [{ filename: 'Bericht März.pdf', content: pdf, contentType: 'application/pdf' }, { filename: 'logo.png', content: png, cid: 'logo@x' }],
  }).compile().build()
  const { skeleton, attachments } = takeAttachments(mime)
  assert.deepEqual(attachments.map((a) => [a.name, a.contentType, a.contentId, a.isInline, sha(a.bytes)]), [
    ['logo.png', 'image/png', 'logo@x', true, sha(png)],
    ['Bericht März.pdf', 'application/pdf', undefined, false, sha(pdf)],
  ])
  const head = mime.subarray(0, mime.indexOf('\r\n\r\n'))
  assert.ok(skeleton.subarray(0, head.length).equals(head), 'the header block is unchanged')
  const parsed = await simpleParser(skeleton)
  assert.deepEqual([parsed.subject, parsed.messageId, parsed.inReplyTo, parsed.text?.trim(), parsed.attachments.length], ['Ünïcode report', '<r-1@contoso.example>', '<q-1@fabrikam.example>', 'See the report.', 0])
  assert.match(String(parsed.html), /cid:logo@x/)
  assert.ok(skeleton.length < 3000)
})

test('takeAttachments: a message of attachments only keeps its header block and gets an empty text body; a plain one is unchanged', async () => {
  const only = await new MailComposer({ from: 'a@contoso.example', to: 'b@fabrikam.example', subject: 'Files', attachments: [{ filename: 'a.bin', content: randomBytes(10) }] }).compile().build()
  const out = takeAttachments(only)
  assert.equal(out.attachments.length, 1)
  const parsed = await simpleParser(out.skeleton)
  assert.deepEqual([parsed.subject, parsed.attachments.length, parsed.text ?? ''], ['Files', 0, ''])
  const plain = Buffer.from('From: a@contoso.example\r\nTo: b@fabrikam.example\r\nSubject: Hi\r\n\r\nJust text.\r\n')
  assert.ok(takeAttachments(plain).skeleton.equals(plain))
})

test('takeAttachments: quoted-printable attachments and parts without header fields are read as RFC 2045/2046 say', () => {
  const mime = Buffer.from([
    'From: a@contoso.example', 'To: b@fabrikam.example', 'Subject: QP', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b1"', '',
    'preamble', '--b1', '', 'A part with no header fields is text/plain.', '--b1',
    'Content-Type: text/csv; name="t.csv"', 'Content-Transfer-Encoding: quoted-printable', 'Content-Disposition: attachment; filename*=utf-8\'\'caf%C3%A9.csv', '',
    'a=3Db,c=', 'd', '--b1--', 'epilogue', '',
  ].join('\r\n'))
  const { skeleton, attachments } = takeAttachments(mime)
  assert.deepEqual(attachments.map((a) => [a.name, a.bytes.toString()]), [['café.csv', 'a=b,cd']])
  assert.match(skeleton.toString(), /preamble\r\n--b1\r\n\r\nA part with no header fields is text\/plain\.\r\n--b1--\r\nepilogue/)
})
