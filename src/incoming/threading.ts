import type { Kysely } from 'kysely'
import { type DB, whereIn } from '../db/index.ts'

export interface ThreadHeaders {
  messageId: string | null
  inReplyTo: string | null
  references: string[]
}

export interface ThreadLink {
  threadId: string
  /** The Mailbridge mail this message answers (its In-Reply-To is that mail's Message-ID). */
  inReplyToMailId: string | null
}

/** Message-IDs as they appear in headers (`<a@b>`), one per angle-bracket pair. */
export function messageIds(value: string | string[] | undefined | null): string[] {
  const text = Array.isArray(value) ? value.join(' ') : (value ?? '')
  return [...text.matchAll(/<[^<>\s]+>/g)].map((m) => m[0])
}

const pointersOf = (h: ThreadHeaders) => [...new Set([...(h.inReplyTo ? [h.inReplyTo] : []), ...h.references])]
const parentOf = (h: ThreadHeaders) => h.inReplyTo ?? h.references[h.references.length - 1] ?? null

/**
 * Thread messages stored together, in order, the way RFC 5256 §2.2 (REFERENCES) starts: the parent is
 * In-Reply-To or the last of References. A thread is named by the Message-ID of its root: the thread of any known
 * message it points to (incoming, any server, or earlier in the same batch), else the first of its References,
 * else its In-Reply-To, else itself (`<id@mailbridge.thread>` when it has no Message-ID). A reply to a mail
 * Mailbridge sent gets that mail's root, so both directions share one thread_id. Two lookups for the whole batch.
 */
export async function linkThreads(db: Pick<Kysely<DB>, 'selectFrom'>, batch: Array<ThreadHeaders & { id: string }>): Promise<ThreadLink[]> {
  // The oldest stored message of each Message-ID names the thread when several do.
  const known = new Map<string, { id: string; thread_id: string }>()
  const rows = await whereIn(batch.flatMap(pointersOf), (ids) => db.selectFrom('messages').select(['id', 'message_id', 'thread_id']).where('message_id', 'in', ids).execute())
  for (const r of rows) {
    const k = known.get(r.message_id!)
    if (!k || r.id < k.id) known.set(r.message_id!, r)
  }
  const parents = batch.map(parentOf).filter((p): p is string => p !== null)
  const mails = new Map((await whereIn(parents, (ids) => db.selectFrom('mails').select(['id', 'message_id']).where('message_id', 'in', ids).execute())).map((m) => [m.message_id, m.id]))
  return batch.map((h) => {
    let root: { id: string; thread_id: string } | undefined
    for (const p of pointersOf(h)) {
      const k = known.get(p)
      if (k && (!root || k.id < root.id)) root = k
    }
    const threadId = root?.thread_id ?? h.references[0] ?? h.inReplyTo ?? h.messageId ?? `<${h.id}@mailbridge.thread>`
    if (h.messageId && !known.has(h.messageId)) known.set(h.messageId, { id: h.id, thread_id: threadId })
    const parent = parentOf(h)
    return { threadId, inReplyToMailId: parent ? (mails.get(parent) ?? null) : null }
  })
}
