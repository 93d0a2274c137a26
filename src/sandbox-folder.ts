import { randomBytes, randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Services } from './services.ts'

export const SANDBOX_FILE = 'sandbox.json'

/**
 * What a kept sandbox folder (MAILBRIDGE_DATA_DIR) must remember beside the database, because the peers keep
 * nothing: the app registered with the emulator (the settings already hold its Client ID and Secret, so the
 * emulator must get the same ones back) and the admin password and API token printed on the first start (boot
 * shows them only once). Test credentials of a throw-away sandbox, kept mode 0600 like secret.key.
 */
export interface SandboxFolder {
  clientId: string
  clientSecret: string
  adminPassword?: string
  apiToken?: string
}

/** The folder's registration, or a new one (written at once, so a crash before the first save loses nothing). */
export function loadOrCreateSandboxFolder(dir: string): { folder: SandboxFolder; reused: boolean } {
  const path = join(dir, SANDBOX_FILE)
  if (existsSync(path)) return { folder: JSON.parse(readFileSync(path, 'utf8')) as SandboxFolder, reused: true }
  const folder: SandboxFolder = { clientId: randomUUID(), clientSecret: `Sbx8Q~${randomBytes(18).toString('base64url')}` }
  saveSandboxFolder(dir, folder)
  return { folder, reused: false }
}

export function saveSandboxFolder(dir: string, folder: SandboxFolder): void {
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, SANDBOX_FILE), `${JSON.stringify(folder, null, 2)}\n`, { mode: 0o600 })
}

export interface PeerAddresses {
  smtp: { host: string; port: number }
  imap?: { host: string; ssl: number; starttls: number }
}

/**
 * The peers listen on new ports each start: servers that pointed at the previous run's peers (host 127.0.0.1)
 * are moved to this run's, through the services as an admin's edit would (an incoming server goes back to draft:
 * Test & Confirm it again). Returns how many servers moved.
 */
export async function repointServers(s: Pick<Services, 'outgoingServers' | 'incomingServers'>, peers: PeerAddresses): Promise<number> {
  let moved = 0
  for (const server of await s.outgoingServers.list()) {
    if (server.host !== peers.smtp.host || server.port === peers.smtp.port) continue
    await s.outgoingServers.update(server.id, { port: peers.smtp.port })
    moved++
  }
  const imap = peers.imap
  if (!imap) return moved
  for (const server of await s.incomingServers.list()) {
    const port = server.encryption === 'ssl' ? imap.ssl : imap.starttls
    if (server.host !== imap.host || server.port === port) continue
    await s.incomingServers.update(server.id, { port })
    moved++
  }
  return moved
}
