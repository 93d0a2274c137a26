import assert from 'node:assert/strict'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import nodemailer from 'nodemailer'
import { startRelay, type Relay } from '../../src/relay/server.ts'
import { startWorld, type World } from '../support/world.ts'

const TLS = fileURLToPath(new URL('../support/tls/', import.meta.url))
export const PASSWORD = 'printer-password-0123'
export const USER = 'scanner@contoso.com'

export interface RelayWorld {
  w: World
  relay: Relay
  serverId: string
  mails(): Promise<Array<{ id: string; state: string; message_id: string; to: string[]; cc: string[]; bcc: string[]; subject: string }>>
  drain(): Promise<void>
}

/** Mailbridge with a connected Outlook server (no per-minute limit), a relay listening on a free port, and one relay user. */
export async function relayWorld(t: { after(fn: () => Promise<void>): void }, o: { env?: Record<string, string>; allowedFrom?: string[]; tlsPort?: boolean } = {}): Promise<RelayWorld> {
  const w = await startWorld({
    env: { MAILBRIDGE_RELAY_TLS_CERT: join(TLS, 'cert.pem'), MAILBRIDGE_RELAY_TLS_KEY: join(TLS, 'key.pem'), MAILBRIDGE_RETRY_BASE_S: '0', ...o.env },
  })
  const server = await w.outgoingServer()
  await w.connect(server.id)
  await w.mb.api('PATCH', `/api/v1/outgoing-servers/${server.id}`, { max_per_minute: null })
  const created = await w.mb.api('POST', '/api/v1/relay-users', { username: USER, password: PASSWORD, allowed_from: o.allowedFrom ?? [] })
  assert.equal(created.statusCode, 201, created.body)
  const relay = await startRelay(w.mb.services, { port: 0, tlsPort: o.tlsPort ? 0 : undefined })
  t.after(async () => {
    await relay.close()
    await w.close()
  })
  const worker = w.mb.services.mailWorker
  return {
    w,
    relay,
    serverId: server.id,
    mails: async () => (await w.mb.api('GET', '/api/v1/mail')).json().items,
    async drain() {
      for (let i = 0; i < 50; i++) {
        const started = await worker.tick()
        await worker.idle()
        if (started === 0) return
      }
    },
  }
}

/** nodemailer as the legacy application: a password, STARTTLS required, one connection per mail. */
export const legacyClient = (port: number, auth: { user: string; pass: string } | null = { user: USER, pass: PASSWORD }, extra: object = {}) =>
  nodemailer.createTransport({ host: '127.0.0.1', port, requireTLS: true, tls: { servername: 'localhost' }, auth: auth ?? undefined, ...extra })

export const refusal = async (p: Promise<unknown>): Promise<{ responseCode?: number; response?: string }> => {
  try {
    await p
  } catch (e) {
    return e as { responseCode?: number; response?: string }
  }
  assert.fail('the relay accepted what it should have refused')
}

