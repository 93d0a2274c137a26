import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError, parseSecretKeys } from '../config.ts'
import { makePrivateFolder } from '../data-folder.ts'

export const KEY_FILE = 'secret.key'

/**
 * The keyring for secrets at rest: MAILBRIDGE_SECRET_KEY when set, else `<dataDir>/secret.key` (one key per
 * line, the one that seals first), generated with one key and mode 0600 on first start unless `create` is
 * false. Losing these keys makes every stored secret unreadable: back them up with the database.
 */
export function loadOrCreateKeys(dataDir: string, fromEnv?: Buffer[], o: { create?: boolean } = {}): { keys: Buffer[]; created: boolean } {
  if (fromEnv) return { keys: fromEnv, created: false }
  const path = join(dataDir, KEY_FILE)
  if (existsSync(path)) return { keys: parseSecretKeys(readFileSync(path, 'utf8'), path), created: false }
  if (o.create === false) throw new ConfigError(`no key: set MAILBRIDGE_SECRET_KEY or put ${path} in place`)
  makePrivateFolder(dataDir)
  const key = randomBytes(32)
  writeFileSync(path, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' })
  chmodSync(path, 0o600)
  return { keys: [key], created: true }
}
