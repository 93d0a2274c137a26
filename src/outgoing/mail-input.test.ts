import assert from 'node:assert/strict'
import { test } from 'node:test'
import { MailbridgeError } from '../errors.ts'
import { checkMail } from './mail-input.ts'

const base = { to: ['bob@fabrikam.com'], subject: 'Hello', text: 'Hi' }
const fieldOf = (body: object, max = 1e6): string | undefined => {
  try {
    checkMail({ ...base, ...body }, max)
    return undefined
  } catch (e) {
    assert.ok(e instanceof MailbridgeError)
    return e.detail.field
  }
}

test('checkMail: accepts names, quoted names, unicode addresses', () => {
  const m = checkMail({ ...base, from: '"Smith, Alice" <alice@contoso.com>', cc: ['Zoë <zoe@bücher.example>'] }, 1e6)
  assert.deepEqual(m.from, { name: 'Smith, Alice', address: 'alice@contoso.com' })
  assert.equal(m.cc[0]!.address, 'zoe@bücher.example')
})

test('checkMail: refuses what could break or smuggle headers, naming the field', () => {
  assert.equal(fieldOf({ to: [] }), 'to')
  assert.equal(fieldOf({ to: ['bob@fabrikam.com\r\nBcc: victim@x.com'] }), 'to[0]')
  assert.equal(fieldOf({ to: ['not-an-address'] }), 'to[0]')
  assert.equal(fieldOf({ subject: 'Hi\r\nBcc: victim@x.com' }), 'subject')
  assert.equal(fieldOf({ headers: { 'X-Tag': 'a\nb' } }), 'headers.X-Tag')
  assert.equal(fieldOf({ headers: { 'Bad Name': 'x' } }), 'headers.Bad Name')
  assert.equal(fieldOf({ headers: { From: 'x@y.com' } }), 'headers.From')
  assert.equal(fieldOf({ attachments: [{ filename: '../../etc/passwd', content_type: 'text/plain', content_base64: 'aGk=' }] }), 'attachments[0].filename')
  assert.equal(fieldOf({ attachments: [{ filename: 'a.txt', content_type: 'text/plain', content_base64: 'not base64!' }] }), 'attachments[0].content_base64')
  assert.equal(fieldOf({ attachments: [{ filename: 'a.txt', content_type: 'nonsense', content_base64: 'aGk=' }] }), 'attachments[0].content_type')
  assert.equal(fieldOf({ attachments: [{ filename: 'a.bin', content_type: 'application/octet-stream', content_base64: Buffer.alloc(3000).toString('base64') }] }, 2000), 'attachments')
})

test('checkMail: a 34 MB attachment (45 million base64 characters) is checked without exhausting the stack', () => {
  const bytes = 34 * 1024 * 1024
  const m = checkMail({ ...base, attachments: [{ filename: 'scan.pdf', content_type: 'application/pdf', content_base64: Buffer.alloc(bytes, 0xa5).toString('base64') }] }, 35 * 1024 * 1024)
  assert.equal(m.size, bytes + Buffer.byteLength(base.subject + base.text))
})
