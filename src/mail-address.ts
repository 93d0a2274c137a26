import { encodeWord } from 'nodemailer/lib/mime-funcs'

/**
 * One e-mail address (RFC 5322 addr-spec, dot-atom local part, with UTF-8 allowed per RFC 6531), without a
 * display name. Deliberately strict: an address that reaches an SMTP envelope must need no quoting.
 */
const LOCAL = /^[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+(\.[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+)*$/u
const LABEL = /^[\p{L}\p{N}]([\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?$/u

export function isEmailAddress(value: string): boolean {
  if (value.length > 254 || /[\s<>()[\]\\,;:"]/.test(value)) return false
  const at = value.lastIndexOf('@')
  if (at < 1 || at === value.length - 1) return false
  const local = value.slice(0, at)
  const domain = value.slice(at + 1)
  if (local.length > 64 || !LOCAL.test(local)) return false
  const labels = domain.split('.')
  return labels.length >= 2 && labels.every((l) => LABEL.test(l)) && !/^\d+$/.test(labels.at(-1)!)
}

export const domainOf = (address: string): string => address.slice(address.lastIndexOf('@') + 1).toLowerCase()

/** A mailbox (RFC 5322 §3.4): an optional display name and one address. */
export interface Mailbox {
  name: string
  address: string
}

/**
 * Parse `alice@contoso.com`, `Alice <alice@contoso.com>` or `"Smith, Alice" <alice@contoso.com>`. Returns
 * undefined for anything else, including group syntax and several addresses: one field, one mailbox.
 */
export function parseMailbox(value: string): Mailbox | undefined {
  if (value.length > 1000 || /[\r\n\0]/.test(value)) return undefined
  const text = value.trim()
  if (isEmailAddress(text)) return { name: '', address: text }
  const m = /^(?:"((?:[^"\\]|\\.)*)"|([^"<>]*?))\s*<([^<>\s]+)>$/u.exec(text)
  if (!m) return undefined
  const address = m[3]!
  if (!isEmailAddress(address)) return undefined
  const name = (m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? '')).trim()
  // An unquoted name may not hold specials that would change the field's meaning (RFC 5322 §3.2.3).
  if (m[1] === undefined && /[,;:@\\]/.test(name)) return undefined
  return { name, address }
}

/**
 * Text holding something shaped like an RFC 2047 encoded-word ("=?UTF-8?Q?hi?="): mail readers decode it even
 * inside quotes, so a name or subject that merely contains one must be encoded itself to arrive unchanged.
 */
export const looksEncoded = (text: string): boolean => /=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=/.test(text)

/** Nodemailer's address object: it encodes non-ASCII names (RFC 2047) and quotes as needed; lookalikes are encoded here. */
export const toNodemailer = (m: Mailbox): { name: string; address: string } => ({ name: looksEncoded(m.name) ? encodeWord(m.name, 'Q', 52) : m.name, address: m.address })

export function formatMailbox(m: Mailbox): string {
  if (!m.name) return m.address
  return /^[\p{L}\p{N} !#$%&'*+/=?^_`{|}~.-]+$/u.test(m.name) ? `${m.name} <${m.address}>` : `"${m.name.replace(/(["\\])/g, '\\$1')}" <${m.address}>`
}
