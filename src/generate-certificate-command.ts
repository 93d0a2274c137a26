import { writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { loadConfig } from './config.ts'
import { loadOrCreateKeys } from './crypto/key-file.ts'
import { SecretBox } from './crypto/secret-box.ts'
import { migrate, openDatabase } from './db/index.ts'
import { TrustedHosts } from './host-policy.ts'
import { DEFAULT_CERTIFICATE_DAYS, generateCertificate } from './settings/generated-certificate.ts'
import { SettingsService } from './settings/service.ts'

/** Why a command-line value was refused (exit 2, as for an unknown option). */
export class UsageError extends Error {}

/**
 * `mailbridge generate-certificate`: a key and a self-signed certificate for the Outlook app, the key sealed in
 * the database as the pending certificate and the public certificate written to `out`, for Azure. Nothing uses it
 * until the admin clicks Use this certificate (General Settings), after uploading it.
 */
export async function generateCertificateCommand(values: { out?: string; days?: string; subject?: string }, out: (line: string) => void): Promise<void> {
  const days = Number(values.days ?? DEFAULT_CERTIFICATE_DAYS)
  if (!Number.isInteger(days) || days < 1 || days > 3650) throw new UsageError(`--days must be a whole number of days from 1 to 3650, got "${values.days}"`)
  const subject = values.subject ?? 'Mailbridge'
  if (!/^[\w .,@()-]{1,64}$/.test(subject)) throw new UsageError('--subject is the certificate\'s common name: 1–64 letters, digits, spaces and . , @ ( ) - _')
  const file = resolve(values.out ?? 'mailbridge-outlook.cer')
  const config = loadConfig()
  const { keys } = loadOrCreateKeys(config.dataDir, config.secretKeys, { create: true })
  const database = openDatabase(config.databaseUrl)
  try {
    await migrate(database.db, database.schema)
    const settings = new SettingsService(database.db, new SecretBox(keys), new TrustedHosts(config.trustedHosts))
    const made = await generateCertificate(settings, { subject, days })
    writeFileSync(file, made.certificatePem)
    out(`Generated a certificate for the Outlook app: CN=${subject}, thumbprint ${made.thumbprint}, expires ${made.expiresAt.slice(0, 10)}.`)
    out(`Its private key is stored encrypted in Mailbridge's database; the public certificate is in ${file}.`)
    out('1. Azure → App registrations → your app → Certificates & secrets → Certificates → Upload certificate: choose that file.')
    out('2. Mailbridge → Settings → General Settings → Use this certificate (Mailbridge tries it with Microsoft first).')
  } finally {
    await database.close()
  }
}
