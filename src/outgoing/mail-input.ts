import { MailbridgeError, invalid } from '../errors.ts'
import { parseMailbox, type Mailbox } from '../mail-address.ts'
import { base64DecodedSize } from './base64.ts'
import type { SendMailBody } from './mail-model.ts'
import { tooLargeMessage } from './mail-size.ts'

/** What a checked send request holds: parsed mailboxes and decoded sizes. */
export interface MailInput {
  from?: Mailbox
  to: Mailbox[]
  cc: Mailbox[]
  bcc: Mailbox[]
  replyTo?: Mailbox
  subject: string
  content: MailContent
  size: number
  serverId?: string
  idempotencyKey?: string
}

export interface MailContent {
  text?: string
  html?: string
  headers: Record<string, string>
  attachments: Array<{ filename: string; content_type: string; content_base64: string }>
}

/** A mail that arrived as raw MIME (the SMTP relay): sent as is, to the envelope it came with. */
export interface RawContent {
  /** base64 of the message, Bcc removed, Message-ID and Date present. */
  raw: string
  envelope_to: string[]
}

/** What the `content` column holds: composed by Mailbridge (the API) or raw (the relay). */
export type StoredContent = MailContent | RawContent
export const isRaw = (c: StoredContent): c is RawContent => 'raw' in c

/** Headers Mailbridge writes itself; an application may not set them through `headers`. */
const RESERVED = new Set([
  'from', 'to', 'cc', 'bcc', 'reply-to', 'subject', 'message-id', 'date', 'mime-version', 'content-type',
  'content-transfer-encoding', 'content-disposition', 'sender', 'return-path', 'received', 'dkim-signature',
])
const FIELD_NAME = /^[!-9;-~]{1,76}$/ // RFC 5322 §2.2: printable ASCII except colon
const MEDIA_TYPE = /^[A-Za-z0-9][\w!#$&^.+-]{0,126}\/[A-Za-z0-9][\w!#$&^.+-]{0,126}(\s*;\s*[\w!#$&^.+-]+=("[^"\r\n]*"|[\w!#$&^.+-]+))*$/
const CONTROL = /[\u0000-\u001f\u007f]/

function mailbox(field: string, value: string): Mailbox {
  const m = parseMailbox(value)
  if (!m) throw invalid(field, `${field} must be one address such as alice@contoso.com or "Alice <alice@contoso.com>", got ${JSON.stringify(value.slice(0, 100))}.`)
  return m
}

/** Validate a send request (design.md §6; RFC 5322 for addresses and header fields). */
export function checkMail(body: SendMailBody, maxBytes: number): MailInput {
  const list = (field: string, values: string[] | undefined) => (values ?? []).map((v, i) => mailbox(`${field}[${i}]`, v))
  const to = list('to', body.to)
  const cc = list('cc', body.cc)
  const bcc = list('bcc', body.bcc)
  if (to.length + cc.length + bcc.length === 0) throw invalid('to', 'Give at least one recipient in to, cc or bcc.')
  if (to.length + cc.length + bcc.length > 500) throw invalid('to', 'A mail has at most 500 recipients (the Exchange Online limit).')
  if (/[\r\n]/.test(body.subject)) throw invalid('subject', 'The subject may not contain line breaks.')
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(body.headers ?? {})) {
    if (!FIELD_NAME.test(name)) throw invalid(`headers.${name}`, `"${name}" is not a valid header name (printable ASCII, no colon or space).`)
    if (RESERVED.has(name.toLowerCase())) throw invalid(`headers.${name}`, `${name} is set by Mailbridge; use the matching field of the request instead.`)
    if (/[\r\n\0]/.test(value)) throw invalid(`headers.${name}`, `The value of ${name} may not contain line breaks.`)
    headers[name] = value
  }
  let size = Buffer.byteLength(body.subject) + Buffer.byteLength(body.text ?? '') + Buffer.byteLength(body.html ?? '')
  const attachments = (body.attachments ?? []).map((a, i) => {
    const field = `attachments[${i}]`
    if (/[/\\]/.test(a.filename) || a.filename === '.' || a.filename === '..' || CONTROL.test(a.filename)) {
      throw invalid(`${field}.filename`, `The filename must be a plain name without folders or control characters, got ${JSON.stringify(a.filename.slice(0, 100))}.`)
    }
    if (!MEDIA_TYPE.test(a.content_type)) throw invalid(`${field}.content_type`, `content_type must be a media type such as application/pdf, got ${JSON.stringify(a.content_type.slice(0, 100))}.`)
    const bytes = base64DecodedSize(a.content_base64)
    if (bytes === undefined) throw invalid(`${field}.content_base64`, 'content_base64 is not valid base64 (A-Z, a-z, 0-9, + and /, padded with = to a multiple of 4 characters).')
    size += bytes
    // Kept as sent: line breaks inside base64 are skipped when it is decoded, and stripping them would copy it.
    return { filename: a.filename, content_type: a.content_type, content_base64: a.content_base64 }
  })
  if (size > maxBytes) {
    throw new MailbridgeError('too_large', { field: 'attachments', message: tooLargeMessage('mail', size, maxBytes, 'MAILBRIDGE_MAX_MAIL_BYTES') })
  }
  return {
    from: body.from === undefined ? undefined : mailbox('from', body.from),
    to,
    cc,
    bcc,
    replyTo: body.reply_to === undefined ? undefined : mailbox('reply_to', body.reply_to),
    subject: body.subject,
    content: { text: body.text, html: body.html, headers, attachments },
    size,
    serverId: body.server_id,
    idempotencyKey: body.idempotency_key,
  }
}
