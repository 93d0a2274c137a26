import { randomBytes } from 'node:crypto'

let last = 0
let seq = 0

/**
 * Time-ordered ids (48-bit millisecond clock, a 16-bit sequence within the millisecond, 64 random bits, as
 * 32 hex digits): sorting by id is sorting by creation within one process, so lists page by id.
 */
export function newId(): string {
  const now = Date.now()
  seq = now === last ? (seq + 1) & 0xffff : 0
  last = now
  return now.toString(16).padStart(12, '0') + seq.toString(16).padStart(4, '0') + randomBytes(8).toString('hex')
}
