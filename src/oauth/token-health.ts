import type { Kysely } from 'kysely'
import { type DB, now } from '../db/index.ts'
import { type Account, mailboxOf } from './credential-store.ts'
import type { ProviderSpec } from './providers.ts'

/** Whether any credential has a failure on record: one cheap query before anything lists every server's token. */
export async function anyFailing(db: Kysely<DB>): Promise<boolean> {
  return (await db.selectFrom('credentials').select('id').where('last_error', 'is not', null).limit(1).executeTakeFirst()) !== undefined
}

/** A server refused a token we believed good (e.g. 535 after a refresh): the badge must turn red. */
export async function recordUseFailure(db: Kysely<DB>, p: ProviderSpec, account: Account, message: string): Promise<void> {
  await db
    .updateTable('credentials')
    .set({ last_error: message, last_error_code: 'use_failed', updated_at: now() })
    .where('provider', '=', p.id)
    .where('mailbox', '=', mailboxOf(account))
    .execute()
}

/** A use that worked proves the token: clears a use failure (not a dead refresh token). */
export async function recordUseSuccess(db: Kysely<DB>, p: ProviderSpec, account: Account): Promise<void> {
  await db
    .updateTable('credentials')
    .set({ last_error: null, last_error_code: null })
    .where('provider', '=', p.id)
    .where('mailbox', '=', mailboxOf(account))
    .where('last_error_code', '=', 'use_failed')
    .execute()
}
