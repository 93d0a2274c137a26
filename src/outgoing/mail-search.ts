import type { Kysely } from 'kysely'
import { bouncesOf } from '../bounces/mail-bounces.ts'
import type { DB } from '../db/index.ts'
import type { MailState } from '../db/schema.ts'
import { contains } from '../text-search.ts'
import { mailToApi, type Mail } from './mail-model.ts'

export interface MailFilter {
  state?: MailState
  server_id?: string
  /** Found in the subject or a recipient (To, Cc, Bcc), ignoring case. */
  text?: string
  /** The last id of the previous page. */
  cursor?: string
  limit: number
}

/** The mail queue as the admin filters it, newest first, a page at a time. */
export async function searchMails(db: Kysely<DB>, f: MailFilter): Promise<{ items: Mail[]; next_cursor: string | null }> {
  const text = f.text?.trim()
  const rows = await db
    .selectFrom('mails')
    .selectAll()
    .$if(f.state !== undefined, (q) => q.where('state', '=', f.state!))
    .$if(f.server_id !== undefined, (q) => q.where('server_id', '=', f.server_id!))
    .$if(!!text, (q) => q.where((eb) => eb.or([contains('subject', text!), contains('to_addrs', text!), contains('cc_addrs', text!), contains('bcc_addrs', text!)])))
    .$if(f.cursor !== undefined, (q) => q.where('id', '<', f.cursor!))
    .orderBy('id', 'desc')
    .limit(f.limit + 1)
    .execute()
  const page = rows.slice(0, f.limit)
  const bounces = await bouncesOf(db, page.map((r) => r.id))
  const items = page.map((r) => mailToApi(r, bounces.get(r.id)))
  return { items, next_cursor: rows.length > f.limit ? items.at(-1)!.id : null }
}
