import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { boot } from './boot.ts'
import { loadConfig } from './config.ts'
import { createLogger } from './log.ts'
import { startRelay } from './relay/server.ts'
import { runInline } from './roles.ts'
import { loadOrCreateSandboxFolder, repointServers, saveSandboxFolder } from './sandbox-folder.ts'
import { sandboxSteps, type SandboxRun } from './sandbox-steps.ts'
import { buildApp } from './web/app.ts'
// The sandbox is the one place src/ uses the test peers: `serve` never loads it (main.ts imports it lazily).
import { dovecotAvailable, startDovecot, type Dovecot } from '../test/support/dovecot.ts'
import { startIdentityEmulator } from '../test/support/identity-emulator.ts'
import { startSmtpPeer, type SmtpPeerMessage } from '../test/support/smtp-peer.ts'

const MAILBOXES = ['alice@contoso.com', 'bob@contoso.com']

/**
 * `mailbridge sandbox`: Mailbridge pointed at the bundled Microsoft identity platform emulator (its consent page
 * has the guide's "Yes"), the XOAUTH2 SMTP peer standing in for smtp.office365.com and, when Debian's Dovecot is
 * installed, an IMAP server for incoming mail that the SMTP peer delivers the sandbox mailboxes' mail to. Everything
 * runs on 127.0.0.1, so anyone can walk the seed guide offline, both ways. Needs
 * NODE_EXTRA_CA_CERTS=test/support/tls/ca.pem (the npm script sets it) so Mailbridge trusts the peers' certificates.
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
    // The peers stand in for Microsoft's hosts on this machine: tokens and the secret may go to them (design.md §10).
    MAILBRIDGE_TRUSTED_HOSTS: [process.env.MAILBRIDGE_TRUSTED_HOSTS, '127.0.0.1'].filter(Boolean).join(','),
  })
  const { folder, reused } = loadOrCreateSandboxFolder(dir)
  const ms = await startIdentityEmulator()
  let imap: Dovecot | undefined
  let imapMissing = 'Dovecot is not installed (apt-get install dovecot-imapd, or .ci/install-peers.sh), so there is no incoming mail.'
  if (dovecotAvailable()) {
    try {
      imap = await startDovecot({ introspectUrl: ms.introspectUrl })
    } catch (e) {
      imapMissing = `Dovecot did not start (${(e as Error).message.split('\n')[0]}), so there is no incoming mail.`
    }
  }
  const smtp = await startSmtpPeer({ introspectUrl: ms.introspectUrl, deliver: imap && deliverLocally(imap) })
  ms.registerApp({ clientId: folder.clientId, clientSecret: folder.clientSecret, redirectUris: [`${baseUrl}/microsoft_outlook/confirm`], name: 'Mailbridge sandbox' })
  for (const m of MAILBOXES) ms.addUser(m)

  const log = createLogger(process.env.MAILBRIDGE_LOG_LEVEL || 'warn')
  const { services, firstStart } = await boot(config, log)
  // boot shows the generated password and token once; a kept folder shows them again on every start.
  if (firstStart.adminPassword || firstStart.apiToken) {
    saveSandboxFolder(dir, { ...folder, adminPassword: firstStart.adminPassword ?? folder.adminPassword, apiToken: firstStart.apiToken ?? folder.apiToken })
  }
  await services.settings.setParameter('microsoft_outlook.endpoint', ms.endpoint())
  await repointServers(services, { smtp, imap: imap && { host: imap.host, ssl: imap.imapsPort, starttls: imap.imapPort } })
  const background = runInline(services)
  const app = await buildApp(services, { smtpDefaults: { host: smtp.host, port: smtp.port }, imapDefaults: imap && { host: imap.host, port: imap.imapsPort } })
  await app.listen({ host: '127.0.0.1', port })
  const relay = config.relayPort ? await startRelay(services) : undefined

  const run: SandboxRun = {
    baseUrl,
    password: config.adminPassword ? '(MAILBRIDGE_ADMIN_PASSWORD)' : (firstStart.adminPassword ?? folder.adminPassword ?? '(the one printed on the first run with this folder)'),
    apiToken: config.apiToken ? '(MAILBRIDGE_API_TOKEN)' : (firstStart.apiToken ?? folder.apiToken ?? '(the one printed on the first run with this folder)'),
    endpoint: ms.endpoint(),
    smtp,
    imap: imap ? { host: imap.host, ssl: imap.imapsPort, starttls: imap.imapPort } : { missing: imapMissing },
    relay: relay && { host: config.relay.host, port: relay.port },
    clientId: folder.clientId,
    clientSecret: folder.clientSecret,
    mailboxes: MAILBOXES,
    dir,
    ownDir,
    restarted: reused,
  }
  process.stdout.write(sandboxSteps(run))

  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    await Promise.all([app.close(), relay?.close()])
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

/**
 * Exchange puts mail for its own mailboxes into their store: the SMTP peer hands what it accepts for a sandbox
 * mailbox to Dovecot's `doveadm save` (the store's own delivery, as dovecot-lda does), one message at a time.
 * Mail for anyone else is accepted and goes no further, as if Exchange had sent it on.
 */
function deliverLocally(imap: Dovecot): (m: SmtpPeerMessage) => Promise<void> {
  let queue: Promise<unknown> = Promise.resolve()
  return (m) => {
    const local = [...new Set(m.to.map((a) => a.toLowerCase()))].filter((a) => MAILBOXES.includes(a))
    const done = queue.then(async () => {
      for (const rcpt of local) await imap.seed(rcpt, m.raw)
    })
    queue = done.catch(() => {})
    return done
  }
}
