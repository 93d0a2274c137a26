import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import fc from 'fast-check'
import { cutAttachmentBodies } from './attachment-bodies.ts'
import { parseMessage, parseWhole } from './parse.ts'

/** Bytes from a seed (xorshift): what fast-check generates must replay from its seed. */
const bytes = (size: number, seed: number) => {
  const out = Buffer.alloc(size)
  let x = seed | 1
  for (let i = 0; i < size; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}
const b64 = (bytes: Buffer, width = 76, eol = '\r\n') => bytes.toString('base64').replace(new RegExp(`.{${width}}`, 'g'), `$&${eol}`)

const invoice = (file: Buffer, o: { eol?: string; width?: number; extra?: string; edit?: (base64: string) => string } = {}) => {
  const eol = o.eol ?? '\r\n'
  return Buffer.from(
    [
      'From: Customer <customer@fabrikam.com>', 'To: alice@contoso.com', 'Subject: Invoice 7', 'Message-ID: <inv-7@fabrikam.com>', 'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="outer"', '', 'preamble', '--outer', 'Content-Type: text/plain; charset=utf-8', '', 'Please find the invoice attached.',
      '--outer', 'Content-Type: application/pdf; name="invoice-7.pdf"', 'Content-Disposition: attachment; filename="invoice-7.pdf"', 'Content-Transfer-Encoding: base64',
      ...(o.extra ? [o.extra] : []), '', (o.edit ?? ((x) => x))(b64(file, o.width, eol)), '--outer--', 'epilogue', '',
    ].join(eol),
  )
}

test('a base64 attachment body is cut out of the copy mailparser reads, and its size is the decoded size', async () => {
  const file = randomBytes(300_000)
  const raw = invoice(file)
  const cut = cutAttachmentBodies(raw)
  assert.ok(cut, 'the attachment is cut')
  assert.ok(cut.raw.length < 2000, `the copy is small (${cut.raw.length} bytes)`)
  assert.deepEqual(cut.sizes, [file.length])
  const parsed = await parseMessage(raw)
  assert.deepEqual(parsed, await parseWhole(raw))
  assert.deepEqual(parsed.attachments, [{ filename: 'invoice-7.pdf', content_type: 'application/pdf', size: file.length }])
  assert.equal(parsed.row.text_body, 'Please find the invoice attached.')
})

test('bodies that could be read another way are not cut: a "-" in them, padding mid-body, two Content-Types, text parts, small ones', () => {
  const file = randomBytes(30_000)
  assert.ok(cutAttachmentBodies(invoice(file)), 'the same message unchanged is cut')
  assert.equal(cutAttachmentBodies(invoice(file, { edit: (x) => x.replace('\r\n', '\r\n--') })), null)
  assert.equal(cutAttachmentBodies(invoice(file, { edit: (x) => x.replace('\r\n', '\r\nQQ==') })), null)
  assert.equal(cutAttachmentBodies(invoice(file, { edit: (x) => x.replace('\r\n', '_\r\n') })), null)
  assert.equal(cutAttachmentBodies(invoice(file, { extra: 'Content-Type: text/plain' })), null)
  assert.equal(cutAttachmentBodies(Buffer.from(invoice(file).toString('latin1').replace('application/pdf', 'text/csv'), 'latin1')), null)
  assert.equal(cutAttachmentBodies(invoice(randomBytes(500))), null)
})

test('a marker header written by the sender is not taken for one of ours', async () => {
  const file = randomBytes(10_000)
  const raw = invoice(file, { extra: 'X-Mailbridge-Cut: 0000000000000000-0' })
  const parsed = await parseMessage(raw)
  assert.deepEqual(parsed, await parseWhole(raw))
  assert.equal(parsed.attachments[0]!.size, file.length)
})

/** A MIME tree: text, base64 files (any line width, CRLF or LF), nested multiparts, messages without a close delimiter. */
const leaf = fc.oneof(
  fc.string({ maxLength: 200 }).map((text) => ['Content-Type: text/plain; charset=utf-8', '', text.replace(/[\r\n]/g, ' ')]),
  fc
    .record({ size: fc.integer({ min: 0, max: 20_000 }), width: fc.constantFrom(60, 64, 76, 998), type: fc.constantFrom('application/pdf', 'image/png', 'application/octet-stream', 'text/csv'), name: fc.constantFrom('a.pdf', 'photo.png', 'r\u00e9sum\u00e9.bin'), seed: fc.integer() })
    .map(({ size, width, type, name, seed }) => [`Content-Type: ${type}; name="${name}"`, 'Content-Disposition: attachment', 'Content-Transfer-Encoding: base64', '', b64(bytes(size, seed), width, '\n').replace(/\n/g, '\r\n').replace(/\r\n$/, '')]),
)
const part: fc.Memo<string[]> = fc.memo((depth) =>
  depth <= 1
    ? leaf
    : fc.oneof(
        leaf,
        fc.record({ parts: fc.array(part(depth - 1), { minLength: 1, maxLength: 4 }), boundary: fc.constantFrom('b', 'b1', 'b-10', '=_Part_1', 'x y'), closed: fc.boolean(), pad: fc.constantFrom('', ' ', '\t') }).map(({ parts, boundary, closed, pad }) => [
          `Content-Type: multipart/mixed; boundary="${boundary}${depth}"`, '', 'preamble',
          ...parts.flatMap((p) => [`--${boundary}${depth}${pad}`, ...p]),
          ...(closed ? [`--${boundary}${depth}--`, 'epilogue'] : []),
        ]),
      ),
)

test('property: whatever is cut, parseMessage reads exactly what mailparser reads in the whole message', async () => {
  let withCuts = 0
  await fc.assert(
    fc.asyncProperty(part(4), fc.constantFrom('\r\n', '\n'), async (lines, eol) => {
      const raw = Buffer.from(['From: a@fabrikam.com', 'Subject: tree', 'MIME-Version: 1.0', ...lines, ''].join('\n').replace(/\r?\n/g, eol))
      if (cutAttachmentBodies(raw)) withCuts++
      assert.deepEqual(await parseMessage(raw), await parseWhole(raw))
    }),
    { numRuns: Number(process.env.PROPERTY_RUNS ?? 300) },
  )
  assert.ok(withCuts > 0, 'some generated messages had bodies to cut')
})
