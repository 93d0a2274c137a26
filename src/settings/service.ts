import type { Kysely } from 'kysely'
import type { SecretBox } from '../crypto/secret-box.ts'
import { CertificateError, readClientCertificate, type ClientCertificate } from '../crypto/client-certificate.ts'
import { Secret } from '../crypto/secret.ts'
import type { DB } from '../db/index.ts'
import { invalid } from '../errors.ts'
import { TrustedHosts } from '../host-policy.ts'
import { isEmailAddress } from '../mail-address.ts'
import { CLOUD_IDS, CLOUD_SETTING, cloudOf, isCloud, type Cloud } from '../oauth/clouds.ts'
import { checkEndpointHost } from '../oauth/endpoint-hosts.ts'
import { credentialProviders, endpointParam } from '../oauth/providers.ts'
import { SettingsStore } from '../settings-store.ts'

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

/**
 * Checks for the parameters whose meaning Mailbridge knows; others are stored as given. A provider endpoint names
 * one of the provider's hosts in the chosen cloud, or a trusted one: the client secret and every refresh token are
 * POSTed there, and the admin signs in there (design.md §10).
 */
function checkParameter(key: string, value: string, o: { cloud: Cloud; trusted: TrustedHosts }): string {
  if (value.length > 10_000) throw invalid('value', 'A parameter value is at most 10,000 characters.')
  const endpoint = endpointParam(key)
  if (endpoint) {
    const url = httpsUrl(key, value, endpoint.example ?? endpoint.default('global'))
    checkEndpointHost(endpoint, url, o.cloud, o.trusted, (message) => invalid('value', message))
    return endpoint.base && !value.endsWith('/') ? value + '/' : value
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
  microsoft_outlook_client_secret_next_set: boolean
  microsoft_outlook_client_secret_next_expires_at: string | null
  /** When Microsoft last refused the secret and the next one took over; cleared when a new next secret is saved. */
  microsoft_outlook_client_secret_promoted_at: string | null
  microsoft_outlook_client_certificate_set: boolean
  microsoft_outlook_client_certificate_thumbprint: string | null
  microsoft_outlook_client_certificate_expires_at: string | null
  microsoft_outlook_cloud: Cloud
  google_gmail_client_id: string
  google_gmail_client_secret_set: boolean
}

export interface SettingsPatch {
  external_email_servers?: boolean
  microsoft_outlook_client_id?: string
  microsoft_outlook_client_secret?: string | null
  microsoft_outlook_client_secret_expires_at?: string | null
  microsoft_outlook_client_secret_next?: string | null
  microsoft_outlook_client_secret_next_expires_at?: string | null
  /** PEM: the certificate and its private key; null removes it (the secret is used again). */
  microsoft_outlook_client_certificate?: string | null
  microsoft_outlook_cloud?: Cloud
  google_gmail_client_id?: string
  google_gmail_client_secret?: string | null
}

/**
 * The settings page's rules (General Settings, System Parameters, and their API): what a value may be, how the
 * page shows them, and a parameter's value in effect. Above oauth/, whose providers and clouds it knows; the
 * store it extends is below.
 */
export class SettingsService extends SettingsStore {
  constructor(
    db: Kysely<DB>,
    box: SecretBox,
    /** MAILBRIDGE_TRUSTED_HOSTS: hosts an endpoint parameter may name beside the provider's. */
    readonly trustedHosts = new TrustedHosts(),
  ) {
    super(db, box)
  }

  async view(): Promise<SettingsView> {
    return {
      external_email_servers: (await this.get('external_email_servers')) === '1',
      microsoft_outlook_client_id: (await this.get('microsoft_outlook_client_id')) ?? '',
      microsoft_outlook_client_secret_set: await this.has('microsoft_outlook_client_secret'),
      microsoft_outlook_client_secret_expires_at: (await this.get('microsoft_outlook_client_secret_expires_at')) ?? null,
      microsoft_outlook_client_secret_next_set: await this.has('microsoft_outlook_client_secret_next'),
      microsoft_outlook_client_secret_next_expires_at: (await this.get('microsoft_outlook_client_secret_next_expires_at')) ?? null,
      microsoft_outlook_client_secret_promoted_at: (await this.get('microsoft_outlook_client_secret_promoted_at')) ?? null,
      microsoft_outlook_client_certificate_set: await this.has('microsoft_outlook_client_certificate'),
      microsoft_outlook_client_certificate_thumbprint: (await this.get('microsoft_outlook_client_certificate_thumbprint')) ?? null,
      microsoft_outlook_client_certificate_expires_at: (await this.get('microsoft_outlook_client_certificate_expires_at')) ?? null,
      microsoft_outlook_cloud: cloudOf(await this.get(CLOUD_SETTING)),
      google_gmail_client_id: (await this.get('google_gmail_client_id')) ?? '',
      google_gmail_client_secret_set: await this.has('google_gmail_client_secret'),
    }
  }

  /** Refuse a patch whose values are malformed (400 naming the field), before anything is saved or sent to a provider. */
  check(patch: SettingsPatch): void {
    for (const { settingsPrefix: prefix, clientIdHint } of credentialProviders()) {
      const id = patch[`${prefix}_client_id`]?.trim()
      if (id !== undefined && id !== '' && !/^[0-9a-fA-F-]{36}$/.test(id) && !/^[\w.-]{1,200}$/.test(id)) throw invalid(`${prefix}_client_id`, clientIdHint)
      const secret = patch[`${prefix}_client_secret`]
      if (secret !== undefined && secret !== null && /[\r\n]/.test(secret)) {
        throw invalid(`${prefix}_client_secret`, 'The Client Secret is one line: paste the secret\'s value as the console shows it.')
      }
    }
    for (const field of ['microsoft_outlook_client_secret_expires_at', 'microsoft_outlook_client_secret_next_expires_at'] as const) {
      const expires = patch[field]
      if (expires !== undefined && expires !== null && Number.isNaN(Date.parse(expires))) throw invalid(field, 'Give the secret\'s expiry as a date, such as 2028-11-27.')
    }
    const next = patch.microsoft_outlook_client_secret_next
    if (next !== undefined && next !== null && /[\r\n]/.test(next)) {
      throw invalid('microsoft_outlook_client_secret_next', 'The next Client Secret is one line: paste the secret\'s value as the console shows it.')
    }
    if (patch.microsoft_outlook_client_certificate) this.certificateOf(patch)
    const cloud = patch.microsoft_outlook_cloud
    if (cloud !== undefined && !isCloud(cloud)) throw invalid('microsoft_outlook_cloud', `The cloud is one of ${CLOUD_IDS.join(', ')}.`)
  }

  /** The certificate credential a patch gives, read and checked (400 naming the field when it cannot serve). */
  certificateOf(patch: SettingsPatch): ClientCertificate | undefined {
    const pem = patch.microsoft_outlook_client_certificate
    if (!pem) return undefined
    try {
      return readClientCertificate(pem)
    } catch (e) {
      if (e instanceof CertificateError) throw invalid('microsoft_outlook_client_certificate', e.message)
      throw e
    }
  }

  async update(patch: SettingsPatch): Promise<SettingsView> {
    // Check everything first, so a refused patch changes nothing.
    this.check(patch)
    await this.#updateAppCredentials(patch)
    const expires = patch.microsoft_outlook_client_secret_expires_at
    const cloud = patch.microsoft_outlook_cloud
    if (patch.external_email_servers !== undefined) await this.set('external_email_servers', patch.external_email_servers ? '1' : '0')
    for (const { settingsPrefix: prefix } of credentialProviders()) {
      const id = patch[`${prefix}_client_id`]?.trim()
      if (id !== undefined) await this.set(`${prefix}_client_id`, id === '' ? null : id)
      const secret = patch[`${prefix}_client_secret`]
      if (secret !== undefined) {
        const trimmed = secret?.trim()
        await this.setSecret(`${prefix}_client_secret`, trimmed ? new Secret(trimmed) : null)
      }
    }
    if (expires !== undefined) await this.set('microsoft_outlook_client_secret_expires_at', expires && new Date(expires).toISOString())
    if (cloud !== undefined) await this.set(CLOUD_SETTING, cloud)
    return this.view()
  }

  /** The Outlook app's certificate and next secret; their public facts (thumbprint, expiry) beside them, unsealed. */
  async #updateAppCredentials(patch: SettingsPatch): Promise<void> {
    const cert = patch.microsoft_outlook_client_certificate
    if (cert !== undefined) {
      const read = this.certificateOf(patch)
      await this.setSecret('microsoft_outlook_client_certificate', read ? new Secret(cert!.trim() + '\n') : null)
      await this.set('microsoft_outlook_client_certificate_thumbprint', read?.thumbprint ?? null)
      await this.set('microsoft_outlook_client_certificate_expires_at', read?.expiresAt.toISOString() ?? null)
    }
    const next = patch.microsoft_outlook_client_secret_next
    if (next !== undefined) {
      const trimmed = next?.trim()
      await this.setSecret('microsoft_outlook_client_secret_next', trimmed ? new Secret(trimmed) : null)
      // A new next secret answers the banner that asked for one after a rollover.
      if (trimmed) await this.set('microsoft_outlook_client_secret_promoted_at', null)
    }
    const nextExpires = patch.microsoft_outlook_client_secret_next_expires_at
    if (nextExpires !== undefined) await this.set('microsoft_outlook_client_secret_next_expires_at', nextExpires && new Date(nextExpires).toISOString())
  }

  /** A parameter's value in effect: the stored one, or the default its provider's spec gives. */
  async parameterOrDefault(key: string): Promise<string | undefined> {
    // The login host changes with the national cloud; a stored endpoint (a tenant, an emulator) still wins.
    return (await this.parameter(key)) ?? endpointParam(key)?.default(cloudOf(await this.get(CLOUD_SETTING)))
  }

  async setParameter(key: string, value: string): Promise<{ key: string; value: string }> {
    if (!KEY.test(key)) throw invalid('key', 'A parameter key is 1–200 letters, digits, dots, dashes or underscores, such as mail.force.smtp.from.')
    const checked = checkParameter(key, value, { cloud: cloudOf(await this.get(CLOUD_SETTING)), trusted: this.trustedHosts })
    await this.putParameter(key, checked)
    return { key, value: checked }
  }
}
