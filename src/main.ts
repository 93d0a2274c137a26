import { boot, saveFirstStart } from './boot.ts'
import { readCommandLine } from './cli.ts'
import { ConfigError, loadConfig } from './config.ts'
import { loadOrCreateKeys } from './crypto/key-file.ts'
import { rotateKeys } from './crypto/rotate.ts'
import { generateCertificateCommand, UsageError } from './generate-certificate-command.ts'
import { keyId, SecretBox } from './crypto/secret-box.ts'
import { migrate, openDatabase } from './db/index.ts'
import { consentProviders } from './oauth/providers.ts'
import { startRelay } from './relay/server.ts'
import { runInline, runInThread, type Role } from './roles.ts'
import { buildApp } from './web/app.ts'

async function serve(role: Role): Promise<void> {
  const { services, firstStart } = await boot()
  const { config, log } = services
  const background = role === 'all' ? await runInThread(services) : role === 'worker' ? runInline(services) : undefined
  const app = await buildApp(services)
  await app.listen({ port: config.port, host: config.host })
  // The relay hands mail to the queue like the API does, so it lives on the web side.
  const relay = config.relayPort && role !== 'worker' ? await startRelay(services) : undefined
  const lines = [
    '',
    `Mailbridge is running at http://${config.host}:${config.port} (public URL ${config.baseUrl.toString()})`,
    // The public URL, not the listener's: the admin session and Connect's state live on that host.
    `Admin UI: ${new URL('/admin', config.baseUrl).toString()}`,
    ...consentProviders().map((p) => `Redirect URI to register ${p.registerRedirectAt}: ${services.connect.redirectUri(p)}`),
    `API documentation: ${new URL('/docs', config.baseUrl).toString()}`,
  ]
  if (relay) lines.push(`SMTP relay for legacy applications on ${config.relay.host}:${relay.port} (STARTTLS)${relay.tlsPort ? ` and :${relay.tlsPort} (implicit TLS)` : ''}; create logins at /api/v1/relay-users`)
  const saved = saveFirstStart(config.dataDir, firstStart)
  if (saved) {
    const what = [firstStart.adminPassword && 'the admin password (user "admin")', firstStart.apiToken && 'an API token'].filter(Boolean).join(' and ')
    lines.push(`First start: ${what} ${firstStart.adminPassword && firstStart.apiToken ? 'are' : 'is'} in ${saved} (mode 0600: this account only); read them, then delete the file.${firstStart.adminPassword ? ' Set MAILBRIDGE_ADMIN_PASSWORD to choose your own password.' : ''}`)
    // stdout is also where the JSON logs go, and from there to log collectors: the secrets only on a terminal.
    if (process.stdout.isTTY) {
      if (firstStart.adminPassword) lines.push(`  admin password: ${firstStart.adminPassword}`)
      if (firstStart.apiToken) lines.push(`  API token: ${firstStart.apiToken}  (send it as "Authorization: Bearer <token>")`)
    }
  }
  process.stdout.write(lines.join('\n') + '\n\n')
  let stopping = false
  const stop = async (signal: string) => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'shutting down')
    await Promise.all([app.close(), relay?.close()])
    await background?.stop()
    await services.database.close()
    process.exit(0)
  }
  process.on('SIGTERM', () => void stop('SIGTERM'))
  process.on('SIGINT', () => void stop('SIGINT'))
}

/** `mailbridge rotate-key`: see crypto/rotate.ts and the README's "Secrets at rest and key rotation". */
async function rotateKey(batchSize: number): Promise<number> {
  const config = loadConfig()
  const { keys } = loadOrCreateKeys(config.dataDir, config.secretKeys, { create: false })
  const box = new SecretBox(keys)
  const database = openDatabase(config.databaseUrl)
  try {
    await migrate(database.db, database.schema)
    const out = (line: string) => process.stdout.write(line + '\n')
    out(`re-sealing every secret under key ${box.currentKeyId} (the keyring holds ${keys.map(keyId).join(', ')})`)
    const report = await rotateKeys(database.db, box, { batchSize, progress: out })
    for (const [column, r] of Object.entries(report.columns)) {
      out(`${column}: ${r.resealed} re-sealed, ${r.changed} changed meanwhile, ${r.unreadable} under an unknown key, ${report.remaining[column]} still under old keys`)
    }
    out(`${report.remainingTotal} values still under old keys`)
    if (report.remainingTotal > 0) {
      const unreadable = Object.values(report.columns).reduce((n, r) => n + r.unreadable, 0)
      if (unreadable) out(`${unreadable} values are under a key this keyring lacks: list the old key after the new one (MAILBRIDGE_SECRET_KEY=new,old).`)
      if (report.remainingTotal > unreadable) out('Nodes still seal with an old key: give every node the new key first, then run rotate-key again.')
      return 1
    }
    return 0
  } finally {
    await database.close()
  }
}

async function main(argv: string[]): Promise<void> {
  const invocation = readCommandLine(argv)
  if (invocation.kind === 'help') return void process.stdout.write(invocation.text)
  if (invocation.kind === 'refused') {
    process.stderr.write(`mailbridge: ${invocation.message}; run "mailbridge --help" for the commands and their options\n`)
    process.exitCode = 2
    return
  }
  const { values } = invocation
  switch (invocation.command) {
    case 'serve': {
      const role = values.role as Role
      if (!['web', 'worker', 'all'].includes(role)) throw new ConfigError(`--role must be web, worker or all, got "${role}"`)
      return serve(role)
    }
    case 'migrate': {
      const database = openDatabase(loadConfig().databaseUrl)
      const applied = await migrate(database.db, database.schema)
      process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'the database is up to date\n')
      return database.close()
    }
    case 'rotate-key': {
      const batch = Number(values.batch ?? 500)
      if (!Number.isInteger(batch) || batch < 1 || batch > 10_000) throw new ConfigError(`--batch must be an integer from 1 to 10000, got "${values.batch}"`)
      process.exitCode = await rotateKey(batch)
      return
    }
    case 'generate-certificate': {
      try {
        return await generateCertificateCommand(values as { out?: string; days?: string; subject?: string }, (line) => process.stdout.write(line + '\n'))
      } catch (e) {
        if (!(e instanceof UsageError)) throw e
        process.stderr.write(`mailbridge: ${e.message}\n`)
        process.exitCode = 2
        return
      }
    }
    case 'sandbox': {
      // Imported only here: the sandbox loads the test peers, which `serve` must never need.
      const { sandbox } = await import('./sandbox.ts')
      return sandbox()
    }
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`mailbridge: ${e instanceof ConfigError ? e.message : ((e as Error).stack ?? String(e))}\n`)
  process.exit(1)
})
