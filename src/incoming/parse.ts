import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { MailParser, type AddressObject, type AttachmentStream, type Headers, type MessageText } from 'mailparser'
import type { MessageRow } from '../db/schema.ts'
import { threadEntry } from '../thread-entry.ts'
import { messageIds } from './threading.ts'

export interface Parsed {
  row: Omit<MessageRow, 'id' | 'server_id' | 'folder' | 'uidvalidity' | 'uid' | 'thread_id' | 'in_reply_to_mail_id' | 'received_at' | 'size' | 'seq'>
  attachments: Array<{ filename: string | null; content_type: string; size: number }>
}

const addresses = (a: AddressObject | AddressObject[] | undefined): string[] =>
  (Array.isArray(a) ? a : a ? [a] : []).flatMap((o) => o.value).filter((v) => v.address).map((v) => (v.name ? `${v.name} <${v.address}>` : v.address!))

const OPTIONS = { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true, skipTextLinks: true, checksumAlgo: false } as const

/**
 * Parse one message with mailparser's stream parser. Its text-to-HTML and HTML-to-text conversions are skipped:
 * they are most of its cost and the application gets both bodies as sent. Attachments are counted as they stream
 * by, never held: their bytes stay in the raw message, which is stored anyway (simpleParser would buffer each one).
 */
export function parseMessage(raw: Buffer): Promise<Parsed> {
  return new Promise((resolve, reject) => {
    const parser = new MailParser(OPTIONS)
    let headers: Headers = new Map()
    let text: string | undefined
    let html: string | undefined
    const attachments: Parsed['attachments'] = []
    let failed = false
    // mailparser may report an error and still end: the first error wins.
    parser.on('error', (e: Error) => {
      failed = true
      reject(e)
    })
    parser.on('headers', (h: Headers) => (headers = h))
    parser.on('data', (d: AttachmentStream | MessageText) => {
      if (d.type === 'text') {
        text = d.text
        html = typeof d.html === 'string' ? d.html : undefined
        return
      }
      let size = 0
      d.content.on('data', (chunk: Buffer) => (size += chunk.length))
      d.content.on('end', () => {
        attachments.push({ filename: d.filename ?? null, content_type: d.contentType, size })
        d.release?.()
      })
    })
    parser.on('end', () => {
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
      const w = new Worker(fileURLToPath(threadEntry('parse-worker', import.meta.url)), { execArgv: [] })
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
