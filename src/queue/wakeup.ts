import { EventEmitter } from 'node:events'
import { sql, type QueryExecutorProvider } from 'kysely'
import type { Database } from '../db/index.ts'

/**
 * A named "there is new work" signal for a queue's poller: raised by whoever writes the work, inside the writer's
 * transaction, and heard by every poller of this process and, on PostgreSQL, of every node. The pollers still poll:
 * a lost signal costs one interval, never a row.
 */
export class Wakeup {
  readonly #local = new EventEmitter()
  readonly #channel: string

  constructor(
    private readonly database: Pick<Database, 'listen' | 'schema'>,
    name: string,
  ) {
    // Channels are per database, schemas are not: tests and tenants on their own schema wake only their own.
    // A channel name is an identifier: at most 63 bytes.
    this.#channel = `mb.${name}${database.schema ? `.${database.schema}` : ''}`.slice(0, 63)
  }

  /**
   * Say there is work. Inside the writer's transaction: PostgreSQL delivers a NOTIFY only when that transaction
   * commits, so no poller looks before the rows are there (https://www.postgresql.org/docs/current/sql-notify.html).
   * In process, the one SQLite connection is held by the transaction until it commits, so a woken poller's read waits
   * for the writer.
   */
  async raise(q: QueryExecutorProvider): Promise<void> {
    this.#local.emit('wake')
    if (this.database.listen) await sql`select pg_notify(${this.#channel}, '')`.execute(q)
  }

  /** Only this process's pollers (a signal relayed from another thread of this node). */
  raiseHere(): void {
    this.#local.emit('wake')
  }

  /** Call `fn` on every signal, in process and from other nodes; resolves to the removal. */
  async listen(fn: () => void): Promise<() => Promise<void>> {
    this.#local.on('wake', fn)
    const unlisten = await this.database.listen?.(this.#channel, fn)
    return async () => {
      this.#local.off('wake', fn)
      await unlisten?.()
    }
  }

  /** Signals raised in this process only, to relay them to another thread. */
  onLocal(fn: () => void): () => void {
    this.#local.on('wake', fn)
    return () => void this.#local.off('wake', fn)
  }
}
