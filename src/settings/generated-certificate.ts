import { publicCertificatePem, readClientCertificate } from '../crypto/client-certificate.ts'
import { Secret } from '../crypto/secret.ts'
import { createSelfSigned } from '../crypto/self-signed.ts'
import { MailbridgeError } from '../errors.ts'
import type { CredentialService } from '../oauth/credentials.ts'
import { updateCheckingSecrets } from './checked-update.ts'
import type { SettingsService, SettingsView } from './service.ts'

const PENDING = 'microsoft_outlook_client_certificate_pending'

/** A certificate Mailbridge made and keeps until it is used: the public part for Azure, its facts for the page. */
export interface PendingCertificate {
  certificatePem: string
  thumbprint: string
  expiresAt: string
}

/** Azure lets a certificate credential last up to the admin; two years matches the longest secret. */
export const DEFAULT_CERTIFICATE_DAYS = 730

/**
 * Make a key and a self-signed certificate for the Outlook app and keep them sealed as the pending certificate,
 * not in use yet: token requests keep their present credentials until the certificate is uploaded to Azure and
 * chosen (usePendingCertificate), else every mailbox would fail with AADSTS700027 in between. Generating again
 * replaces a pending one.
 */
export async function generateCertificate(settings: SettingsService, o: { subject?: string; days?: number } = {}): Promise<PendingCertificate> {
  const made = await createSelfSigned({ subject: o.subject ?? 'Mailbridge', days: o.days ?? DEFAULT_CERTIFICATE_DAYS })
  await settings.setSecret(PENDING, new Secret(made.certificatePem + made.privateKeyPem))
  return (await pendingCertificate(settings))!
}

export async function pendingCertificate(settings: SettingsService): Promise<PendingCertificate | undefined> {
  const pem = await settings.secret(PENDING)
  if (!pem) return undefined
  const c = readClientCertificate(pem.reveal())
  return { certificatePem: publicCertificatePem(pem.reveal()), thumbprint: c.thumbprint, expiresAt: c.expiresAt.toISOString() }
}

/**
 * Use the pending certificate: it is tried with Microsoft like a pasted one (a connected mailbox refreshed with an
 * assertion it signed) and saved only if accepted, then it is no longer pending.
 */
export async function usePendingCertificate(deps: { settings: SettingsService; credentials: CredentialService }): Promise<SettingsView & { microsoft_outlook_client_certificate_check?: { result: 'accepted' | 'unchecked'; message: string } }> {
  const pem = await deps.settings.secret(PENDING)
  if (!pem) throw new MailbridgeError('conflict', { message: 'No generated certificate waits to be used: click Generate a certificate first.' })
  const saved = await updateCheckingSecrets(deps, { microsoft_outlook_client_certificate: pem.reveal() })
  await deps.settings.setSecret(PENDING, null)
  return saved
}
