/**
 * A mail too large for one Graph request is sent as a draft created from its MIME, with the attachments taken out
 * and added through Graph (small ones in one POST, large ones through upload sessions). This module takes them out:
 * it walks the MIME tree, keeps every part but the attachments byte for byte (the header block, the text and HTML
 * bodies, so Message-ID, threading headers and the body survive), and decodes each attachment.
 * @see https://learn.microsoft.com/graph/outlook-large-attachments (attach each file by its size)
 * @see https://www.rfc-editor.org/rfc/rfc2046#section-5.1.1 (multipart: boundaries, preamble, epilogue)
 * @see https://www.rfc-editor.org/rfc/rfc2183 (Content-Disposition: attachment, inline, filename)
 */
import libmime from 'libmime'
import { splitMessage, type HeaderField } from '../outgoing/raw-message.ts'

export interface MimeAttachment {
  name: string
  contentType: string
  /** without the angle brackets */
  contentId?: string
  isInline: boolean
  bytes: Buffer
}

export interface DraftParts {
  /** the message without its attachments */
  skeleton: Buffer
  attachments: MimeAttachment[]
}

interface Part { fields: HeaderField[]; body: Buffer }

const CRLF = Buffer.from('\r\n')

/** The message without its attachments, and the attachments decoded. */
export function takeAttachments(mime: Buffer): DraftParts {
  const attachments: MimeAttachment[] = []
  const top = parsePart(mime)
  const kept = keep(top, attachments)
  if (kept) return { skeleton: kept, attachments }
  // Nothing but attachments: the draft gets an empty text body (a multipart needs at least one part, RFC 2046 §5.1.1).
  const fields = top.fields.filter((f) => !isContentField(f)).map((f) => f.text)
  return { skeleton: Buffer.from(`${[...fields, 'Content-Type: text/plain; charset=utf-8'].join('\r\n')}\r\n\r\n`, 'latin1'), attachments }
}

function parsePart(raw: Buffer): Part {
  // A part may have no header fields at all: it then starts with the empty line (RFC 2046 §5.1.1).
  const bare = raw[0] === 0x0a ? 1 : raw[0] === 0x0d && raw[1] === 0x0a ? 2 : 0
  if (bare) return { fields: [], body: raw.subarray(bare) }
  const { fields, rest } = splitMessage(raw)
  // `rest` starts with the line break that ends the last field, then the empty line.
  let i = 0
  for (let n = 0; n < 2; n++) i += rest[i] === 0x0d && rest[i + 1] === 0x0a ? 2 : rest[i] === 0x0a ? 1 : 0
  return { fields, body: rest.subarray(i) }
}

/** The part as bytes without the attachments it holds (collected into `out`); null if nothing is left. */
function keep(part: Part, out: MimeAttachment[]): Buffer | null {
  const type = header(part, 'content-type')
  if (/^multipart\//i.test(type.value) && type.params.boundary) {
    const { preamble, children, epilogue } = splitMultipart(part.body, type.params.boundary)
    const kept = children.map((c) => keep(parsePart(c), out)).filter((c): c is Buffer => c !== null)
    if (!kept.length) return null
    const delimiter = `--${type.params.boundary}`
    const body = Buffer.concat([preamble, ...kept.flatMap((k) => [Buffer.from(`${delimiter}\r\n`), k, CRLF]), Buffer.from(`${delimiter}--\r\n`), epilogue])
    return joinPart(part.fields, body)
  }
  if (isAttachment(part, type.value)) {
    out.push(decodeAttachment(part, type))
    return null
  }
  return joinPart(part.fields, part.body)
}

/** An attachment is what says so, or has a file name, or is not text a reader sees as the message (RFC 2183 §2). */
function isAttachment(part: Part, type: string): boolean {
  const disposition = header(part, 'content-disposition')
  if (disposition.value.toLowerCase() === 'attachment') return true
  if (disposition.params.filename || header(part, 'content-type').params.name) return true
  return !/^(text|message)\//i.test(type || 'text/plain')
}

function decodeAttachment(part: Part, type: { value: string; params: Record<string, string> }): MimeAttachment {
  const disposition = header(part, 'content-disposition')
  const name = libmime.decodeWords(disposition.params.filename ?? type.params.name ?? 'attachment')
  const cte = (field(part, 'content-transfer-encoding') ?? '').trim().toLowerCase()
  const text = part.body.toString('latin1')
  const bytes = cte === 'base64' ? Buffer.from(text, 'base64') : cte === 'quoted-printable' ? decodeQuotedPrintable(text) : part.body
  const cid = field(part, 'content-id')?.trim().replace(/^<|>$/g, '')
  return { name, contentType: type.value || 'application/octet-stream', contentId: cid || undefined, isInline: disposition.value.toLowerCase() === 'inline', bytes }
}

/** Split at the boundary delimiter lines (RFC 2046 §5.1.1): the CRLF before a delimiter belongs to it. */
function splitMultipart(body: Buffer, boundary: string): { preamble: Buffer; children: Buffer[]; epilogue: Buffer } {
  const delimiter = Buffer.from(`--${boundary}`)
  const starts: number[] = []
  for (let i = body.indexOf(delimiter); i >= 0; i = body.indexOf(delimiter, i + delimiter.length)) {
    if (i === 0 || body[i - 1] === 0x0a) starts.push(i)
  }
  if (!starts.length) return { preamble: body, children: [], epilogue: Buffer.alloc(0) }
  const lineEnd = (i: number) => {
    const nl = body.indexOf(0x0a, i)
    return nl < 0 ? body.length : nl + 1
  }
  const before = (i: number) => (i >= 2 && body[i - 2] === 0x0d ? i - 2 : i - 1)
  const children: Buffer[] = []
  let epilogue: Buffer = Buffer.alloc(0)
  for (let k = 0; k < starts.length; k++) {
    const at = starts[k] as number
    const closing = body.subarray(at + delimiter.length, at + delimiter.length + 2).toString() === '--'
    if (closing) {
      epilogue = body.subarray(lineEnd(at))
      break
    }
    const next = starts[k + 1]
    children.push(body.subarray(lineEnd(at), next === undefined ? body.length : Math.max(lineEnd(at), before(next))))
  }
  return { preamble: body.subarray(0, starts[0]), children, epilogue }
}

function joinPart(fields: HeaderField[], body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(fields.map((f) => `${f.text}\r\n`).join(''), 'latin1'), CRLF, body])
}

function field(part: Part, name: string): string | undefined {
  const f = part.fields.find((x) => x.name.toLowerCase() === name)
  return f ? f.text.slice(f.text.indexOf(':') + 1).replace(/\r?\n[ \t]+/g, ' ').trim() : undefined
}

/** A structured field's value and parameters, RFC 2231 continuations and charsets decoded. */
function header(part: Part, name: string): { value: string; params: Record<string, string> } {
  const v = field(part, name)
  if (!v) return { value: '', params: {} }
  const parsed = libmime.parseHeaderValue(v)
  return { value: parsed.value.toLowerCase(), params: parsed.params }
}

const isContentField = (f: HeaderField) => /^(content-|mime-version$)/i.test(f.name)

/** RFC 2045 §6.7: `=XX` is a byte, `=` at a line end a soft break. */
function decodeQuotedPrintable(text: string): Buffer {
  const bytes: number[] = []
  const s = text.replace(/=\r?\n/g, '')
  for (let i = 0; i < s.length; i++) {
    const hex = s[i] === '=' ? s.slice(i + 1, i + 3) : ''
    if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16))
      i += 2
    } else {
      bytes.push(s.charCodeAt(i) & 0xff)
    }
  }
  return Buffer.from(bytes)
}
