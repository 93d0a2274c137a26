import type { AuditEntry, Actor } from '../access/audit-log.ts'
import { CertificateError, readClientCertificate, type ClientCertificate } from '../crypto/client-certificate.ts'
import type { Secret } from '../crypto/secret.ts'
import { MailbridgeError } from '../errors.ts'
import type { TrustedHosts } from '../host-policy.ts'
import type { Logger } from '../log.ts'
import type { SecretSetting, SettingsStore } from '../settings-store.ts'
import { CLOUD_SETTING, cloudOf, type Cloud } from './clouds.ts'
import { checkEndpointHost } from './endpoint-hosts.ts'
import { ProviderError, type ClientAuth } from './protocol.ts'
import type { Endpoints, ProviderSpec } from './providers.ts'

/** A client id, secret or certificate not saved yet, to be tried with the provider first. */
export interface ClientCandidate {
  clientId?: string
  clientSecret?: Secret
  certificate?: ClientCertificate
}

/**
 * The refusals of a client secret that its successor may cure: expired (AADSTS7000222) or not the app's
 * (AADSTS7000215, which is also what a deleted secret gets).
 * @see https://learn.microsoft.com/entra/identity-platform/reference-error-codes
 */
const ROLLOVER_CODES = new Set([7000222, 7000215])

export const refusedSecret = (e: unknown): e is ProviderError => e instanceof ProviderError && e.error === 'invalid_client' && ROLLOVER_CODES.has(e.aadsts ?? 0)

/** A provider's app as configured here: its client, its endpoints and scopes in the chosen cloud. */
export interface ProviderClient extends ClientAuth {
  endpoints: Endpoints
  scopes: string[]
  refreshScopes: string[] | null
  cloud: Cloud
}

/** The providers' apps as the settings configure them (Client ID and Secret, endpoints, national cloud). */
export class ProviderClients {
  constructor(
    private readonly deps: {
      settings: SettingsStore
      /** How long one token request may take (MAILBRIDGE_TOKEN_TIMEOUT_S). */
      tokenTimeoutMs?: number
      trustedHosts: TrustedHosts
      log: Logger
      /** Where a secret rollover is recorded for the admin (the audit log). */
      audit?: { record(actor: Actor, entry: AuditEntry): Promise<void> }
    },
  ) {}

  /** The national cloud a provider runs in (Microsoft's setting; 'global' for the others). */
  async cloud(p: ProviderSpec): Promise<Cloud> {
    return cloudOf(p.cloudAware ? await this.deps.settings.get(CLOUD_SETTING) : undefined)
  }

  /**
   * The app's client id and its secret or certificate, endpoints and scopes, or a clear refusal naming what to fill
   * in. A stored certificate wins over the secret, which is then not sent. `candidate`: an id, secret or
   * certificate about to be saved, used instead of the stored ones.
   */
  async client(p: ProviderSpec, o: { tenant?: string | null; candidate?: ClientCandidate } = {}): Promise<ProviderClient> {
    const { settings } = this.deps
    const c = o.candidate
    const clientId = c?.clientId || (await settings.get(`${p.settingsPrefix}_client_id`))
    const certificate = c?.clientSecret ? null : (c?.certificate ?? (await this.#storedCertificate(p)))
    const clientSecret = certificate ? null : (c?.clientSecret ?? (await settings.secret(`${p.settingsPrefix}_client_secret`)))
    if (!clientId || (!clientSecret && !certificate)) throw new MailbridgeError('credentials_missing', { provider: p.credentialsLabel })
    if (p.needsTenant && !o.tenant) throw new MailbridgeError('conflict', { message: `${p.article} ${p.label} server needs its Tenant ID (the Directory (tenant) ID from the app's Overview page in Azure).` })
    const cloud = await this.cloud(p)
    const values: Record<string, string> = {}
    for (const param of p.endpointParams) {
      const value = (await settings.parameter(param.key)) ?? param.default(cloud)
      // Again at use: a value stored before the rule, or for another cloud, must not receive the secret.
      checkEndpointHost(param, new URL(value), cloud, this.deps.trustedHosts, (message) => new MailbridgeError('untrusted_host', { message }))
      values[param.key] = value
    }
    return {
      clientId,
      clientSecret,
      certificate,
      endpoints: p.endpoints(values, { tenant: o.tenant ?? null }),
      scopes: p.scopes(cloud),
      refreshScopes: p.refreshScopes(cloud),
      cloud,
      timeoutMs: this.deps.tokenTimeoutMs,
    }
  }

  async #storedCertificate(p: ProviderSpec): Promise<ClientCertificate | null> {
    if (!p.clientCertificate) return null
    const pem = await this.deps.settings.secret(`${p.settingsPrefix}_client_certificate`)
    if (!pem) return null
    try {
      return readClientCertificate(pem.reveal())
    } catch (e) {
      // Checked when saved; what fails now is time: the certificate expired.
      if (e instanceof CertificateError) throw new MailbridgeError('token_error', { message: `The ${p.credentialsLabel} client certificate: ${e.message}` })
      throw e
    }
  }

  /**
   * One token request with the app's credentials. When the provider refuses the current secret as expired or
   * wrong and a next secret is stored, the request is made again with it and, if that works, the next secret is
   * promoted (current := next, next := none, one transaction; one node wins) and the admin told: the log, the
   * audit log and the banner. A secret another node promoted meanwhile is simply used.
   */
  async withClient<T>(p: ProviderSpec, o: { tenant?: string | null; candidate?: ClientCandidate; log?: Logger }, request: (client: ProviderClient) => Promise<T>): Promise<T> {
    const client = await this.client(p, o)
    try {
      return await request(client)
    } catch (e) {
      const used = client.clientSecret
      if (!refusedSecret(e) || o.candidate || !used || !p.secretRollover) throw e
      const { settings } = this.deps
      const log = o.log ?? this.deps.log
      const current = await settings.secret(`${p.settingsPrefix}_client_secret`)
      if (current && current.reveal() !== used.reveal()) return request({ ...client, clientSecret: current })
      const next = await settings.secret(`${p.settingsPrefix}_client_secret_next`)
      if (!next) throw e
      let result: T
      try {
        result = await request({ ...client, clientSecret: next })
      } catch (e2) {
        log.warn({ err_code: e.shortCode, next_err_code: e2 instanceof ProviderError ? e2.shortCode : 'error' }, 'client secret refused, and the next secret too')
        throw e
      }
      await this.#promote(p, next, e.shortCode, log)
      return result
    }
  }

  async #promote(p: ProviderSpec, next: Secret, refused: string, log: Logger): Promise<void> {
    const { settings } = this.deps
    const prefix = p.settingsPrefix
    // Only providers with secretRollover get here, and each of their keys is a sealed setting.
    const promoted = await settings.promoteSecret({
      from: `${prefix}_client_secret_next` as SecretSetting,
      to: `${prefix}_client_secret`,
      expected: next,
      moves: [[`${prefix}_client_secret_next_expires_at`, `${prefix}_client_secret_expires_at`]],
    })
    // Another node promoted it first: its warning is the one on record.
    if (!promoted) return
    await settings.set(`${prefix}_client_secret_promoted_at`, new Date().toISOString())
    log.warn({ err_code: refused }, `${p.company} refused the ${p.credentialsLabel} Client Secret (${refused}): the next secret worked and is now the current one. Add a new next secret in General Settings.`)
    try {
      await this.deps.audit?.record({ type: 'anonymous', name: 'token request' }, { action: 'settings.client_secret_promoted', target: `${prefix}_client_secret`, detail: { refused } })
    } catch (err) {
      log.error({ err }, 'audit entry of the secret rollover not written')
    }
  }
}
