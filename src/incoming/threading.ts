import type { Kysely } from 'kysely'
import type { DB } from '../db/index.ts'

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

/**
 * Thread a message the way RFC 5256 §2.2 (REFERENCES) starts: the parent is In-Reply-To or the last of
 * References. A thread is named by the Message-ID of its root: the thread of any known message it points to
 * (incoming, any server), else the first of its References, else its In-Reply-To, else itself. A reply to a
 * mail Mailbridge sent gets that mail's root, so both directions share one thread_id.
 */
export async function linkThread(db: Pick<Kysely<DB>, 'selectFrom'>, h: ThreadHeaders, fallback: string): Promise<ThreadLink> {
  const pointers = [...new Set([...(h.inReplyTo ? [h.inReplyTo] : []), ...h.references])]
  let threadId: string | undefined
  let inReplyToMailId: string | null = null
  if (pointers.length) {
    const known = await db.selectFrom('messages').select(['thread_id']).where('message_id', 'in', pointers).orderBy('id').limit(1).executeTakeFirst()
    threadId = known?.thread_id
    const parent = h.inReplyTo ?? h.references[h.references.length - 1]
    if (parent) {
      const mail = await db.selectFrom('mails').select(['id']).where('message_id', '=', parent).executeTakeFirst()
      inReplyToMailId = mail?.id ?? null
    }
  }
  return { threadId: threadId ?? h.references[0] ?? h.inReplyTo ?? h.messageId ?? fallback, inReplyToMailId }
}
