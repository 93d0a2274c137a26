import { type Kysely, sql } from 'kysely'
import type { Database, DB } from './index.ts'

/**
 * A transaction that holds the write lock from its first statement, for work that reads and then writes on what
 * it read (a queue's claim). SQLite's plain BEGIN is deferred: the transaction reads under a snapshot and asks for
 * the write lock only at its first write, and when another connection committed in between SQLite cannot upgrade
 * it and answers SQLITE_BUSY_SNAPSHOT ("database is locked") at once, without waiting out busy_timeout. BEGIN
 * IMMEDIATE takes the write lock first, waiting for it as busy_timeout allows. PostgreSQL needs no such thing: its
 * statements take row locks (FOR UPDATE) where they read.
 * @see https://www.sqlite.org/lang_transaction.html
 * @see https://www.sqlite.org/rescode.html#busy_snapshot
 */
export async function writeTransaction<T>(database: Database, fn: (tx: Kysely<DB>) => Promise<T>): Promise<T> {
  if (database.traits.dialect !== 'sqlite') return database.db.transaction().execute(fn)
  // kysely's SQLite driver only says BEGIN: the connection is held for the whole callback, as its transactions do.
  return database.db.connection().execute(async (c) => {
    await sql`begin immediate`.execute(c)
    try {
      const result = await fn(c)
      await sql`commit`.execute(c)
      return result
    } catch (e) {
      await sql`rollback`.execute(c).catch(() => undefined)
      throw e
    }
  })
}
