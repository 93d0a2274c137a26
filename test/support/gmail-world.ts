import { startDovecot, type Dovecot } from './dovecot.ts'
import { startGoogleEmulator, type GoogleEmulator } from './google-emulator.ts'
import { startMailbridge, type Harness } from './harness.ts'
import { startSmtpPeer, type SmtpPeer } from './smtp-peer.ts'
import { gmail } from '../../src/oauth/providers.ts'

export const GMAIL_CLIENT_ID = '281948374611-9v2c5l4kq1m3n8p7r6s0t2u4w6y8z0ab.apps.googleusercontent.com'
export const GMAIL_CLIENT_SECRET = 'GOCSPX-test_client_secret_0123456789'
export const CAROL = 'carol@gmail.com'

export interface GmailWorld {
  mb: Harness
  google: GoogleEmulator
  /** An SMTP peer that wants Gmail's scope, asking the Google emulator about tokens. */
  smtp: SmtpPeer
  dovecot?: Dovecot
  outgoingServer(o?: { username?: string; body?: Record<string, unknown> }): Promise<{ id: string; [k: string]: unknown }>
  incomingServer(o?: { username?: string; body?: Record<string, unknown> }): Promise<{ id: string; [k: string]: unknown }>
  /** Connect → consent ("Allow") → callback; returns the callback's response. */
  connect(serverId: string, o?: { user?: string; kind?: 'outgoing' | 'incoming'; approve?: boolean }): Promise<import('fastify').LightMyRequestResponse>
  close(): Promise<void>
}

/** Mailbridge with Gmail Credentials entered, the Google emulator, and real peers validating Gmail tokens. */
export async function startGmailWorld(o: { dovecot?: boolean; users?: string[] } = {}): Promise<GmailWorld> {
  const google = await startGoogleEmulator()
  const mb = await startMailbridge().catch(async (e: unknown) => {
    await google.close()
    throw e
  })
  const smtp = await startSmtpPeer({ introspectUrl: google.introspectUrl, requiredScope: 'https://mail.google.com/', appRole: null })
  const dovecot = o.dovecot ? await startDovecot({ introspectUrl: google.introspectUrl }) : undefined
  google.registerClient({ clientId: GMAIL_CLIENT_ID, clientSecret: GMAIL_CLIENT_SECRET, redirectUris: [mb.services.connect.redirectUri(gmail)], name: 'Mailbridge' })
  for (const u of o.users ?? [CAROL, 'dave@gmail.com']) google.addUser(u)
  await mb.services.settings.update({ external_email_servers: true, google_gmail_client_id: GMAIL_CLIENT_ID, google_gmail_client_secret: GMAIL_CLIENT_SECRET })
  await mb.services.settings.setParameter('google_gmail.auth_endpoint', google.authEndpoint)
  await mb.services.settings.setParameter('google_gmail.token_endpoint', google.tokenEndpoint)
  const create = async (kind: 'outgoing' | 'incoming', x: { username?: string; body?: Record<string, unknown> }, target: { host: string; port: number }) => {
    const res = await mb.api('POST', `/api/v1/${kind}-servers`, { name: 'Gmail', authentication: 'gmail', username: x.username ?? CAROL, ...target, ...x.body })
    if (res.statusCode !== 201) throw new Error(`creating the ${kind} server failed: ${res.body}`)
    return res.json()
  }
  return {
    mb,
    google,
    smtp,
    dovecot,
    outgoingServer: (x = {}) => create('outgoing', x, { host: smtp.host, port: smtp.port }),
    incomingServer: (x = {}) => {
      if (!dovecot) throw new Error('incomingServer() needs startGmailWorld({ dovecot: true })')
      return create('incoming', x, { host: dovecot.host, port: dovecot.imapsPort })
    },
    async connect(serverId, x = {}) {
      const res = await mb.api('POST', `/api/v1/${x.kind ?? 'outgoing'}-servers/${serverId}/connect`)
      if (res.statusCode !== 200) throw new Error(`connect failed: ${res.body}`)
      const back = await google.consent(res.json().authorize_url, { user: x.user ?? CAROL, approve: x.approve })
      return mb.app.inject({ method: 'GET', url: back.pathname + back.search })
    },
    async close() {
      await mb.services.mailWorker.stop()
      await mb.services.scheduler.stop()
      await mb.services.dispatcher.stop()
      await mb.close()
      await smtp.close()
      await dovecot?.stop()
      await google.close()
    },
  }
}
