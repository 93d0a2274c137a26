import { sql, type Kysely } from 'kysely'
import { type DB, isoIn, now } from '../db/index.ts'

/**
 * Sign-in attempts per client address, counted in the database so the limit holds across nodes (OWASP ASVS 4.0
 * V2.2.1). An attempt is counted before its password is checked, by one upsert that returns the count: a check
 * and a count apart let 100 parallel guesses all pass the check before any was counted. After `allowed`
 * attempts within the window that the first one opened, even the right password waits until that window ends;
 * a success clears the count. `scope` keeps the admin sign-in and the relay's AUTH apart in the one table.
 * @see https://www.postgresql.org/docs/current/sql-insert.html#SQL-ON-CONFLICT (atomic insert-or-update)
 * @see https://www.sqlite.org/lang_upsert.html
 */
export class LoginThrottle {
  constructor(
    private readonly db: Kysely<DB>,
    private readonly o: { allowed: number; windowMs: number; scope?: string },
  ) {}

  #key(client: string): string {
    return this.o.scope ? `${this.o.scope}:${client}` : client
  }

  /**
   * Count one attempt of this client. Undefined: check its password now. A number: the seconds until it may
   * try again, and the password must not be checked.
   */
  async attempt(client: string): Promise<number | undefined> {
    const at = now()
    const expired = sql<boolean>`login_attempts.window_started_at <= ${isoIn(-this.o.windowMs)}`
    const row = await this.db
      .insertInto('login_attempts')
      .values({ client: this.#key(client), window_started_at: at, attempts: 1 })
      // Both SET expressions read the row as it was, so an expired window restarts at 1 from now.
      .onConflict((oc) =>
        oc.column('client').doUpdateSet({
          attempts: sql<number>`case when ${expired} then 1 else login_attempts.attempts + 1 end`,
          window_started_at: sql<string>`case when ${expired} then ${at} else login_attempts.window_started_at end`,
        }),
      )
      .returning(['attempts', 'window_started_at'])
      .executeTakeFirstOrThrow()
    if (Number(row.attempts) <= this.o.allowed) return undefined
    return Math.max(1, Math.ceil((Date.parse(row.window_started_at) + this.o.windowMs - Date.now()) / 1000))
  }

  /**
   * The attempt failed: it stays counted. Rows of clients that never came back are cleared here, where they come
   * from; a day is longer than any scope's window, so no scope clears another's count.
   */
  async failed(): Promise<void> {
    await this.db.deleteFrom('login_attempts').where('window_started_at', '<', isoIn(-Math.max(this.o.windowMs, 86_400_000))).execute()
  }

  async succeeded(client: string): Promise<void> {
    await this.db.deleteFrom('login_attempts').where('client', '=', this.#key(client)).execute()
  }
}
