import type { Kysely } from 'kysely'
import { type DB, newId, type Tx } from '../db/index.ts'
import type { AttemptOutcome, MailAttemptRow, MailRow } from '../db/schema.ts'

/** What an attempt changed on its mail, as the worker records it. */
type Change = Partial<Pick<MailRow, 'state' | 'smtp_response' | 'failure_reason'>>

/** The attempt's outcome from the state it left its mail in: sent, waiting for the next try, or failed for good. */
export const attemptOutcome = (set: Change): AttemptOutcome => (set.state === 'sent' ? 'sent' : set.state === 'exception' ? 'failed' : 'retry')

/**
 * Record one attempt in the transaction that records its outcome on the mail: the mail's page lists every attempt
 * with the server's reply, and the console counts them per hour (both or neither).
 */
export async function recordAttempt(tx: Pick<Tx, 'insertInto'>, mail: Pick<MailRow, 'id' | 'server_id'>, set: Change, at: string): Promise<void> {
  const outcome = attemptOutcome(set)
  await tx
    .insertInto('mail_attempts')
    .values({ id: newId(), mail_id: mail.id, server_id: mail.server_id, at, outcome, reply: set.smtp_response ?? null, reason: outcome === 'sent' ? null : (set.failure_reason ?? null) })
    .execute()
}

/** A mail's attempts, oldest first. */
export function attemptsOf(db: Pick<Kysely<DB>, 'selectFrom'>, mailId: string): Promise<MailAttemptRow[]> {
  return db.selectFrom('mail_attempts').selectAll().where('mail_id', '=', mailId).orderBy('id').execute()
}
