import { Secret } from '../crypto/secret.ts'
import { MailbridgeError } from '../errors.ts'
import type { ClientCheck } from '../oauth/client-check.ts'
import type { CredentialService } from '../oauth/credentials.ts'
import type { ClientCandidate } from '../oauth/provider-client.ts'
import { credentialProviders, type ProviderSpec } from '../oauth/providers.ts'
import type { SettingsPatch, SettingsService, SettingsView } from './service.ts'

/** What the check of each new client secret (or certificate) found; absent for one the patch left alone. */
export type SecretChecks = Partial<
  Record<`${ProviderSpec['settingsPrefix']}_client_secret_check` | 'microsoft_outlook_client_secret_next_check' | 'microsoft_outlook_client_certificate_check', { result: 'accepted' | 'unchecked'; message: string }>
>

/**
 * Save settings, trying each new client secret, next secret and certificate with its provider first. One the
 * provider refuses is not saved, and nor is the rest of the patch: the stored credentials keep every mailbox
 * working, where saving a wrong one would break them all at the next refresh, an hour later.
 */
export async function updateCheckingSecrets(deps: { settings: SettingsService; credentials: CredentialService }, patch: SettingsPatch): Promise<SettingsView & SecretChecks> {
  // A malformed value is refused as such (400), not sent to the provider to be refused there.
  deps.settings.check(patch)
  const checks: SecretChecks = {}
  const tryIt = async (prefix: ProviderSpec['settingsPrefix'], field: keyof SettingsPatch & string, candidate: ClientCandidate) => {
    const check: ClientCheck = await deps.credentials.checkClient(prefix, { clientId: patch[`${prefix}_client_id`]?.trim(), ...candidate })
    if (check.result === 'refused') {
      const code = candidate.certificate ? 'client_certificate_refused' : 'client_secret_refused'
      throw new MailbridgeError(code, { field, company: check.company, code: check.code, mailbox: check.mailbox, action: check.message })
    }
    checks[`${field}_check` as keyof SecretChecks] = { result: check.result, message: check.message }
  }
  for (const { settingsPrefix: prefix } of credentialProviders()) {
    const secret = patch[`${prefix}_client_secret`]?.trim()
    if (secret) await tryIt(prefix, `${prefix}_client_secret`, { clientSecret: new Secret(secret) })
  }
  const next = patch.microsoft_outlook_client_secret_next?.trim()
  if (next) await tryIt('microsoft_outlook', 'microsoft_outlook_client_secret_next', { clientSecret: new Secret(next) })
  const certificate = deps.settings.certificateOf(patch)
  if (certificate) await tryIt('microsoft_outlook', 'microsoft_outlook_client_certificate', { certificate })
  return { ...(await deps.settings.update(patch)), ...checks }
}
