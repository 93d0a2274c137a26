import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startIdentityEmulator, type Emulator, type EmulatorOptions } from './identity-emulator.ts'
import { API_TOKEN, PEER_HOSTS, startMailbridge, type Harness } from './harness.ts'
import { startSmtpPeer, type SmtpPeer, type PeerBehaviour } from './smtp-peer.ts'

export const CLIENT_ID = '6731de76-14a6-49ae-97bc-6eba6914391e'
export const CLIENT_SECRET = 'Qk8Q~test.client.secret-value_0123456789'
export const ALICE = 'alice@contoso.com'

export interface World {
  mb: Harness
  ms: Emulator
  smtp: SmtpPeer
  /** Create an Outlook outgoing server for a mailbox, pointed at the SMTP peer. */
  outgoingServer(o?: { username?: string; body?: Record<string, unknown> }): Promise<{ id: string; [k: string]: unknown }>
  /** Connect → consent ("Yes") → callback; returns the callback's response. */
  connect(serverId: string, o?: { user?: string; kind?: 'outgoing' | 'incoming'; approve?: boolean }): Promise<import('fastify').LightMyRequestResponse>
  /**
   * With `shared: true`: the environment for real `mailbridge` processes on this world's database and key
   * (test/support/process.ts), plus any extra variables.
   */
  nodeEnv(extra?: Record<string, string>): Record<string, string>
  close(): Promise<void>
}

/** Run the queue worker pass by pass until a pass starts no mail (none due, or the server paused). */
export async function runQueue(w: Pick<World, 'mb'>, rounds = 50): Promise<void> {
  const worker = w.mb.services.mailWorker
  for (let i = 0; i < rounds; i++) {
    const started = await worker.tick()
    await worker.idle()
    if (started === 0) return
  }
}

/**
 * Mailbridge, the Microsoft emulator with an app and users registered, and the SMTP peer validating tokens
 * against the emulator: the usual cast of an end-to-end test.
 */
export async function startWorld(o: { env?: Record<string, string>; smtp?: Partial<PeerBehaviour>; users?: string[]; shared?: boolean; emulator?: EmulatorOptions } = {}): Promise<World> {
  const ms = await startIdentityEmulator(o.emulator)
  // A shared world keeps its folder and database when Mailbridge closes, so real processes can take over.
  const dir = o.shared ? mkdtempSync(join(tmpdir(), 'mailbridge-shared-')) : undefined
  const key = randomBytes(32)
  // A world that fails to start (a database refusing the migration) must not leave the emulator listening, or
  // the test file's process never exits.
  const mb = await startMailbridge({ env: o.env, dir, key }).catch(async (e: unknown) => {
    await ms.close()
    throw e
  })
  const smtp = await startSmtpPeer({ introspectUrl: ms.introspectUrl, behaviour: o.smtp })
  ms.registerApp({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [mb.services.connect.redirectUri({ route: 'microsoft_outlook' } as never)], name: 'Mailbridge' })
  for (const u of o.users ?? [ALICE, 'bob@contoso.com']) ms.addUser(u)
  await mb.services.settings.update({ external_email_servers: true, microsoft_outlook_client_id: CLIENT_ID, microsoft_outlook_client_secret: CLIENT_SECRET })
  await mb.services.settings.setParameter('microsoft_outlook.endpoint', ms.endpoint())
  const world: World = {
    mb,
    ms,
    smtp,
    async outgoingServer(x = {}) {
      const res = await mb.api('POST', '/api/v1/outgoing-servers', {
        name: 'Outlook',
        authentication: 'outlook',
        username: x.username ?? ALICE,
        host: smtp.host,
        port: smtp.port,
        ...x.body,
      })
      if (res.statusCode !== 201) throw new Error(`creating the server failed: ${res.body}`)
      return res.json()
    },
    async connect(serverId, x = {}) {
      const kind = x.kind ?? 'outgoing'
      const res = await mb.api('POST', `/api/v1/${kind}-servers/${serverId}/connect`)
      if (res.statusCode !== 200) throw new Error(`connect failed: ${res.body}`)
      const back = await ms.consent(res.json().authorize_url, { user: x.user ?? ALICE, approve: x.approve })
      return mb.app.inject({ method: 'GET', url: back.pathname + back.search })
    },
    nodeEnv(extra = {}) {
      if (!dir) throw new Error('nodeEnv() needs startWorld({ shared: true })')
      return {
        MAILBRIDGE_DATABASE_URL: mb.config.databaseUrl,
        MAILBRIDGE_DATA_DIR: dir,
        MAILBRIDGE_SECRET_KEY: key.toString('base64'),
        MAILBRIDGE_API_TOKEN: API_TOKEN,
        MAILBRIDGE_ADMIN_PASSWORD: 'shared-world-password',
        MAILBRIDGE_TRUSTED_HOSTS: PEER_HOSTS,
        ...extra,
      }
    },
    async close() {
      await mb.services.mailWorker.stop()
      await mb.close()
      await smtp.close()
      await ms.close()
      if (dir) {
        await mb.dropDatabase()
        rmSync(dir, { recursive: true, force: true })
      }
    },
  }
  return world
}
