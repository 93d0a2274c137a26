import { simpleParser, type Attachment, type ParsedMail, type SimpleParserOptions } from 'mailparser'
import { readSesNotification } from './amazon-ses.ts'
import { isAutoReply } from './auto-reply.ts'
import { readDeliveryStatus, type RecipientReport } from './delivery-status.ts'
import { type Fields, contentType, first, headerSection, readFields } from './fields.ts'
import { type Original, originalOf, returnedFields } from './original.ts'
import { readTextBounce } from './text-formats.ts'

export type { Action, RecipientReport } from './delivery-status.ts'
export type { Original } from './original.ts'

/**
 * How a report was read: `dsn` from its RFC 3464 delivery-status fields, `ndr` from the text of an Exchange or
 * Office 365 non-delivery report, `text` from another MTA's text, `ses` from an Amazon SES notification.
 */
export type BounceKind = 'dsn' | 'ndr' | 'text' | 'ses'

export interface Bounce {
  kind: BounceKind
  /** Whose format the text was: `rfc3464`, `exchange`, `exim`, `qmail`, `postfix`, `sendmail`, `gmail`, `amazonses`. */
  format: string
  reporting_mta: string | null
  recipients: RecipientReport[]
  original: Original
}

export interface Recognition {
  bounce: Bounce | null
  /** An automatic reply (RFC 3834). A bounce is reported as `bounce`, never also as an automatic reply. */
  auto_reply: boolean
}

/** Parts that hold delivery-status fields: RFC 3464 §2.1, and their UTF-8 form, RFC 6533 §6. */
const STATUS_TYPES = new Set(['message/delivery-status', 'message/global-delivery-status'])
/** Parts that return the message or its header section: RFC 3464 §2, RFC 6522 §4 (text/rfc822-headers), RFC 6533 §6. */
const RETURNED_TYPES = new Set(['message/rfc822', 'message/global', 'text/rfc822-headers', 'message/global-headers'])

/** Local parts that MTAs send reports from (RFC 5321 §4.5.1 postmaster; MAILER-DAEMON by long custom). */
const NOTIFIER = /^(mailer[-_]?daemon|mail[-_]?daemon|postmaster|mail[-_]delivery[-_]?(system|subsystem)?)(@|$)/i

/** The address in a From or Sender field value, without display name. */
const addressIn = (value: string | undefined) => (/<([^<>]*)>/.exec(value ?? '')?.[1] ?? value ?? '').replace(/\(.*\)/, '').trim()

/**
 * Whether the header fields say that an MTA, not a person, wrote the message: the null reverse path that
 * RFC 5321 §4.5.5 requires of every delivery report, a notifier sender, Exim's X-Failed-Recipients,
 * Exchange's X-MS-Exchange-Message-Is-Ndr and X-MS-Embedded-Report, Amazon SNS's sender. Text bounces are read
 * only from such messages, so a person's mail quoting a bounce is never one.
 * @see https://www.rfc-editor.org/rfc/rfc5321#section-4.5.5
 */
export function fromMailSystem(h: Fields): boolean {
  const returnPath = first(h, 'return-path')?.trim() ?? ''
  if (/^<\s*(mailer-daemon)?\s*>$/i.test(returnPath)) return true
  if (NOTIFIER.test(addressIn(first(h, 'from'))) || NOTIFIER.test(addressIn(first(h, 'sender')))) return true
  if (addressIn(first(h, 'from')).toLowerCase() === 'no-reply@sns.amazonaws.com') return true
  return h.has('x-failed-recipients') || h.has('x-ms-exchange-message-is-ndr') || h.has('x-ms-embedded-report')
}

/** A multipart/report (RFC 6522 §3) whose report-type is delivery-status (RFC 3464 §2) or its UTF-8 form. */
const isReport = (h: Fields) => {
  const ct = contentType(first(h, 'content-type'))
  return ct.type === 'multipart/report' && /delivery-status/i.test(ct.params['report-type'] ?? '')
}

// The returned message stays one opaque part (ignoreEmbedded): what it holds, an old bounce among others, is never
// read as this message's own. Delivery-status parts come as attachments to be read as fields (keepDeliveryStatus).
const OPTIONS = { keepDeliveryStatus: true, ignoreEmbedded: true, skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true, skipTextLinks: true } as SimpleParserOptions

const partText = (a: Attachment) => a.content.toString('utf8')

/**
 * Recognise a delivery report or an automatic reply in one raw message. The header section decides first, so an
 * ordinary message costs a header read: only a multipart/report or a message from a mail system is parsed.
 */
export async function recognise(raw: Buffer): Promise<Recognition> {
  const head = readFields(headerSection(raw))
  const auto = isAutoReply(head)
  const system = fromMailSystem(head)
  if (!system && !isReport(head)) return { bounce: null, auto_reply: auto }
  const parsed = await simpleParser(raw, OPTIONS).catch(() => null)
  const bounce = parsed ? readBounce(head, parsed, system) : null
  return { bounce, auto_reply: bounce ? false : auto }
}

/** The report a parsed message carries: its delivery-status part, else (from a mail system only) its text. */
export function readBounce(head: Fields, parsed: ParsedMail, system: boolean): Bounce | null {
  const returnedPart = parsed.attachments.find((a) => RETURNED_TYPES.has(a.contentType.toLowerCase()))
  const returned = returnedPart ? returnedFields(partText(returnedPart)) : null
  const statusPart = parsed.attachments.find((a) => STATUS_TYPES.has(a.contentType.toLowerCase()))
  // A report that says it is one (multipart/report, RFC 6522) but whose part delimiters are damaged arrives as one
  // text: its delivery-status fields are still there to read.
  const statusText = statusPart ? partText(statusPart) : isReport(head) ? (parsed.text ?? '') : null
  if (statusText !== null) {
    const status = readDeliveryStatus(statusText)
    if (status.recipients.length > 0) {
      return { kind: 'dsn', format: 'rfc3464', reporting_mta: status.reporting_mta, recipients: status.recipients, original: originalOf(head, returned, status.envelope_id) }
    }
  }
  if (!system) return null
  const text = parsed.text ?? ''
  const ses = readSesNotification(text)
  if (ses && ses.recipients.length > 0) {
    const original = originalOf(head, null, null)
    return { kind: 'ses', format: 'amazonses', reporting_mta: ses.reporting_mta, recipients: ses.recipients, original: { ...original, message_id: ses.message_id ?? original.message_id } }
  }
  const found = readTextBounce(text)
  if (!found) return null
  const copy = returned ?? (found.copy ? returnedFields(found.copy) : null)
  return { kind: found.format === 'exchange' ? 'ndr' : 'text', format: found.format, reporting_mta: null, recipients: found.recipients, original: originalOf(head, copy, null) }
}
