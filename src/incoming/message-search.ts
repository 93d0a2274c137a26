import type { Kysely } from 'kysely'
import type { DB } from '../db/index.ts'
import { notFound } from '../errors.ts'
import { contains } from '../text-search.ts'
import { messageToApi, type Message } from './model.ts'

export interface MessageFilter {
  server_id?: string
  /** Found in the subject or the sender, ignoring case. */
  text?: string
  /** The last id of the previous page. */
  cursor?: string
  limit: number
}

/** Messages as the admin searches them: newest stored first (messages.seq), a page at a time. */
export async function searchMessages(db: Kysely<DB>, f: MessageFilter): Promise<{ items: Message[]; next_cursor: string | null }> {
  const before = f.cursor === undefined ? undefined : await db.selectFrom('messages').select('seq').where('id', '=', f.cursor).executeTakeFirst()
  if (f.cursor !== undefined && !before) throw notFound('Message', f.cursor)
  const text = f.text?.trim()
  const rows = await db
    .selectFrom('messages')
    .selectAll()
    .$if(f.server_id !== undefined, (q) => q.where('server_id', '=', f.server_id!))
    .$if(!!text, (q) => q.where((eb) => eb.or([contains('subject', text!), contains('from_addr', text!)])))
    .$if(before !== undefined, (q) => q.where('seq', '<', before!.seq))
    .orderBy('seq', 'desc')
    .limit(f.limit + 1)
    .execute()
  const page = rows.slice(0, f.limit)
  const atts = page.length ? await db.selectFrom('message_attachments').selectAll().where('message_id', 'in', page.map((r) => r.id)).orderBy('position').execute() : []
  const items = page.map((r) => messageToApi(r, atts.filter((a) => a.message_id === r.id)))
  return { items, next_cursor: rows.length > f.limit ? items.at(-1)!.id : null }
}
