import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { isMainThread } from 'node:worker_threads'
import { loadConfig, type Config } from './config.ts'
import { hashPassword, randomToken, verifyPassword } from './crypto/passwords.ts'
import { KEY_FILE, loadOrCreateKeys } from './crypto/key-file.ts'
import { createPrivateFile, makePrivateFolder, openToOthers, sqliteFiles } from './data-folder.ts'
import { migrate, openDatabase } from './db/index.ts'
import { createLogger, type Logger } from './log.ts'
import { createServices, type Services } from './services.ts'

export interface Booted {
  services: Services
  /** Shown once, on first start: the generated admin password and API token. */
  firstStart: { adminPassword?: string; apiToken?: string }
}

/** Config → database (migrated) → key → services, plus the admin password and API token on first start. */
export async function boot(config: Config = loadConfig(), log: Logger = createLogger(config.logLevel), o: { redoable?: boolean; nodeId?: string } = {}): Promise<Booted> {
  const database = openDatabase(config.databaseUrl, o)
  const applied = await migrate(database.db, database.schema)
  if (applied.length) log.info({ applied }, 'database migrated')
  const { keys, created } = loadOrCreateKeys(config.dataDir, config.secretKeys)
  if (created) log.info({ dir: config.dataDir }, 'generated a new secret key (secret.key): back it up with the database')
  // Once per process: the background thread boots again.
  if (isMainThread) {
    for (const { path, mode } of openToOthers([config.dataDir, ...sqliteFiles(config.databaseUrl), ...(config.secretKeys ? [] : [join(config.dataDir, KEY_FILE)])])) {
      log.warn({ path, mode }, `${path} has mode ${mode}: other accounts on this machine can read the mails and keys in the data folder; run chmod go-rwx ${path}`)
    }
  }
  const services = createServices(config, database, log, keys, o.nodeId)
  const firstStart: Booted['firstStart'] = {}

  const stored = await services.settings.get('admin_password_hash')
  if (config.adminPassword) {
    if (!stored || !(await verifyPassword(config.adminPassword, stored))) await services.settings.set('admin_password_hash', await hashPassword(config.adminPassword))
  } else if (!stored) {
    firstStart.adminPassword = randomToken(12)
    await services.settings.set('admin_password_hash', await hashPassword(firstStart.adminPassword))
  }
  // Unset is no change: a node started without it (a worker) must not revoke the web nodes' token.
  if (config.apiToken) {
    if (!(await services.apiTokens.replaceBootstrap(config.apiToken))) log.warn('MAILBRIDGE_API_TOKEN names a token that was revoked, so it gets 401: set a new value')
  } else if ((await services.apiTokens.count()) === 0) firstStart.apiToken = (await services.apiTokens.create({ name: 'first start', scopes: ['admin'] })).token
  return { services, firstStart }
}

/** The file in the data folder that holds what the first start generated. */
export const FIRST_START_FILE = 'first-start-credentials.txt'

/**
 * Write the generated admin password and API token to a 0600 file in the data folder and return its path. Not
 * to stdout: the JSON logs go there too, and with them to any log collector (issue 21).
 */
export function saveFirstStart(dataDir: string, firstStart: Booted['firstStart']): string | undefined {
  if (!firstStart.adminPassword && !firstStart.apiToken) return undefined
  makePrivateFolder(dataDir)
  const path = join(dataDir, FIRST_START_FILE)
  createPrivateFile(path)
  const lines = [
    `# Mailbridge's first start, ${new Date().toISOString()}: keep these somewhere safe (a password manager), then delete this file.`,
    ...(firstStart.adminPassword ? ['admin user: admin', `admin password: ${firstStart.adminPassword}`] : []),
    ...(firstStart.apiToken ? [`API token: ${firstStart.apiToken}`, '# send it as "Authorization: Bearer <token>"; it is shown nowhere else'] : []),
  ]
  // The file exists 0600 already (or was made so by the operator): writing keeps its mode.
  writeFileSync(path, lines.join('\n') + '\n')
  return path
}
