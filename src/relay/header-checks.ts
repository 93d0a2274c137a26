/**
 * What the relay checks in a message's header block before it queues it: the line breaks, the originator
 * fields, and every sender address in them against the relay user's allowed_from.
 * @see https://www.rfc-editor.org/rfc/rfc5322#section-3.6 (From and Sender at most once each)
 * @see https://www.rfc-editor.org/rfc/rfc5322#section-2.2 (a field ends with CRLF)
 */
import addressparser from 'nodemailer/lib/addressparser'
import { isEmailAddress } from '../mail-address.ts'
import { splitMessage, type HeaderField } from '../outgoing/raw-message.ts'
import { senderAllowed, type RelayUser } from './users.ts'

/** Why a message is refused: the reply text (with its enhanced code) and a short reason for metrics. */
export interface HeaderRefusal {
  code: 550 | 554
  text: string
  reason: 'bare_cr' | 'duplicate_field' | 'sender_not_allowed'
}

const ORIGINATORS = ['From', 'Sender'] as const

/**
 * Bare LF line ends (common from Unix tools and old devices) become CRLF in the header block: smtp-server ends
 * DATA only on CRLF.CRLF, and the relay reads fields split at either, so upstream must see those same fields.
 */
export function normaliseHeaderLineEnds(raw: Buffer): Buffer {
  const m = splitMessage(raw)
  // `rest` starts with the last field's line end, then the empty line: CRLF or a bare LF each.
  const eol = (at: number) => (m.rest[at] === 0x0d && m.rest[at + 1] === 0x0a ? 2 : m.rest[at] === 0x0a ? 1 : 0)
  const first = eol(0)
  const second = eol(first)
  const head = raw.subarray(0, raw.length - m.rest.length).toString('latin1')
  if (first !== 1 && second !== 1 && !/(^|[^\r])\n/.test(head)) return raw
  return Buffer.concat([Buffer.from(`${m.fields.map((f) => f.text).join('\r\n')}\r\n\r\n`, 'latin1'), m.rest.subarray(first + second)])
}

const unfolded = (f: HeaderField) => f.text.slice(f.text.indexOf(':') + 1).replace(/\r\n(?=[ \t])/g, '')

/** Every address a From or Sender field names, groups opened up; '' for an entry that names none. */
function originatorAddresses(field: HeaderField): string[] {
  return addressparser(unfolded(field), { flatten: true }).map((a) => a.address ?? '')
}

/** The first reason to refuse this header block, or undefined when it may be queued. */
export function checkHeaders(raw: Buffer, user: Pick<RelayUser, 'username' | 'allowed_from'>): HeaderRefusal | undefined {
  const { fields } = splitMessage(raw)
  // A CR that ends no line: upstream may read it as a line break and find a field (a Bcc) the relay never saw.
  const bare = fields.find((f) => /\r(?!\n)/.test(f.text))
  if (bare) {
    return { code: 554, reason: 'bare_cr', text: `5.6.0 The header block has a bare CR (in the ${bare.name || 'unnamed'} field): end every line with CRLF` }
  }
  for (const name of ORIGINATORS) {
    const n = fields.filter((f) => f.name.toLowerCase() === name.toLowerCase()).length
    if (n > 1) return { code: 554, reason: 'duplicate_field', text: `5.6.0 The message has ${n} ${name} fields; RFC 5322 §3.6 allows one` }
  }
  if (user.allowed_from.length === 0) return undefined
  for (const field of fields.filter((f) => ORIGINATORS.some((n) => n.toLowerCase() === f.name.toLowerCase()))) {
    const name = ORIGINATORS.find((n) => n.toLowerCase() === field.name.toLowerCase())!
    for (const address of originatorAddresses(field)) {
      if (isEmailAddress(address) && senderAllowed(user, address)) continue
      const shown = address || JSON.stringify(unfolded(field).trim().slice(0, 100))
      return { code: 550, reason: 'sender_not_allowed', text: `5.7.1 Relay user ${user.username} may not send as ${shown} (the ${name} header); allowed: ${user.allowed_from.join(', ')}` }
    }
  }
  return undefined
}
