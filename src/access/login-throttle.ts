import { setTimeout as sleep } from 'node:timers/promises'
import { sql, type Kysely } from 'kysely'
import { type DB, now } from '../db/index.ts'

/** How long an attempt waits for the checks ahead of it before it is told to come back later. */
const MAX_WAIT_MS = 30_000

/**
 * Sign-in attempts per client address, counted in the database so the limit holds across nodes (OWASP ASVS 4.0
 * V2.2.1). A password is checked only while the client's failures plus the checks under way stay within
 * `allowed`; one upsert counts the attempt in and returns both counts, so 100 parallel guesses get `allowed`
 * checks, not 100 (a read before the check let them all through). Attempts beyond that wait for the checks
 * ahead: right passwords clear the failures and let the next ones in, wrong ones fill the count. After `allowed`
 * failures within the window the first attempt opened, even the right password waits until that window ends.
 * `scope` keeps the admin sign-in and the relay's AUTH apart in the one table.
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
   * Run `verify` (a password check) when this client may be checked now, and count its outcome. `retryAfterS`:
   * the client is over the limit and `verify` did not run.
   */
  async check(client: string, verify: () => Promise<boolean>): Promise<{ ok: boolean; retryAfterS?: number }> {
    const started = Date.now()
    for (let pause = 20; ; pause = Math.min(pause * 2, 500)) {
      const row = await this.#countIn(client)
      if (row.failures >= this.o.allowed || Date.now() - started > MAX_WAIT_MS) {
        await this.#countOut(client, 'dropped')
        return { ok: false, retryAfterS: Math.max(1, Math.ceil((Date.parse(row.window_started_at) + this.o.windowMs - Date.now()) / 1000)) }
      }
      if (row.failures + row.checking <= this.o.allowed) break
      // Checks ahead of this one may still fill the count: wait for their outcome.
      await this.#countOut(client, 'dropped')
      await sleep(pause)
    }
    let ok = false
    try {
      ok = await verify()
    } finally {
      await this.#countOut(client, ok ? 'succeeded' : 'failed')
    }
    if (!ok) await this.#forgetStale()
    return { ok }
  }

  /** One more check under way; a window that has ended starts again from now (both SET sides read the old row). */
  async #countIn(client: string): Promise<{ failures: number; checking: number; window_started_at: string }> {
    const at = now()
    const expired = sql<boolean>`login_attempts.window_started_at <= ${new Date(Date.now() - this.o.windowMs).toISOString()}`
    const row = await this.db
      .insertInto('login_attempts')
      .values({ client: this.#key(client), window_started_at: at, failures: 0, checking: 1 })
      .onConflict((oc) =>
        oc.column('client').doUpdateSet({
          failures: sql<number>`case when ${expired} then 0 else login_attempts.failures end`,
          checking: sql<number>`case when ${expired} then 1 else login_attempts.checking + 1 end`,
          window_started_at: sql<string>`case when ${expired} then ${at} else login_attempts.window_started_at end`,
        }),
      )
      .returning(['failures', 'checking', 'window_started_at'])
      .executeTakeFirstOrThrow()
    return { failures: Number(row.failures), checking: Number(row.checking), window_started_at: row.window_started_at }
  }

  /** The check is over (or never ran): a failure stays counted, a success clears the count and starts afresh. */
  async #countOut(client: string, outcome: 'dropped' | 'failed' | 'succeeded'): Promise<void> {
    // Never below 0: a window that restarted meanwhile does not hold this check.
    const checking = sql<number>`case when checking > 0 then checking - 1 else 0 end`
    const set =
      outcome === 'succeeded' ? { checking, failures: 0, window_started_at: now() }
      : outcome === 'failed' ? { checking, failures: sql<number>`failures + 1` }
      : { checking }
    await this.db.updateTable('login_attempts').set(set).where('client', '=', this.#key(client)).execute()
  }

  /** Rows of clients that never came back; a day is longer than any scope's window, so no scope clears another's count. */
  async #forgetStale(): Promise<void> {
    const before = new Date(Date.now() - Math.max(this.o.windowMs, 86_400_000)).toISOString()
    await this.db.deleteFrom('login_attempts').where('window_started_at', '<', before).execute()
  }
}
