import type { ExpressionBuilder, Expression, Kysely, Selectable, SqlBool, Updateable } from 'kysely'
import { type Database, type DB, now } from '../db/index.ts'
import { writeTransaction } from '../db/write-transaction.ts'

/** The queues whose rows are worked under a lease: mails (the mail worker) and webhook deliveries (the dispatcher). */
export type LeasedTable = 'mails' | 'webhook_deliveries'
type Row<TB extends LeasedTable> = Selectable<DB[TB]>
type Ordered = { id: string; next_attempt_at: string }
/** What a claim returns: the columns asked for, with the two that order it. */
export type Claimed<TB extends LeasedTable, C extends keyof Row<TB>> = Pick<Row<TB>, C | Extract<'id' | 'next_attempt_at', keyof Row<TB>>>

export interface Claim<TB extends LeasedTable, C extends keyof Row<TB>> {
  table: TB
  /** What makes a row claimable now (due, of this server or webhook, not leased); checked again as it is taken. */
  due: (eb: ExpressionBuilder<DB, TB>) => Expression<SqlBool>
  /** How many rows at most; a function reads inside the claim's transaction (a per-minute count). 0: none. */
  limit: number | ((tx: Kysely<DB>) => Promise<number>)
  /**
   * The lease and whatever else a claim writes on each row (`lease_owner`, `lease_until`, a state), asked for once
   * the rows are chosen: a claim that waited for a lock still gets its whole lease.
   */
  set: () => Updateable<DB[TB]>
  /** The columns the caller reads (`id` and `next_attempt_at` come too: they order the claim). */
  returning: readonly C[]
}

/**
 * Claim up to `limit` due rows, oldest due first, for one owner: the one lease claim of every queue. Two claimers
 * never get the same row: on PostgreSQL the rows are read `FOR UPDATE SKIP LOCKED` (a row another claim holds is
 * passed over, not waited for); on SQLite the claim holds the database's one write lock from its start
 * (db/write-transaction.ts), so claims run one after another and never read what another is about to take.
 * Returned in order of `next_attempt_at`, then id (RETURNING promises no order).
 */
export async function claimDue<TB extends LeasedTable, C extends keyof Row<TB>>(database: Database, c: Claim<TB, C>): Promise<Array<Claimed<TB, C>>> {
  // kysely cannot follow a table name that is a type parameter; each caller's Claim is checked against its table.
  const claim = c as unknown as Claim<'mails', 'id'>
  const rows = await writeTransaction(database, async (tx) => {
    const limit = typeof claim.limit === 'number' ? claim.limit : await claim.limit(tx)
    if (limit <= 0) return []
    const due = await tx
      .selectFrom(claim.table)
      .select('id')
      .where(claim.due)
      .orderBy('next_attempt_at')
      .orderBy('id')
      .limit(limit)
      .$if(database.traits.skipLocked, (q) => q.forUpdate().skipLocked())
      .execute()
    if (due.length === 0) return []
    return tx
      .updateTable(claim.table)
      .set({ ...claim.set(), updated_at: now() })
      .where('id', 'in', due.map((d) => d.id))
      .where(claim.due)
      .returning([...new Set([...claim.returning, 'id', 'next_attempt_at'])] as unknown as ['id'])
      .execute()
  })
  const order = (a: Ordered, b: Ordered) => (a.next_attempt_at < b.next_attempt_at ? -1 : a.next_attempt_at > b.next_attempt_at ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  return (rows as unknown as Ordered[]).sort(order) as unknown as Array<Claimed<TB, C>>
}

/**
 * Hand leased rows back to their queue: the expired leases of any owner (a worker that died or stalled), or every
 * lease of one owner (`of`: a node draining at shutdown). `back` is what makes a row claimable again (a mail's
 * state goes from `sending` back to `outgoing`); `leased` says which rows hold a lease. Returns how many came back.
 */
export async function releaseLeases<TB extends LeasedTable>(
  database: Database,
  r: { table: TB; leased: (eb: ExpressionBuilder<DB, TB>) => Expression<SqlBool>; back: Updateable<DB[TB]>; of?: string },
): Promise<number> {
  const release = r as unknown as { table: 'mails'; leased: (eb: ExpressionBuilder<DB, 'mails'>) => Expression<SqlBool>; back: Updateable<DB['mails']>; of?: string }
  const at = now()
  const result = await database.db
    .updateTable(release.table)
    .set({ ...release.back, lease_owner: null, lease_until: null, updated_at: at })
    .where(release.leased)
    .$if(release.of === undefined, (q) => q.where('lease_until', '<', at))
    .$if(release.of !== undefined, (q) => q.where('lease_owner', '=', release.of!))
    .executeTakeFirst()
  return Number(result.numUpdatedRows)
}
