import type { Logger } from '../log.ts'
import { type CredentialStore, isDead } from './credential-store.ts'
import type { ClientCandidate } from './provider-client.ts'
import { ProviderError } from './protocol.ts'
import { providers, type ProviderId, type ProviderSpec } from './providers.ts'
import type { TokenRefresher } from './token-refresh.ts'

/**
 * What a provider said of a client secret when a real token request carried it. `refused`: the provider
 * authenticated the app and said no (`invalid_client`, RFC 6749 §5.2); `unchecked`: nothing could prove it either way.
 */
export type ClientCheck =
  | { result: 'accepted'; mailbox: string; message: string }
  | { result: 'refused'; mailbox: string; company: string; code: string; message: string }
  | { result: 'unchecked'; message: string }

/**
 * Try a client secret (the current or the next one) or a certificate before it is saved: refresh one connected
 * mailbox of the app with it (or, for app-only access, request a token in its tenant). A wrong secret gets
 * AADSTS7000215, an expired one AADSTS7000222, a certificate Azure does not know AADSTS700027, all `invalid_client`;
 * a success saves the new tokens as any refresh does (refresh tokens rotate).
 * @see https://learn.microsoft.com/entra/identity-platform/reference-error-codes
 */
export async function checkClient(
  deps: { store: CredentialStore; refresher: TokenRefresher; log: Logger },
  prefix: ProviderSpec['settingsPrefix'],
  candidate: ClientCandidate,
): Promise<ClientCheck> {
  const ps = Object.values(providers).filter((p) => p.settingsPrefix === prefix)
  const label = ps[0]!.credentialsLabel
  const what = candidate.certificate ? 'client certificate' : 'Client Secret'
  for (const row of await deps.store.ofProviders(ps)) {
    const p = providers[row.provider as ProviderId]
    const usable = p.grant === 'client_credentials' ? row.tenant_id !== null : row.refresh_token !== null && !isDead(row)
    if (!usable || !(await deps.refresher.lease(row.id))) continue
    const log = deps.log.child({ provider: p.id, mailbox: row.mailbox })
    try {
      await deps.refresher.refresh(p, row.id, row.tenant_id, log, { candidate })
      log.info({ credential: candidate.certificate ? 'certificate' : 'secret' }, 'client credential checked: accepted')
      return { result: 'accepted', mailbox: row.mailbox, message: `${p.company} accepted the ${what}: a token request for ${row.mailbox} with it succeeded.` }
    } catch (e) {
      if (e instanceof ProviderError && e.error === 'invalid_client') {
        return { result: 'refused', mailbox: row.mailbox, company: p.company, code: e.shortCode, message: p.explain({ error: e.error, error_codes: e.aadsts ? [e.aadsts] : undefined }).action }
      }
      return { result: 'unchecked', message: `The ${what} could not be checked: the token request for ${row.mailbox} failed (${(e as Error).message}). Test Connection checks it again.` }
    }
  }
  return { result: 'unchecked', message: `No mailbox is connected with the ${label} Credentials yet: connecting one (or Test Connection) checks the ${what}.` }
}
