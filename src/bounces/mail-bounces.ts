import type { Kysely } from 'kysely'
import { type DB, whereIn } from '../db/index.ts'
import { mailBounceToApi, type MailBounce } from './model.ts'

/** The bounces[] of each mail, oldest report first; a mail without any is absent from the map. */
export async function bouncesOf(db: Pick<Kysely<DB>, 'selectFrom'>, mailIds: readonly string[]): Promise<Map<string, MailBounce[]>> {
  const rows = await whereIn(mailIds, (ids) => db.selectFrom('mail_bounces').selectAll().where('mail_id', 'in', ids).orderBy('id').execute())
  const byMail = new Map<string, MailBounce[]>()
  for (const r of rows) {
    const list = byMail.get(r.mail_id!)
    if (list) list.push(mailBounceToApi(r))
    else byMail.set(r.mail_id!, [mailBounceToApi(r)])
  }
  return byMail
}
