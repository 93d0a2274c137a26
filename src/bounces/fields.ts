import libmime from 'libmime'

/** Header fields by lower-cased name, values in order of appearance, folding undone. */
export type Fields = Map<string, string[]>

/**
 * Read one block of header fields: a message's header section (RFC 5322 §2.2, folding §2.2.3) and, in the same
 * syntax, a group of delivery-status fields (RFC 3464 §2.1). Lines that are not fields are skipped, not fatal:
 * reports in the field are often damaged, and what can be read is still worth reading.
 */
export function readFields(block: string): Fields {
  const fields: Fields = new Map()
  let name: string | null = null
  let value = ''
  const flush = () => {
    if (name === null) return
    const list = fields.get(name)
    if (list) list.push(value.trim())
    else fields.set(name, [value.trim()])
    name = null
  }
  for (const line of block.split(/\r?\n/)) {
    if (/^[ \t]/.test(line)) {
      if (name !== null) value += ' ' + line.trim()
      continue
    }
    flush()
    const m = /^([!-9;-~]+)[ \t]*:(.*)$/.exec(line)
    if (m) {
      name = m[1]!.toLowerCase()
      value = m[2]!
    }
  }
  flush()
  return fields
}

export const first = (f: Fields, name: string): string | undefined => f.get(name)?.[0]

/**
 * The header section of a raw message, up to the first empty line, as text. A leading mbox `From ` line
 * (RFC 4155) is not a field and is dropped: mail exported from Unix mailboxes carries one.
 */
export function headerSection(raw: Buffer | string, limit = 256 * 1024): string {
  const text = typeof raw === 'string' ? raw.slice(0, limit) : raw.subarray(0, headEnd(raw, limit)).toString('utf8')
  const end = /\r?\n\r?\n/.exec(text)
  const head = end ? text.slice(0, end.index) : text
  return head.startsWith('From ') ? head.slice(head.indexOf('\n') + 1) : head
}

/** Where the header section of a raw message ends at the latest: only those bytes need decoding. */
function headEnd(raw: Buffer, limit: number): number {
  const lf = raw.indexOf('\n\n')
  const crlf = raw.indexOf('\r\n\r\n')
  const ends = [lf, crlf].filter((i) => i >= 0)
  return Math.min(limit, ends.length ? Math.min(...ends) + 4 : raw.length)
}

/** A field value with its RFC 2047 encoded words decoded (Subject, display names). */
export function decoded(value: string | undefined): string {
  if (!value) return ''
  try {
    return libmime.decodeWords(value)
  } catch {
    return value
  }
}

/** The value of a Content-Type field, lower-cased, and its parameters (RFC 2045 §5.1). */
export function contentType(value: string | undefined): { type: string; params: Record<string, string> } {
  const parsed = libmime.parseHeaderValue(value ?? 'text/plain')
  return { type: parsed.value.toLowerCase().trim(), params: Object.fromEntries(Object.entries(parsed.params).map(([k, v]) => [k.toLowerCase(), String(v)])) }
}
