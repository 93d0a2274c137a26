import { type Fields, first, readFields } from './fields.ts'
import { recipientStatus } from './status-code.ts'

/** RFC 3464 §2.3.3: what the reporting MTA did with the message for this recipient. */
export type Action = 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded'

export interface RecipientReport {
  /** The address the report is about: Final-Recipient, else Original-Recipient. */
  recipient: string
  /** The address as the sender gave it (Original-Recipient, RFC 3464 §2.3.1), when it differs. */
  original_recipient: string | null
  status: string | null
  action: Action
  diagnostic: string | null
  remote_mta: string | null
}

export interface DeliveryStatus {
  reporting_mta: string | null
  /** Original-Envelope-Id (RFC 3464 §2.2.1): the ENVID the sender gave at MAIL FROM (RFC 3461 §4.4). */
  envelope_id: string | null
  recipients: RecipientReport[]
}

const ACTIONS: readonly Action[] = ['failed', 'delayed', 'delivered', 'relayed', 'expanded']

/**
 * RFC 3464 §2.3.3 names five actions; a few MTAs write their own word ("failure", "delay"). An unknown or missing
 * action follows the status class (RFC 3463 §2: 2 success, 4 transient, 5 permanent).
 */
export function actionOf(value: string | undefined, status: string | null): Action {
  const word = (value ?? '').trim().toLowerCase()
  const known = ACTIONS.find((a) => word.startsWith(a) || (word.length >= 4 && a.startsWith(word.slice(0, 4))))
  if (known) return known
  if (status?.startsWith('2')) return 'delivered'
  if (status?.startsWith('4')) return 'delayed'
  return 'failed'
}

/**
 * `\x{HEX}` escapes of RFC 6533 §3 (utf-8-addr-xtext, embedded-unicode-char) turned back into characters; the
 * unitext form is UTF-8 as it is.
 * @see https://www.rfc-editor.org/rfc/rfc6533#section-3
 */
const unescapeUtf8Address = (s: string) => s.replace(/\\x\{([0-9A-Fa-f]{1,6})\}/g, (_, hex: string) => String.fromCodePoint(parseInt(hex, 16)))

/**
 * xtext (RFC 3461 §4): `+HH` for bytes outside printable ASCII, `+` and `=`. Original-Recipient carries the ORCPT
 * "as given" (RFC 3464 §2.3.1), which some MTAs copy still encoded.
 */
const unescapeXtext = (s: string) => s.replace(/\+([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))

/**
 * An address-type field, `address-type ";" generic-address` (RFC 3464 §2.3.1–2). `rfc822` addresses are RFC 5321
 * mailboxes; `utf-8` ones (RFC 6533 §3) may hold escaped non-ASCII characters. Angle brackets and comments that
 * some MTAs add are dropped. A value without a type is taken as an address when it looks like one.
 */
export function addressOf(value: string | undefined, xtext = false): string | null {
  if (!value) return null
  const semi = value.indexOf(';')
  const type = semi >= 0 ? value.slice(0, semi).trim().toLowerCase() : 'rfc822'
  let address = (semi >= 0 ? value.slice(semi + 1) : value).trim()
  address = address.replace(/\s*\(.*\)\s*$/, '').replace(/^<(.*)>$/, '$1').trim()
  if (type === 'utf-8') address = unescapeUtf8Address(address)
  else if (xtext) address = unescapeXtext(address)
  return address || null
}

/** `type; text` fields (Remote-MTA, Diagnostic-Code, RFC 3464 §2.3.5–6): the text, without its type. */
export function typedText(value: string | undefined): string | null {
  if (!value) return null
  const m = /^\s*[A-Za-z0-9-]+\s*;\s*([\s\S]*)$/.exec(value)
  const text = (m ? m[1]! : value).replace(/\s+/g, ' ').trim()
  return text || null
}

const isRecipientBlock = (f: Fields) => f.has('final-recipient') || f.has('original-recipient')

/**
 * A message/delivery-status body (RFC 3464 §2.1): the per-message fields, then one group of per-recipient fields
 * each, groups separated by empty lines. Real reports sometimes lack an empty line or repeat the per-message
 * group, so a group is a recipient's when it names one and the per-message fields are read from any group.
 * The `message/global-delivery-status` of RFC 6533 §6 has the same fields in UTF-8.
 * @see https://www.rfc-editor.org/rfc/rfc3464#section-2
 */
export function readDeliveryStatus(text: string): DeliveryStatus {
  const groups = text.split(/\r?\n[ \t]*\r?\n/).map(readFields).filter((f) => f.size > 0)
  const perMessage = (name: string) => groups.map((g) => first(g, name)).find((v) => v !== undefined)
  const recipients: RecipientReport[] = []
  for (const g of groups.filter(isRecipientBlock)) {
    const final = addressOf(first(g, 'final-recipient'))
    const original = addressOf(first(g, 'original-recipient'), true)
    const recipient = final ?? original
    if (!recipient) continue
    const diagnostic = typedText(first(g, 'diagnostic-code'))
    const status = recipientStatus(first(g, 'status') ?? null, diagnostic)
    recipients.push({
      recipient,
      original_recipient: original && original.toLowerCase() !== recipient.toLowerCase() ? original : null,
      status,
      action: actionOf(first(g, 'action'), status),
      diagnostic,
      remote_mta: typedText(first(g, 'remote-mta')),
    })
  }
  return { reporting_mta: typedText(perMessage('reporting-mta')), envelope_id: perMessage('original-envelope-id')?.trim() || null, recipients }
}
