import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseSecretKey } from '../config.ts'

export const KEY_FILE = 'secret.key'

/**
 * The key for secrets at rest: MAILBRIDGE_SECRET_KEY when set, else `<dataDir>/secret.key`, generated with
 * mode 0600 on first start. Losing this file makes every stored secret unreadable: back it up with the database.
 */
export function loadOrCreateKey(dataDir: string, fromEnv?: Buffer): { key: Buffer; created: boolean } {
  if (fromEnv) return { key: fromEnv, created: false }
  const path = join(dataDir, KEY_FILE)
  if (existsSync(path)) return { key: parseSecretKey(readFileSync(path, 'utf8'), path), created: false }
  mkdirSync(dataDir, { recursive: true })
  const key = randomBytes(32)
  writeFileSync(path, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' })
  chmodSync(path, 0o600)
  return { key, created: true }
}
