/**
 * RFC 3463 enhanced mail status codes: `class.subject.detail`, class 2 (success), 4 (persistent transient
 * failure) or 5 (permanent failure), subject and detail of one to three digits (§2).
 * @see https://www.rfc-editor.org/rfc/rfc3463#section-2
 */
const STATUS = /(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)/g

/** Every enhanced status code in a text, in order. */
export const statusCodes = (text: string): string[] => [...text.matchAll(STATUS)].map((m) => `${m[1]}.${Number(m[2])}.${Number(m[3])}`)

/**
 * Enhanced codes that stand where RFC 2034 §4 puts them, first in the text of an SMTP reply (`550 5.7.1 …`,
 * `550-'5.7.1 …`): the receiving server's own words, ahead of codes a relay wrote around them.
 * @see https://www.rfc-editor.org/rfc/rfc2034#section-4
 */
const repliedCodes = (text: string): string[] => [...text.matchAll(/(?<!\d)[245]\d\d[ -]['"]?([245]\.\d{1,3}\.\d{1,3})(?![\d.]*\d)/g)].flatMap((m) => statusCodes(m[1]!))

/** `X.0.0` is "other undefined status" (RFC 3463 §3.1): it says the class and nothing else. */
const undefinedStatus = (s: string) => s.endsWith('.0.0')

/**
 * An SMTP reply code at the start of a reply line (RFC 5321 §4.2: three digits, then a space, a hyphen or the end).
 * The text may carry a reply quoted by an MTA ("host x said: 550 …"), so any such code counts, first one wins.
 * @see https://www.rfc-editor.org/rfc/rfc5321#section-4.2
 */
export function replyCode(text: string): string | null {
  return /(?:^|[\s:(\[])([245][0-5]\d)(?=[ \-]|$)/m.exec(text)?.[1] ?? null
}

/**
 * The status of one recipient: the report's own code when it says more than its class, else the most precise
 * code in the diagnostic text of the same class (a receiving server's `550 5.1.1` beside a relay's generic
 * `5.0.0`), else the class of the SMTP reply code as `X.0.0` (RFC 3463 §2: the class agrees with the reply's
 * first digit), else null.
 */
export function recipientStatus(reported: string | null, diagnostic: string | null): string | null {
  const own = reported ? (statusCodes(reported)[0] ?? null) : null
  if (own && !undefinedStatus(own)) return own
  const found = diagnostic ? [...repliedCodes(diagnostic), ...statusCodes(diagnostic)] : []
  const sameClass = found.filter((s) => !own || s[0] === own[0])
  const precise = sameClass.find((s) => !undefinedStatus(s))
  if (precise) return precise
  if (own) return own
  if (sameClass[0]) return sameClass[0]
  const reply = diagnostic ? replyCode(diagnostic) : null
  return reply ? `${reply[0]}.0.0` : null
}
