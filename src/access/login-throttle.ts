import type { Kysely } from 'kysely'
import { type DB, isoIn, newId, now } from '../db/index.ts'

/**
 * Failed logins per client address, counted in the database so the limit holds across nodes (OWASP ASVS 4.0
 * V2.2.1). After `allowed` failures within the window even the right password waits until the oldest failure
 * leaves the window. `scope` keeps the admin sign-in and the relay's AUTH apart in the one table.
 */
export class LoginThrottle {
  constructor(
    private readonly db: Kysely<DB>,
    private readonly o: { allowed: number; windowMs: number; scope?: string },
  ) {}

  #key(client: string): string {
    return this.o.scope ? `${this.o.scope}:${client}` : client
  }

  /** Seconds until the client may try again, or undefined when it may try now. */
  async retryAfter(client: string): Promise<number | undefined> {
    const failures = await this.db
      .selectFrom('admin_login_failures')
      .select(['at'])
      .where('client', '=', this.#key(client))
      .where('at', '>', isoIn(-this.o.windowMs))
      .orderBy('at')
      .limit(this.o.allowed)
      .execute()
    if (failures.length < this.o.allowed) return undefined
    return Math.max(1, Math.ceil((Date.parse(failures[0]!.at) + this.o.windowMs - Date.now()) / 1000))
  }

  async failed(client: string): Promise<void> {
    await this.db.insertInto('admin_login_failures').values({ id: newId(), client: this.#key(client), at: now() }).execute()
    await this.db.deleteFrom('admin_login_failures').where('at', '<', isoIn(-this.o.windowMs)).execute()
  }

  async succeeded(client: string): Promise<void> {
    await this.db.deleteFrom('admin_login_failures').where('client', '=', this.#key(client)).execute()
  }
}
