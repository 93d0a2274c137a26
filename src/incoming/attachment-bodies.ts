import { randomBytes } from 'node:crypto'
import libmime from 'libmime'

/**
 * mailparser splits every line of every attachment and decodes it only to report its size: on a mailbox with
 * files, most of the cost of a fetch. Those bytes are stored in the raw message anyway, so mailparser is given a
 * copy without them: the body of each base64 attachment is cut out, and its part marked with a header that names
 * it; its decoded size is counted here, over the bytes. What mailparser then reports for that part must be an
 * attachment that carries the marker and has no content; anything else (a structure read differently, a marker it
 * did not see) makes parse.ts parse the original instead, so the result never depends on this scanner being right.
 *
 * Only bodies that cannot change how mailparser reads the rest are cut: whole lines without a "-", so none of them
 * can be a boundary delimiter ("--boundary") of any multipart, and with base64 padding at the end only.
 */

/** Names this process's markers: a message cannot carry one of its own to pass for a cut part. */
const TOKEN = randomBytes(8).toString('hex')
export const MARKER_HEADER = 'x-mailbridge-cut'
/** Bodies shorter than this are left to mailparser: cutting them saves less than it costs. */
const MIN_CUT = 2048
const MAX_DEPTH = 32
const LF = 0x0a
const CR = 0x0d
const DASH = 0x2d

export interface CutCopy {
  /** The message with the cut bodies left out and their parts marked. */
  raw: Buffer
  /** Decoded size of each cut body, by the index its marker names. */
  sizes: number[]
}

interface Cut {
  /** Where the part's header block ends (the marker goes there). */
  headEnd: number
  bodyStart: number
  bodyEnd: number
  size: number
}

/** The index a marker value names, or null when it is not one of this process's markers. */
export function markerIndex(value: unknown): number | null {
  if (typeof value !== 'string' || !value.startsWith(`${TOKEN}-`)) return null
  const n = Number(value.slice(TOKEN.length + 1))
  return Number.isSafeInteger(n) && n >= 0 ? n : null
}

/** A copy of `raw` without its base64 attachment bodies, or null when there is none worth cutting. */
export function cutAttachmentBodies(raw: Buffer): CutCopy | null {
  const cuts: Cut[] = []
  walk(raw, 0, raw.length, 0, cuts)
  if (!cuts.length) return null
  const parts: Buffer[] = []
  let at = 0
  cuts.forEach((c, i) => {
    parts.push(raw.subarray(at, c.headEnd), Buffer.from(`${MARKER_HEADER}: ${TOKEN}-${i}\r\n`, 'latin1'), raw.subarray(c.headEnd, c.bodyStart))
    at = c.bodyEnd
  })
  parts.push(raw.subarray(at))
  return { raw: Buffer.concat(parts), sizes: cuts.map((c) => c.size) }
}

/** One MIME entity in raw[start, end): a multipart is walked part by part, a base64 leaf may be cut. */
function walk(raw: Buffer, start: number, end: number, depth: number, cuts: Cut[]): void {
  const head = headerBlock(raw, start, end)
  if (!head || depth > MAX_DEPTH) return
  const headers = raw.toString('latin1', start, head.headEnd).replace(/\r?\n[ \t]+/g, ' ')
  const contentType = single(headers, 'content-type')
  const encoding = single(headers, 'content-transfer-encoding')
  // No Content-Type: text/plain (RFC 2045 §5.2), never cut. Two of a header: mailparser's reading may differ, leave it.
  if (contentType == null || encoding === undefined) return
  const ct = libmime.parseHeaderValue(contentType)
  const type = (ct.value ?? '').toLowerCase().trim()
  if (type.startsWith('multipart/')) {
    const boundary = typeof ct.params.boundary === 'string' ? ct.params.boundary : ''
    if (boundary) for (const [s, e] of partsOf(raw, head.bodyStart, end, Buffer.from(`--${boundary}`, 'latin1'))) walk(raw, s, e, depth + 1, cuts)
    return
  }
  if (encoding?.trim().toLowerCase() !== 'base64' || type.startsWith('text/') || type.startsWith('message/') || !type.includes('/')) return
  if (end - head.bodyStart < MIN_CUT) return
  const size = base64Size(raw, head.bodyStart, end)
  if (size !== null) cuts.push({ headEnd: head.headEnd, bodyStart: head.bodyStart, bodyEnd: end, size })
}

/** 1 for each base64 letter; the bytes a cut body may hold are those and CR, LF (padding is looked at apart). */
const LETTER = new Uint8Array(256)
const FORBIDDEN = new Uint8Array(256).fill(1)
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/\r\n') {
  LETTER[c.charCodeAt(0)] = c === '\r' || c === '\n' ? 0 : 1
  FORBIDDEN[c.charCodeAt(0)] = 0
}
/** The same for two bytes at once (a sum and an or: the same whichever byte comes first). */
const LETTERS2 = new Uint8Array(65536)
const FORBIDDEN2 = new Uint8Array(65536)
for (let a = 0; a < 256; a++) {
  for (let b = 0; b < 256; b++) {
    LETTERS2[a | (b << 8)] = LETTER[a]! + LETTER[b]!
    FORBIDDEN2[a | (b << 8)] = FORBIDDEN[a]! | FORBIDDEN[b]!
  }
}

/**
 * The decoded size of a base64 body, or null if it holds anything but base64 letters and line breaks, with
 * padding at the end only: above all no "-", so no line of it can be a delimiter ("--boundary") of any multipart,
 * and no "_" (base64url to Node, dropped by mailparser). Counted over the bytes, two at a time, without a copy: a
 * string and a decoded buffer per attachment cost more in garbage collection than the whole parse.
 */
function base64Size(raw: Buffer, start: number, end: number): number | null {
  const padAt = raw.indexOf(0x3d, start)
  const letters = padAt === -1 || padAt >= end ? end : padAt
  let count = 0
  let forbidden = 0
  let i = start
  if ((raw.byteOffset + i) % 2 === 1 && i < letters) {
    count += LETTER[raw[i]!]!
    forbidden |= FORBIDDEN[raw[i++]!]!
  }
  const pairs = new Uint16Array(raw.buffer, raw.byteOffset + i, (letters - i) >> 1)
  for (let p = 0; p < pairs.length; p++) {
    const two = pairs[p]!
    count += LETTERS2[two]!
    forbidden |= FORBIDDEN2[two]!
  }
  for (i += pairs.length * 2; i < letters; i++) {
    count += LETTER[raw[i]!]!
    forbidden |= FORBIDDEN[raw[i]!]!
  }
  for (i = letters; i < end; i++) {
    const c = raw[i]!
    if (c !== 0x3d && c !== CR && c !== LF) return null
  }
  return forbidden ? null : Math.floor((count * 3) / 4)
}

/** The header block of the entity at `start`: where it ends (before the empty line) and where the body begins. */
function headerBlock(raw: Buffer, start: number, end: number): { headEnd: number; bodyStart: number } | null {
  if (raw[start] === LF) return { headEnd: start, bodyStart: start + 1 }
  if (raw[start] === CR && raw[start + 1] === LF) return { headEnd: start, bodyStart: start + 2 }
  // Line by line: a search for "\n\n" in a CRLF message would read the whole rest of it.
  for (let i = raw.indexOf(LF, start); i !== -1 && i < end; i = raw.indexOf(LF, i + 1)) {
    if (raw[i + 1] === LF) return { headEnd: i + 1, bodyStart: i + 2 }
    if (raw[i + 1] === CR && raw[i + 2] === LF) return { headEnd: i + 1, bodyStart: i + 3 }
  }
  return null
}

/** The one value of a header (unfolded), null when absent, undefined when given twice. */
function single(headers: string, name: string): string | null | undefined {
  const found = [...headers.matchAll(new RegExp(`^${name}[ \\t]*:(.*)$`, 'gim'))]
  return found.length === 0 ? null : found.length === 1 ? found[0]![1]! : undefined
}

/**
 * The parts of a multipart body, as [start, end) ranges: from after each delimiter line to before the line break
 * that precedes the next one (RFC 2046 §5.1.1), up to the close delimiter. A delimiter is "--boundary" at the
 * start of a line, then "--" for the close one, optional spaces or tabs, and the line break.
 */
function partsOf(raw: Buffer, start: number, end: number, delimiter: Buffer): Array<[number, number]> {
  const parts: Array<[number, number]> = []
  let open = -1
  for (let at = raw.indexOf(delimiter, start); at !== -1 && at < end; at = raw.indexOf(delimiter, at + 1)) {
    if (at !== start && raw[at - 1] !== LF) continue
    let i = at + delimiter.length
    const close = raw[i] === DASH && raw[i + 1] === DASH
    if (close) i += 2
    while (raw[i] === 0x20 || raw[i] === 0x09) i++
    while (raw[i] === CR) i++
    if (i < end && raw[i] !== LF) continue
    if (open !== -1) parts.push([open, at - (raw[at - 2] === CR ? 2 : 1)])
    // A close delimiter before any part: mailparser reads on; so does nothing here, no part is cut.
    if (close) return open === -1 ? [] : parts
    open = i + 1
  }
  if (open !== -1 && open < end) parts.push([open, end])
  return parts
}
