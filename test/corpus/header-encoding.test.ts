import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { simpleParser, type AddressObject } from 'mailparser'
import { mailboxHeader, splitMessage } from '../../src/outgoing/raw-message.ts'
import { ALICE, runQueue, startWorld, type World } from '../support/world.ts'

// Properties (fast-check) of the MIME Mailbridge writes: generated UTF-8 text comes back identical after
// mailparser reads it, and no input can add a header line.

/** Text as applications send it: UTF-8 of every width, quotes, encoded-word lookalikes, long runs, and sometimes a line break. */
const PIECES = ['a', 'Z', '0', ' ', '"', "'", ',', ';', ':', '<', '>', '@', '\\', '=?', '?=', '_', '=', '?', 'ü', 'ß', 'ж', '中文', '—', '✓', '😀', '👩‍💻', '\u00a0', '\t']
/** Text a mail reader would decode as RFC 2047 words unless Mailbridge encodes it. */
const LOOKALIKE = '=?UTF-8?Q?hi?='
const text = (o: { maxLength: number; breaks: boolean }) => {
  const piece = fc.constantFrom(...PIECES, LOOKALIKE)
  return fc.array(o.breaks ? fc.oneof({ weight: 30, arbitrary: piece }, { weight: 1, arbitrary: fc.constantFrom('\r\n', '\n', '\r') }) : piece, { maxLength: o.maxLength }).map((a) => a.join(''))
}
const hasBreak = (s: string) => /[\r\n]/.test(s)

const FIELDS = new Set(['from', 'to', 'cc', 'reply-to', 'subject', 'message-id', 'date', 'mime-version', 'content-type', 'content-transfer-encoding', 'x-order'])


const firstName = (a: AddressObject | AddressObject[] | undefined) => (Array.isArray(a) ? a[0] : a)?.value[0]

test('queue MIME: any UTF-8 subject, display name and header value comes back identical through mailparser; a line break is refused, never a new header line', async (t) => {
  const w = await startWorld({ env: { MAILBRIDGE_RETRY_BASE_S: '0' } })
  t.after(w.close)
  // No per-minute limit: the property sends more than Outlook's 30 a minute.
  const server = await w.outgoingServer({ body: { max_per_minute: null } })
  await w.connect(server.id)
  let sent = 0
  await fc.assert(
    fc.asyncProperty(text({ maxLength: 60, breaks: true }), text({ maxLength: 20, breaks: true }), text({ maxLength: 20, breaks: false }), text({ maxLength: 40, breaks: true }), async (subject, fromName, toName, order) => {
      // Names are written quoted, so any text is a name; its ends are trimmed as every mail reader does.
      const quote = (n: string) => `"${n.replace(/(["\\])/g, '\\$1')}"`
      const res = await w.mb.api('POST', '/api/v1/mail', {
        from: `${quote(fromName)} <${ALICE}>`,
        to: [`${quote(toName)} <bob@fabrikam.com>`],
        subject,
        text: 'body',
        headers: { 'X-Order': order },
      })
      if (hasBreak(subject) || hasBreak(fromName) || hasBreak(order)) {
        assert.equal(res.statusCode, 400, res.body)
        return
      }
      assert.equal(res.statusCode, 202, res.body)
      await runQueue(w)
      sent++
      const messageId = res.json().message_id as string
      const raw = w.smtp.messages.find((m) => m.raw.includes(messageId))?.raw
      assert.ok(raw, `mail ${messageId} was delivered`)
      const names = splitMessage(raw).fields.map((f) => f.name.toLowerCase())
      assert.deepEqual(names.filter((n) => !FIELDS.has(n)), [], `only Mailbridge's own fields: ${names}`)
      assert.ok(raw.subarray(0, raw.indexOf('\r\n\r\n')).every((b) => b < 0x80), 'the header block is 7-bit (RFC 5322 §2.2 with RFC 2047 words)')
      const parsed = await simpleParser(raw)
      // Readers trim the ends of a field written as plain text (RFC 5322 folding white space); inside encoded-words
      // they stay. Everything between arrives as sent.
      assert.ok([subject, subject.trim()].includes(parsed.subject ?? ''), `${JSON.stringify(parsed.subject)} for ${JSON.stringify(subject)}`)
      assert.equal(firstName(parsed.from)?.name ?? '', fromName.trim())
      assert.equal(firstName(parsed.from)?.address, ALICE)
      assert.equal(firstName(parsed.to)?.name ?? '', toName.trim())
      // mailparser leaves fields it does not know encoded: the value is the text itself, or RFC 2047 words of it.
      assert.equal(names.filter((n) => n === 'x-order').length, order.trim() ? 1 : names.includes('x-order') ? 1 : 0)
      const xOrder = String(parsed.headers.get('x-order') ?? '')
      assert.ok(xOrder === order.trim() || /^(=\?UTF-8\?[BQ]\?[^?\s]*\?=\s*)+$/.test(xOrder), `X-Order: ${xOrder}`)
    }),
    { numRuns: 60 },
  )
  assert.ok(sent > 20, `only ${sent} of the generated mails were valid`)
})

test('queue MIME: a subject that contains an encoded-word lookalike arrives unchanged', async (t) => {
  const w = await startWorld({ env: { MAILBRIDGE_RETRY_BASE_S: '0' } })
  t.after(w.close)
  await w.connect((await w.outgoingServer()).id)
  const subject = `Re: ${LOOKALIKE} order 42`
  assert.equal((await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject, text: 'body' })).statusCode, 202)
  await runQueue(w)
  assert.equal((await simpleParser(w.smtp.messages[0]!.raw)).subject, subject)
})

test('relay MIME: mailboxHeader writes any display name as one 7-bit header that mailparser reads back as the same mailbox', async () => {
  await fc.assert(
    // Names reach it trimmed (from parseMailbox or mailparser), as they do here.
    fc.asyncProperty(text({ maxLength: 60, breaks: false }).map((n) => n.trim()), fc.constantFrom(ALICE, 'büro@contoso.com', 'x.y+tag@sub.fabrikam.com'), async (name, address) => {
      const header = mailboxHeader({ name, address })
      assert.doesNotMatch(header, /[\r\n]/)
      // An internationalised address (RFC 6531) is UTF-8 by nature; everything else is 7-bit.
      if (/^[\x20-\x7e]*$/.test(address)) assert.match(header, /^[\x20-\x7e]*$/)
      const parsed = await simpleParser(Buffer.from(`From: ${header}\r\nSubject: x\r\n\r\nbody\r\n`))
      assert.deepEqual({ name: firstName(parsed.from)?.name ?? '', address: firstName(parsed.from)?.address }, { name, address })
      assert.equal(parsed.subject, 'x', 'the field did not swallow the next one')
    }),
    { numRuns: 500 },
  )
})
