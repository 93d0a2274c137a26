import { Secret } from '../crypto/secret.ts'
import { MailbridgeError } from '../errors.ts'
import type { ClientCheck } from '../oauth/client-check.ts'
import type { CredentialService } from '../oauth/credentials.ts'
import { credentialProviders, type ProviderSpec } from '../oauth/providers.ts'
import type { SettingsPatch, SettingsService, SettingsView } from './service.ts'

/** What the check of each new client secret found; absent for a provider whose secret the patch left alone. */
export type SecretChecks = Partial<Record<`${ProviderSpec['settingsPrefix']}_client_secret_check`, { result: 'accepted' | 'unchecked'; message: string }>>

/**
 * Save settings, trying each new client secret with its provider first. A secret the provider refuses is not
 * saved, and nor is the rest of the patch: the stored secret keeps every mailbox working, where saving a wrong
 * one would break them all at the next refresh, an hour later.
 */
export async function updateCheckingSecrets(deps: { settings: SettingsService; credentials: CredentialService }, patch: SettingsPatch): Promise<SettingsView & SecretChecks> {
  // A malformed value is refused as such (400), not sent to the provider to be refused there.
  deps.settings.check(patch)
  const checks: SecretChecks = {}
  for (const { settingsPrefix: prefix } of credentialProviders()) {
    const secret = patch[`${prefix}_client_secret`]?.trim()
    if (!secret) continue
    const check: ClientCheck = await deps.credentials.checkClient(prefix, { clientId: patch[`${prefix}_client_id`]?.trim(), clientSecret: new Secret(secret) })
    if (check.result === 'refused') {
      throw new MailbridgeError('client_secret_refused', { field: `${prefix}_client_secret`, company: check.company, code: check.code, mailbox: check.mailbox, action: check.message })
    }
    checks[`${prefix}_client_secret_check`] = { result: check.result, message: check.message }
  }
  return { ...(await deps.settings.update(patch)), ...checks }
}
