import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { MailParser, type AddressObject, type AttachmentStream, type Headers, type MessageText } from 'mailparser'
import type { MessageRow } from '../db/schema.ts'
import { threadEntry, threadExecArgv } from '../thread-entry.ts'
import { cutAttachmentBodies, MARKER_HEADER, markerIndex } from './attachment-bodies.ts'
import { messageIds } from './threading.ts'

export interface Parsed {
  row: Omit<MessageRow, 'id' | 'server_id' | 'folder' | 'uidvalidity' | 'uid' | 'thread_id' | 'in_reply_to_mail_id' | 'received_at' | 'size' | 'seq' | 'bounce' | 'auto_reply'>
  attachments: Array<{ filename: string | null; content_type: string; size: number }>
}

const addresses = (a: AddressObject | AddressObject[] | undefined): string[] =>
  (Array.isArray(a) ? a : a ? [a] : []).flatMap((o) => o.value).filter((v) => v.address).map((v) => (v.name ? `${v.name} <${v.address}>` : v.address!))

const OPTIONS = { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true, skipTextLinks: true, checksumAlgo: false } as const

/** mailparser read the cut copy other than the original would be read: parse the original. */
class CutMismatch extends Error {}

/**
 * Parse one message with mailparser's stream parser, given a copy without its base64 attachment bodies when it
 * has some (attachment-bodies.ts): the same fields, a fraction of the work. If mailparser reads that copy in any
 * way the original would not be read, or fails on it, the original is parsed instead.
 */
export async function parseMessage(raw: Buffer): Promise<Parsed> {
  const cut = cutAttachmentBodies(raw)
  if (cut) {
    const parsed = await mailparse(cut.raw, cut.sizes).catch(() => null)
    if (parsed) return parsed
  }
  return parseWhole(raw)
}

/** mailparser on the message as it is, nothing cut: what parseMessage must always agree with. */
export const parseWhole = (raw: Buffer): Promise<Parsed> => mailparse(raw, [])

/**
 * mailparser, with its text-to-HTML and HTML-to-text conversions skipped: they are most of its cost and the
 * application gets both bodies as sent. Attachments are counted as they stream by, never held: their bytes stay in
 * the raw message, which is stored anyway. A part marked as cut must come out as an attachment with no content,
 * and each exactly once (`sizes` are their sizes); otherwise CutMismatch.
 */
function mailparse(raw: Buffer, sizes: number[]): Promise<Parsed> {
  return new Promise((resolve, reject) => {
    const parser = new MailParser(OPTIONS)
    let headers: Headers = new Map()
    let text: string | undefined
    let html: string | undefined
    const attachments: Parsed['attachments'] = []
    const seen = new Set<number>()
    let failed = false
    const fail = (e: Error) => {
      if (failed) return
      failed = true
      reject(e)
    }
    // mailparser may report an error and still end: the first error wins.
    parser.on('error', fail)
    parser.on('headers', (h: Headers) => (headers = h))
    parser.on('data', (d: AttachmentStream | MessageText) => {
      if (d.type === 'text') {
        text = d.text
        html = typeof d.html === 'string' ? d.html : undefined
        return
      }
      const mark = sizes.length ? markerIndex(d.headers.get(MARKER_HEADER)) : null
      if (mark !== null && (mark >= sizes.length || seen.has(mark))) fail(new CutMismatch(`cut part ${mark} read twice`))
      if (mark !== null) seen.add(mark)
      const entry = { filename: d.filename ?? null, content_type: d.contentType, size: 0 }
      attachments.push(entry)
      d.content.on('data', (chunk: Buffer) => (entry.size += chunk.length))
      d.content.on('end', () => {
        if (mark !== null && entry.size !== 0) fail(new CutMismatch(`cut part ${mark} has content`))
        if (mark !== null) entry.size = sizes[mark]!
        d.release?.()
      })
    })
    parser.on('end', () => {
      if (seen.size !== sizes.length) fail(new CutMismatch(`${sizes.length - seen.size} cut parts were not read as attachments`))
      if (failed) return
      const h = <T>(key: string) => headers.get(key) as T | undefined
      const date = h<Date>('date')
      resolve({
        row: {
          message_id: messageIds(h<string>('message-id'))[0] ?? null,
          in_reply_to: messageIds(h<string>('in-reply-to'))[0] ?? null,
          references: JSON.stringify(messageIds(h<string | string[]>('references'))),
          from_addr: addresses(h<AddressObject>('from'))[0] ?? null,
          to_addrs: JSON.stringify(addresses(h<AddressObject | AddressObject[]>('to'))),
          cc_addrs: JSON.stringify(addresses(h<AddressObject | AddressObject[]>('cc'))),
          subject: h<string>('subject') ?? null,
          date: date instanceof Date && !Number.isNaN(date.getTime()) ? date.toISOString() : null,
          text_body: text ?? null,
          html_body: html ?? null,
          parse_error: null,
        },
        attachments,
      })
    })
    parser.end(raw)
  })
}

/** What is still known of a message mailparser refused: the Message-ID, if a header line gives it. */
export function unparsed(raw: Buffer, e: Error): Parsed {
  const head = raw.subarray(0, 64 * 1024).toString('latin1')
  const id = /^message-id:\s*(<[^<>\s]+>)/im.exec(head)?.[1] ?? null
  return {
    row: { message_id: id, in_reply_to: null, references: '[]', from_addr: null, to_addrs: '[]', cc_addrs: '[]', subject: null, date: null, text_body: null, html_body: null, parse_error: `mailparser: ${e.message}` },
    attachments: [],
  }
}

/** Parse, or keep what can be known of a message mailparser refuses: a parse failure never loses the raw message. */
export const parseOrKeep = (raw: Buffer): Promise<Parsed> => parseMessage(raw).catch((e: Error) => unparsed(raw, e))

/**
 * mailparser costs several times what fetching the same bytes does (design.md §2), so it runs on worker threads
 * beside the IMAP session and the database writes. With 0 threads it runs inline. Workers are unref'd: an idle
 * pool never keeps the process alive.
 */
export class ParsePool {
  readonly #workers: Worker[] = []
  readonly #pending = new Map<number, { worker: Worker; resolve: (p: Parsed) => void; reject: (e: Error) => void }>()
  #next = 0
  #seq = 0

  constructor(private readonly threads: number) {}

  #worker(): Worker {
    if (this.#workers.length < this.threads) {
      const w = new Worker(fileURLToPath(threadEntry('parse-worker', import.meta.url)), { execArgv: threadExecArgv() })
      w.on('message', (m: { seq: number; parsed: Parsed }) => {
        this.#pending.get(m.seq)?.resolve(m.parsed)
        this.#pending.delete(m.seq)
      })
      w.on('error', (e) => {
        // A dead parser thread fails what it held; the fetch stops before committing and the batch comes again.
        for (const [seq, p] of this.#pending) {
          if (p.worker !== w) continue
          p.reject(e)
          this.#pending.delete(seq)
        }
        this.#workers.splice(this.#workers.indexOf(w), 1)
      })
      // After the listeners: attaching a 'message' listener refs the worker again.
      w.unref()
      this.#workers.push(w)
      return w
    }
    return this.#workers[this.#next++ % this.#workers.length]!
  }

  parse(raw: Buffer): Promise<Parsed> {
    if (this.threads === 0) return parseOrKeep(raw)
    const worker = this.#worker()
    const seq = ++this.#seq
    return new Promise<Parsed>((resolve, reject) => {
      this.#pending.set(seq, { worker, resolve, reject })
      worker.postMessage({ seq, raw })
    })
  }

  async close(): Promise<void> {
    await Promise.all(this.#workers.splice(0).map((w) => w.terminate()))
  }
}
