import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { boot } from './boot.ts'
import { loadConfig } from './config.ts'
import { createLogger } from './log.ts'
import { runInline } from './roles.ts'
import { buildApp } from './web/app.ts'
// The sandbox is the one place src/ uses the test peers: `serve` never loads it (main.ts imports it lazily).
import { dovecotAvailable, startDovecot, type Dovecot } from '../test/support/dovecot.ts'
import { startIdentityEmulator } from '../test/support/identity-emulator.ts'
import { startSmtpPeer } from '../test/support/smtp-peer.ts'

const MAILBOXES = ['alice@contoso.com', 'bob@contoso.com']

/**
 * `mailbridge sandbox`: Mailbridge on a fresh database, pointed at the bundled Microsoft identity platform
 * emulator (its consent page has the guide's "Yes"), the XOAUTH2 SMTP peer standing in for
 * smtp.office365.com and, when Debian's Dovecot is installed, an IMAP server for incoming mail. Everything
 * runs on 127.0.0.1, so anyone can walk the seed guide offline. Needs NODE_EXTRA_CA_CERTS=test/support/tls/ca.pem
 * (the npm script sets it) so Mailbridge trusts the peers' test certificates.
 */
export async function sandbox(): Promise<void> {
  const port = Number(process.env.MAILBRIDGE_PORT || 8080)
  const baseUrl = `http://127.0.0.1:${port}`
  const dir = process.env.MAILBRIDGE_DATA_DIR || mkdtempSync(join(tmpdir(), 'mailbridge-sandbox-'))
  const ownDir = !process.env.MAILBRIDGE_DATA_DIR
  const config = loadConfig({
    ...process.env,
    MAILBRIDGE_PORT: String(port),
    MAILBRIDGE_HOST: '127.0.0.1',
    MAILBRIDGE_BASE_URL: baseUrl,
    MAILBRIDGE_DATABASE_URL: `sqlite:${join(dir, 'mailbridge.db')}`,
    MAILBRIDGE_DATA_DIR: dir,
  })
  const ms = await startIdentityEmulator()
  const smtp = await startSmtpPeer({ introspectUrl: ms.introspectUrl })
  let imap: Dovecot | undefined
  let imapNote = 'Dovecot is not installed (apt-get install dovecot-imapd, or .ci/install-peers.sh): no IMAP server for incoming mail.'
  if (dovecotAvailable()) {
    try {
      imap = await startDovecot({ introspectUrl: ms.introspectUrl })
      imapNote = `IMAP (Dovecot, XOAUTH2): host ${imap.host}, port ${imap.imapsPort} (SSL/TLS) or ${imap.imapPort} (STARTTLS)`
    } catch (e) {
      imapNote = `Dovecot did not start (${(e as Error).message.split('\n')[0]}): no IMAP server for incoming mail.`
    }
  }
  const clientId = randomUUID()
  const clientSecret = `Sbx8Q~${randomBytes(18).toString('base64url')}`
  ms.registerApp({ clientId, clientSecret, redirectUris: [`${baseUrl}/microsoft_outlook/confirm`], name: 'Mailbridge sandbox' })
  for (const m of MAILBOXES) ms.addUser(m)

  const log = createLogger(process.env.MAILBRIDGE_LOG_LEVEL || 'warn')
  const { services, firstStart } = await boot(config, log)
  await services.settings.setParameter('microsoft_outlook.endpoint', ms.endpoint())
  const background = runInline(services)
  const app = await buildApp(services, { smtpDefaults: { host: smtp.host, port: smtp.port } })
  await app.listen({ host: '127.0.0.1', port })

  const password = firstStart.adminPassword ?? (config.adminPassword ? '(MAILBRIDGE_ADMIN_PASSWORD)' : '(unchanged: this data folder was used before)')
  process.stdout.write(
    [
      '',
      'Mailbridge sandbox: everything below runs on this machine, nothing reaches Microsoft.',
      '',
      `  Admin UI         ${baseUrl}/admin   user admin, password ${password}`,
      `  Microsoft        ${ms.endpoint()} (emulator; parameter microsoft_outlook.endpoint already points here)`,
      `  SMTP             ${smtp.host}:${smtp.port} STARTTLS + XOAUTH2, standing in for smtp.office365.com`,
      `  ${imapNote}`,
      `  API token        ${firstStart.apiToken ?? '(MAILBRIDGE_API_TOKEN, or the one printed on the first run with this folder)'}`,
      `  Data             ${dir}${ownDir ? ' (deleted on exit)' : ''}`,
      '',
      'Walk the guide ("Setup in Odoo"):',
      '  1. Sign in, open Settings → General Settings; under Discuss tick "External Email Servers" and Save.',
      `  2. Under "Outlook Credentials" paste Client ID ${clientId}`,
      `     and Client Secret ${clientSecret}, then Save.`,
      '  3. Click "Outgoing Email Servers", then New. Keep "Outlook", type any Description and the Username',
      `     ${MAILBOXES[0]} (host and port are already the local SMTP peer).`,
      '  4. Click "Connect your Outlook account"; on the emulator\'s consent page click "Yes".',
      '  5. Back on the server: the green "Outlook Token Valid" tag. Click "Test Connection": "Connection Test Successful!"',
      '  6. Settings → Technical → System Parameters: add mail.force.smtp.from = the Username.',
      `  7. Send a mail: curl -s -X POST ${baseUrl}/api/v1/mail -H "Authorization: Bearer <API token>" -H 'content-type: application/json' \\`,
      `       -d '{"to": ["bob@fabrikam.com"], "subject": "Hello", "text": "Hi"}'   and watch it in Mail queue.`,
      `  Other mailboxes the emulator knows: ${MAILBOXES.slice(1).join(', ')}. Any other account is refused, as Microsoft would.`,
      '',
      'Ctrl+C stops everything.',
      '',
    ].join('\n'),
  )

  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    await app.close()
    await background.stop()
    await services.database.close()
    await smtp.close()
    await imap?.stop()
    await ms.close()
    if (ownDir) rmSync(dir, { recursive: true, force: true })
    process.exit(0)
  }
  process.on('SIGINT', () => void stop())
  process.on('SIGTERM', () => void stop())
}
