import { EventEmitter } from 'node:events'
import type { Kysely } from 'kysely'
import type { SecretBox } from './crypto/secret-box.ts'
import { SECRET_SETTINGS } from './crypto/sealed-columns.ts'
import type { Secret } from './crypto/secret.ts'
import { type DB, now } from './db/index.ts'

const SECRET_KEYS = new Set<string>(SECRET_SETTINGS)

export type SecretSetting = (typeof SECRET_SETTINGS)[number]

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
  async setSecret(key: SecretSetting, value: Secret | null): Promise<void> {
    await this.set(key, value && this.box.seal(value, `settings.${key}`))
  }

  /**
   * Make the secret in `from` the one in `to`, if `from` still holds `expected`, and move each plain setting of
   * `moves` along (the secret's expiry date): one transaction, and one caller wins. The conditional DELETE is the
   * test: a second node promoting the same secret deletes nothing and changes nothing.
   */
  async promoteSecret(o: { from: SecretSetting; to: SecretSetting; expected: Secret; moves?: ReadonlyArray<readonly [from: string, to: string]> }): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      const raw = (await tx.selectFrom('settings').select('value').where('key', '=', o.from).executeTakeFirst())?.value
      const secret = this.box.openOrNull(raw, `settings.${o.from}`)
      if (!raw || !secret || secret.reveal() !== o.expected.reveal()) return false
      const taken = await tx.deleteFrom('settings').where('key', '=', o.from).where('value', '=', raw).executeTakeFirst()
      if (taken.numDeletedRows === 0n) return false
      const put = async (key: string, value: string | undefined) => {
        if (value === undefined) return void (await tx.deleteFrom('settings').where('key', '=', key).execute())
        await tx.insertInto('settings').values({ key, value }).onConflict((oc) => oc.column('key').doUpdateSet({ value })).execute()
      }
      await put(o.to, this.box.seal(secret, `settings.${o.to}`))
      for (const [from, to] of o.moves ?? []) {
        await put(to, (await tx.selectFrom('settings').select('value').where('key', '=', from).executeTakeFirst())?.value)
        await put(from, undefined)
      }
      return true
    })
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
