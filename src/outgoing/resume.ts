import type { Kysely } from 'kysely'
import { type DB, now } from '../db/index.ts'
import { notFound } from '../errors.ts'

/**
 * An admin lifts a server's pause (Exchange's lock-out is over, SMTP AUTH is enabled again): the pause is cleared
 * and the mails it held back are due now. Returns how many mails were waiting for it.
 */
export async function resumeServer(db: Kysely<DB>, serverId: string): Promise<number> {
  const at = now()
  return db.transaction().execute(async (tx) => {
    const r = await tx.updateTable('outgoing_servers').set({ paused_until: null, pause_reason: null, updated_at: at }).where('id', '=', serverId).executeTakeFirst()
    if (r.numUpdatedRows === 0n) throw notFound('Outgoing server', serverId)
    const due = await tx.updateTable('mails').set({ next_attempt_at: at, updated_at: at }).where('server_id', '=', serverId).where('state', '=', 'outgoing').where('next_attempt_at', '>', at).executeTakeFirst()
    return Number(due.numUpdatedRows)
  })
}
