import type { Kysely } from 'kysely'
import { hashToken, randomToken } from '../crypto/passwords.ts'
import { type DB, newId, now } from '../db/index.ts'

const BOOTSTRAP = 'MAILBRIDGE_API_TOKEN'

/** Bearer tokens for /api/v1, stored as SHA-256 hashes: a database copy does not leak a usable token. */
export class ApiTokenService {
  /** Hashes verified in the last minute: most API calls then need no database read to authenticate. */
  readonly #recent = new Map<string, number>()

  constructor(private readonly db: Kysely<DB>) {}

  /** Make sure a token given from outside (the tests') is accepted. */
  async ensure(token: string, name: string, db: Kysely<DB> = this.db): Promise<void> {
    const token_hash = hashToken(token)
    const exists = await db.selectFrom('api_tokens').select('id').where('token_hash', '=', token_hash).executeTakeFirst()
    if (!exists) await db.insertInto('api_tokens').values({ id: newId(), name, token_hash, created_at: now(), last_used_at: null }).execute()
  }

  /**
   * The bootstrap token (MAILBRIDGE_API_TOKEN) is one token, named after the variable: a new value revokes the
   * previous one, as rotating a leaked token needs (design.md §10).
   */
  async replaceBootstrap(token: string): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('api_tokens').where('name', '=', BOOTSTRAP).where('token_hash', '!=', hashToken(token)).execute()
      await this.ensure(token, BOOTSTRAP, tx)
    })
  }

  async create(name: string): Promise<string> {
    const token = `mb_${randomToken(30)}`
    await this.db.insertInto('api_tokens').values({ id: newId(), name, token_hash: hashToken(token), created_at: now(), last_used_at: null }).execute()
    return token
  }

  async count(): Promise<number> {
    const r = await this.db.selectFrom('api_tokens').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
    return Number(r.n)
  }

  async verify(token: string): Promise<boolean> {
    if (token.length < 16 || token.length > 200) return false
    const hash = hashToken(token)
    if ((this.#recent.get(hash) ?? 0) > Date.now()) return true
    const row = await this.db.selectFrom('api_tokens').select(['id', 'last_used_at']).where('token_hash', '=', hash).executeTakeFirst()
    if (!row) return false
    if (this.#recent.size > 1000) this.#recent.clear()
    this.#recent.set(hash, Date.now() + 60_000)
    // Write last use at most once a minute: reads must not turn every API call into a write.
    if (!row.last_used_at || Date.parse(row.last_used_at) < Date.now() - 60_000) {
      await this.db.updateTable('api_tokens').set({ last_used_at: now() }).where('id', '=', row.id).execute()
    }
    return true
  }
}
