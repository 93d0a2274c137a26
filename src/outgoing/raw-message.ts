/**
 * A message that arrives as raw MIME (the SMTP relay): read its header block, and edit only the fields
 * Mailbridge owns (From rewriting, Reply-To, Bcc, Message-ID, Date). The body is never touched, so signatures
 * and MIME structure survive byte for byte.
 * @see https://www.rfc-editor.org/rfc/rfc5322#section-2.2 (header fields, folding)
 */
import { simpleParser, type AddressObject } from 'mailparser'
import { encodeWord } from 'nodemailer/lib/mime-funcs'
import { domainOf, formatMailbox, isEmailAddress, looksEncoded, type Mailbox } from '../mail-address.ts'

export interface HeaderField {
  /** The field name as written. */
  name: string
  /** The whole field as it arrived, folded lines included, without the final line break (latin1, so bytes round-trip). */
  text: string
}

export interface SplitMessage {
  fields: HeaderField[]
  /** Everything from the blank line that ends the header block, as it arrived. */
  rest: Buffer
}

/** Split at the first empty line (RFC 5322 §2.1); a line starting with white space continues a field (§2.2.3). */
export function splitMessage(raw: Buffer): SplitMessage {
  const head = raw.subarray(0, headerEnd(raw)).toString('latin1')
  const fields: HeaderField[] = []
  for (const line of head.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && fields.length) fields.at(-1)!.text += `\r\n${line}`
    else if (line) fields.push({ name: line.slice(0, Math.max(0, line.indexOf(':'))).trim(), text: line })
  }
  return { fields, rest: raw.subarray(head.length) }
}

/** Where the empty line after the header block starts (its CR or LF), found in the bytes: a 40 MB message is not copied into a string for it. */
function headerEnd(raw: Buffer): number {
  for (let nl = raw.indexOf(0x0a); nl >= 0; nl = raw.indexOf(0x0a, nl + 1)) {
    const blank = raw[nl + 1] === 0x0a || (raw[nl + 1] === 0x0d && raw[nl + 2] === 0x0a)
    if (blank) return nl > 0 && raw[nl - 1] === 0x0d ? nl - 1 : nl
  }
  return raw.length
}

export function joinMessage(m: SplitMessage): Buffer {
  const head = m.fields.map((f) => f.text).join('\r\n')
  // A message without a body still needs the line break after its last field.
  return Buffer.concat([Buffer.from(head, 'latin1'), m.rest.length ? m.rest : Buffer.from('\r\n')])
}

const named = (m: SplitMessage, name: string) => m.fields.filter((f) => f.name.toLowerCase() === name.toLowerCase())

export const hasField = (m: SplitMessage, name: string): boolean => named(m, name).length > 0

/** Drop every field of these names. */
export function withoutFields(m: SplitMessage, ...names: string[]): SplitMessage {
  const drop = new Set(names.map((n) => n.toLowerCase()))
  return { fields: m.fields.filter((f) => !drop.has(f.name.toLowerCase())), rest: m.rest }
}

/** Replace every field of this name by one with this (ASCII) value, at the first one's place or on top. */
export function setField(m: SplitMessage, name: string, value: string): SplitMessage {
  const field = { name, text: `${name}: ${value}` }
  const at = m.fields.findIndex((f) => f.name.toLowerCase() === name.toLowerCase())
  const rest = withoutFields(m, name).fields
  return { fields: at < 0 ? [field, ...rest] : [...rest.slice(0, at), field, ...rest.slice(at)], rest: m.rest }
}

/** A mailbox as an ASCII header value: a non-ASCII display name (or an encoded-word lookalike) becomes an encoded-word (RFC 2047 §5). */
export function mailboxHeader(m: Mailbox): string {
  // eslint-disable-next-line no-control-regex
  return /^[\x20-\x7e]*$/.test(m.name) && !looksEncoded(m.name) ? formatMailbox(m) : `${encodeWord(m.name, 'Q', 52)} <${m.address}>`
}

/** What the queue needs from a relayed message; `raw` already has Bcc removed and a Message-ID and Date. */
export interface RawMail {
  raw: Buffer
  from: Mailbox
  replyTo?: Mailbox
  subject: string
  messageId: string
  /** The envelope (RCPT TO) split by the header the address appears in; the rest are Bcc (never a header). */
  to: string[]
  cc: string[]
  bcc: string[]
}

const addresses = (a: AddressObject | AddressObject[] | undefined): string[] =>
  (Array.isArray(a) ? a : a ? [a] : []).flatMap((o) => o.value.flatMap((v) => (v.group ? v.group : [v]))).map((v) => (v.address ?? '').toLowerCase())

const MESSAGE_ID = /^<[^<>\s@]+@[^<>\s@]+>$/

/**
 * Read a relayed message. The envelope decides who receives it: RCPT TO addresses found in To or Cc are shown
 * as such, the others are Bcc. A Bcc header would tell every recipient who else got it, so it is dropped
 * (RFC 5322 §3.6.3). An application's Message-ID is kept (receivers thread and deduplicate by it); a missing
 * one, and a missing Date or From, are added, as a submission server may (RFC 6409 §8).
 */
export async function readRawMail(raw: Buffer, envelope: { from: string; to: string[] }, newMessageId: (domain: string) => string): Promise<RawMail> {
  let m = withoutFields(splitMessage(raw), 'Bcc')
  // Only the header block is parsed: decoding the body is the receiver's job, not the relay's.
  const head = await simpleParser(joinMessage({ fields: m.fields, rest: Buffer.alloc(0) }), { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true })
  const first = head.from?.value.find((v) => v.address && isEmailAddress(v.address))
  const from: Mailbox = first ? { name: first.name ?? '', address: first.address! } : { name: '', address: envelope.from }
  if (!first) m = setField(m, 'From', mailboxHeader(from))
  const reply = head.replyTo?.value.find((v) => v.address && isEmailAddress(v.address))
  let messageId = head.messageId && head.messageId.length <= 300 && MESSAGE_ID.test(head.messageId) ? head.messageId : undefined
  if (!messageId) {
    messageId = newMessageId(domainOf(from.address))
    m = setField(m, 'Message-ID', messageId)
  }
  if (!hasField(m, 'Date')) m = setField(m, 'Date', new Date().toUTCString().replace('GMT', '+0000'))
  const inTo = new Set(addresses(head.to))
  const inCc = new Set(addresses(head.cc))
  const rcpt = envelope.to
  return {
    raw: joinMessage(m),
    from,
    replyTo: reply ? { name: reply.name ?? '', address: reply.address! } : undefined,
    subject: head.subject ?? '',
    messageId,
    to: rcpt.filter((a) => inTo.has(a.toLowerCase())),
    cc: rcpt.filter((a) => !inTo.has(a.toLowerCase()) && inCc.has(a.toLowerCase())),
    bcc: rcpt.filter((a) => !inTo.has(a.toLowerCase()) && !inCc.has(a.toLowerCase())),
  }
}

/**
 * From rewriting on a raw message (see selection.ts `rewriteFrom`): the From field is replaced only when the
 * address changes, and Reply-To is added only when the application gave none.
 */
export function rewriteRawHeaders(raw: Buffer, original: Mailbox, rewritten: { from: Mailbox; replyTo?: Mailbox }): Buffer {
  if (rewritten.from.address.toLowerCase() === original.address.toLowerCase()) return raw
  let m = setField(splitMessage(raw), 'From', mailboxHeader(rewritten.from))
  if (rewritten.replyTo && !hasField(m, 'Reply-To')) m = setField(m, 'Reply-To', mailboxHeader(rewritten.replyTo))
  return joinMessage(m)
}
