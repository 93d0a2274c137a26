/**
 * How large a mail may be, counted the way an application thinks of it: the decoded bytes of its text and
 * attachments (MAILBRIDGE_MAX_MAIL_BYTES). On the wire the same mail is larger, and every limit on its way (the
 * API's JSON body, the relay's SIZE) must leave room for that, or a mail under the limit is refused.
 */

const MIB = 1024 * 1024

/**
 * The MIME size of a mail of `bytes`: base64 is 4/3 of the bytes plus a CRLF per 76 characters (RFC 2045 §6.8),
 * with room for the header block and the structure around the parts.
 */
export const mimeSizeOf = (bytes: number): number => Math.ceil((bytes * 4 * 78) / (3 * 76)) + 64 * 1024

/**
 * The JSON body of a mail of `bytes`: its attachments' base64, which an application may have wrapped at 76
 * characters with escaped line breaks ("\r\n" is 4 characters in JSON), and 1 MiB for the other fields.
 */
export const jsonSizeOf = (bytes: number): number => Math.ceil((bytes * 4 * 80) / (3 * 76)) + MIB

/** Sizes as people read them: "80 MB", "3.4 MB" (binary megabytes, as the limit's default of 35 MB is). */
export function megabytes(bytes: number): string {
  const mb = bytes / MIB
  return `${mb >= 10 || Number.isInteger(mb) ? Math.round(mb) : Math.round(mb * 10) / 10} MB`
}

/** `The mail is 80 MB; the limit is 35 MB (MAILBRIDGE_MAX_MAIL_BYTES).` — `bytes` is unknown for a body still arriving. */
export function tooLargeMessage(what: string, bytes: number | undefined, limit: number, setting?: string): string {
  const size = bytes === undefined ? `over ${megabytes(limit)}` : megabytes(bytes)
  return `The ${what} is ${size}; the limit is ${megabytes(limit)}${setting ? ` (${setting})` : ''}.`
}
