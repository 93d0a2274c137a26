import { EventEmitter } from 'node:events'
import type { Kysely } from 'kysely'
import type { SecretBox } from './crypto/secret-box.ts'
import { SECRET_SETTINGS } from './crypto/sealed-columns.ts'
import type { Secret } from './crypto/secret.ts'
import { type DB, now } from './db/index.ts'

const SECRET_KEYS = new Set<string>(SECRET_SETTINGS)

/**
 * Settings and system parameters as stored: two key → value tables, the secret settings sealed. It sits below
 * oauth/ and the features, which read it; it knows no provider and checks no value: what a value may be is the
 * settings page's rule (settings/service.ts), and a provider's default endpoints are its spec's (oauth/providers.ts).
 */
export class SettingsStore {
  /** 'change' after a parameter is set or deleted. */
  readonly changed = new EventEmitter()

  constructor(
    private readonly db: Kysely<DB>,
    private readonly box: SecretBox,
  ) {}

  async #raw(key: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst()
    return row?.value
  }

  /** A setting that is not a secret. */
  async get(key: string): Promise<string | undefined> {
    if (SECRET_KEYS.has(key)) throw new Error(`${key} is a secret: use secret()`)
    return this.#raw(key)
  }

  /** Whether a setting has a value, without opening it (a secret's `_set` flag). */
  async has(key: string): Promise<boolean> {
    return (await this.#raw(key)) !== undefined
  }

  /** Store a setting; null deletes it. */
  async set(key: string, value: string | null): Promise<void> {
    if (value === null) {
      await this.db.deleteFrom('settings').where('key', '=', key).execute()
      return
    }
    await this.db
      .insertInto('settings')
      .values({ key, value })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
      .execute()
  }

  async secret(key: string): Promise<Secret | null> {
    return this.box.openOrNull(await this.#raw(key), `settings.${key}`)
  }

  /** Seal and store a secret setting; null deletes it. */
  async setSecret(key: (typeof SECRET_SETTINGS)[number], value: Secret | null): Promise<void> {
    await this.set(key, value && this.box.seal(value, `settings.${key}`))
  }

  /** A parameter's stored value; undefined when it is not set (a provider's spec may give a default). */
  async parameter(key: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('parameters').select('value').where('key', '=', key).executeTakeFirst()
    return row?.value
  }

  async listParameters(): Promise<Array<{ key: string; value: string }>> {
    return this.db.selectFrom('parameters').select(['key', 'value']).orderBy('key').execute()
  }

  /** Store a parameter as given; settings/service.ts checks it first. */
  async putParameter(key: string, value: string): Promise<void> {
    const at = now()
    await this.db
      .insertInto('parameters')
      .values({ key, value, updated_at: at })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value, updated_at: at }))
      .execute()
    this.changed.emit('change')
  }

  async deleteParameter(key: string): Promise<boolean> {
    const r = await this.db.deleteFrom('parameters').where('key', '=', key).executeTakeFirst()
    this.changed.emit('change')
    return r.numDeletedRows > 0n
  }
}
