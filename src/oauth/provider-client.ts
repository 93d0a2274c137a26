import type { Secret } from '../crypto/secret.ts'
import { MailbridgeError } from '../errors.ts'
import type { TrustedHosts } from '../host-policy.ts'
import type { SettingsStore } from '../settings-store.ts'
import { CLOUD_SETTING, cloudOf, type Cloud } from './clouds.ts'
import { checkEndpointHost } from './endpoint-hosts.ts'
import type { ClientAuth } from './protocol.ts'
import type { Endpoints, ProviderSpec } from './providers.ts'

/** A client id and secret not saved yet, to be tried with the provider first. */
export interface ClientCandidate {
  clientId?: string
  clientSecret: Secret
}

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
    },
  ) {}

  /** The national cloud a provider runs in (Microsoft's setting; 'global' for the others). */
  async cloud(p: ProviderSpec): Promise<Cloud> {
    return cloudOf(p.cloudAware ? await this.deps.settings.get(CLOUD_SETTING) : undefined)
  }

  /**
   * The app's client id and secret, endpoints and scopes, or a clear refusal naming what to fill in. `candidate`:
   * an id or secret about to be saved, used instead of the stored one.
   */
  async client(p: ProviderSpec, o: { tenant?: string | null; candidate?: ClientCandidate } = {}): Promise<ProviderClient> {
    const { settings } = this.deps
    const clientId = o.candidate?.clientId || (await settings.get(`${p.settingsPrefix}_client_id`))
    const clientSecret = o.candidate?.clientSecret ?? (await settings.secret(`${p.settingsPrefix}_client_secret`))
    if (!clientId || !clientSecret) throw new MailbridgeError('credentials_missing', { provider: p.credentialsLabel })
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
      endpoints: p.endpoints(values, { tenant: o.tenant ?? null }),
      scopes: p.scopes(cloud),
      refreshScopes: p.refreshScopes(cloud),
      cloud,
      timeoutMs: this.deps.tokenTimeoutMs,
    }
  }
}
