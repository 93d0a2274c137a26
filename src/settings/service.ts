import { EventEmitter } from 'node:events'
import type { Kysely } from 'kysely'
import type { SecretBox } from '../crypto/secret-box.ts'
import { SECRET_SETTINGS } from '../crypto/sealed-columns.ts'
import { Secret } from '../crypto/secret.ts'
import type { DB } from '../db/index.ts'
import { now } from '../db/index.ts'
import { invalid } from '../errors.ts'
import { isEmailAddress } from '../mail-address.ts'
import { CLOUD_IDS, defaultMicrosoftEndpoint, isCloud, type Cloud } from '../oauth/clouds.ts'

/** Defaults of the parameters Mailbridge reads; a stored parameter overrides its default. */
export const parameterDefaults: Record<string, string> = {
  // Follows the national cloud (settings) when not set: see SettingsService.parameter().
  'microsoft_outlook.endpoint': defaultMicrosoftEndpoint('global'),
  'google_gmail.auth_endpoint': 'https://accounts.google.com/o/oauth2/v2/auth',
  'google_gmail.token_endpoint': 'https://oauth2.googleapis.com/token',
}

/** An https URL, so a test may point a provider's endpoint at an emulator (and nothing may downgrade it). */
function httpsUrl(key: string, value: string, example: string): URL {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw invalid('value', `${key} must be a URL such as ${example}`)
  }
  if (url.protocol !== 'https:') throw invalid('value', `${key} must use https://`)
  return url
}

const KEY = /^[A-Za-z0-9_.-]{1,200}$/

/** Checks for the parameters whose meaning Mailbridge knows; others are stored as given. */
function checkParameter(key: string, value: string): string {
  if (value.length > 10_000) throw invalid('value', 'A parameter value is at most 10,000 characters.')
  if (key === 'microsoft_outlook.endpoint') {
    httpsUrl(key, value, 'https://login.microsoftonline.com/<tenant id>/oauth2/v2.0/')
    return value.endsWith('/') ? value : value + '/'
  }
  if (key === 'google_gmail.auth_endpoint' || key === 'google_gmail.token_endpoint') {
    httpsUrl(key, value, parameterDefaults[key]!)
    return value
  }
  if (key === 'mail.force.smtp.from' && value !== '' && !isEmailAddress(value)) {
    throw invalid('value', 'mail.force.smtp.from must be one e-mail address, such as the Outlook username (alice@contoso.com).')
  }
  return value
}

export interface SettingsView {
  external_email_servers: boolean
  microsoft_outlook_client_id: string
  microsoft_outlook_client_secret_set: boolean
  microsoft_outlook_client_secret_expires_at: string | null
  microsoft_outlook_cloud: Cloud
  google_gmail_client_id: string
  google_gmail_client_secret_set: boolean
}

export interface SettingsPatch {
  external_email_servers?: boolean
  microsoft_outlook_client_id?: string
  microsoft_outlook_client_secret?: string | null
  microsoft_outlook_client_secret_expires_at?: string | null
  microsoft_outlook_cloud?: Cloud
  google_gmail_client_id?: string
  google_gmail_client_secret?: string | null
}

/** The providers' app credentials: `{prefix}_client_id` and the sealed, write-only `{prefix}_client_secret`. */
export const CREDENTIAL_PREFIXES = ['microsoft_outlook', 'google_gmail'] as const
const CLIENT_ID_HINT: Record<(typeof CREDENTIAL_PREFIXES)[number], string> = {
  microsoft_outlook: 'The Client ID is the Application (client) ID from the app\'s Overview page in Azure, a GUID.',
  google_gmail: 'The Client ID is the OAuth client\'s ID from Google Cloud console (…apps.googleusercontent.com).',
}

const SECRET_KEYS = new Set<string>(SECRET_SETTINGS)

/** Settings (the admin page) and parameters (key → value), both small key-value tables. */
export class SettingsService {
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

  async #put(key: string, value: string | null): Promise<void> {
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

  async get(key: string): Promise<string | undefined> {
    if (SECRET_KEYS.has(key)) throw new Error(`${key} is a secret: use secret()`)
    return this.#raw(key)
  }

  async set(key: string, value: string | null): Promise<void> {
    await this.#put(key, value)
  }

  async secret(key: string): Promise<Secret | null> {
    return this.box.openOrNull(await this.#raw(key), `settings.${key}`)
  }

  async #cloud(): Promise<Cloud> {
    const v = await this.#raw('microsoft_outlook_cloud')
    return isCloud(v) ? v : 'global'
  }

  async view(): Promise<SettingsView> {
    return {
      external_email_servers: (await this.#raw('external_email_servers')) === '1',
      microsoft_outlook_client_id: (await this.#raw('microsoft_outlook_client_id')) ?? '',
      microsoft_outlook_client_secret_set: (await this.#raw('microsoft_outlook_client_secret')) !== undefined,
      microsoft_outlook_client_secret_expires_at: (await this.#raw('microsoft_outlook_client_secret_expires_at')) ?? null,
      microsoft_outlook_cloud: await this.#cloud(),
      google_gmail_client_id: (await this.#raw('google_gmail_client_id')) ?? '',
      google_gmail_client_secret_set: (await this.#raw('google_gmail_client_secret')) !== undefined,
    }
  }

  /** Refuse a patch whose values are malformed (400 naming the field), before anything is saved or sent to a provider. */
  check(patch: SettingsPatch): void {
    for (const prefix of CREDENTIAL_PREFIXES) {
      const id = patch[`${prefix}_client_id`]?.trim()
      if (id !== undefined && id !== '' && !/^[0-9a-fA-F-]{36}$/.test(id) && !/^[\w.-]{1,200}$/.test(id)) throw invalid(`${prefix}_client_id`, CLIENT_ID_HINT[prefix])
      const secret = patch[`${prefix}_client_secret`]
      if (secret !== undefined && secret !== null && /[\r\n]/.test(secret)) {
        throw invalid(`${prefix}_client_secret`, 'The Client Secret is one line: paste the secret\'s value as the console shows it.')
      }
    }
    const expires = patch.microsoft_outlook_client_secret_expires_at
    if (expires !== undefined && expires !== null && Number.isNaN(Date.parse(expires))) {
      throw invalid('microsoft_outlook_client_secret_expires_at', 'Give the secret\'s expiry as a date, such as 2028-11-27.')
    }
    const cloud = patch.microsoft_outlook_cloud
    if (cloud !== undefined && !isCloud(cloud)) throw invalid('microsoft_outlook_cloud', `The cloud is one of ${CLOUD_IDS.join(', ')}.`)
  }

  async update(patch: SettingsPatch): Promise<SettingsView> {
    // Check everything first, so a refused patch changes nothing.
    this.check(patch)
    const expires = patch.microsoft_outlook_client_secret_expires_at
    const cloud = patch.microsoft_outlook_cloud
    if (patch.external_email_servers !== undefined) await this.#put('external_email_servers', patch.external_email_servers ? '1' : '0')
    for (const prefix of CREDENTIAL_PREFIXES) {
      const id = patch[`${prefix}_client_id`]?.trim()
      if (id !== undefined) await this.#put(`${prefix}_client_id`, id === '' ? null : id)
      const secret = patch[`${prefix}_client_secret`]
      if (secret !== undefined) {
        const trimmed = secret?.trim()
        await this.#put(`${prefix}_client_secret`, trimmed ? this.box.seal(new Secret(trimmed), `settings.${prefix}_client_secret`) : null)
      }
    }
    if (expires !== undefined) await this.#put('microsoft_outlook_client_secret_expires_at', expires && new Date(expires).toISOString())
    if (cloud !== undefined) await this.#put('microsoft_outlook_cloud', cloud)
    return this.view()
  }

  async parameter(key: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('parameters').select('value').where('key', '=', key).executeTakeFirst()
    if (row) return row.value
    // The login host changes with the national cloud; a stored endpoint (a tenant, an emulator) still wins.
    if (key === 'microsoft_outlook.endpoint') return defaultMicrosoftEndpoint(await this.#cloud())
    return parameterDefaults[key]
  }

  async listParameters(): Promise<Array<{ key: string; value: string }>> {
    return this.db.selectFrom('parameters').select(['key', 'value']).orderBy('key').execute()
  }

  async setParameter(key: string, value: string): Promise<{ key: string; value: string }> {
    if (!KEY.test(key)) throw invalid('key', 'A parameter key is 1–200 letters, digits, dots, dashes or underscores, such as mail.force.smtp.from.')
    const checked = checkParameter(key, value)
    const at = now()
    await this.db
      .insertInto('parameters')
      .values({ key, value: checked, updated_at: at })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value: checked, updated_at: at }))
      .execute()
    this.changed.emit('change')
    return { key, value: checked }
  }

  async deleteParameter(key: string): Promise<boolean> {
    const r = await this.db.deleteFrom('parameters').where('key', '=', key).executeTakeFirst()
    this.changed.emit('change')
    return r.numDeletedRows > 0n
  }
}
