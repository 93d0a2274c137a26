import { startDovecot, type Dovecot } from './dovecot.ts'
import { ALICE, startWorld, type World } from './world.ts'

export interface Mailroom extends World {
  dovecot: Dovecot
  /** Create an Outlook incoming server for a mailbox, pointed at Dovecot's implicit-TLS port. */
  incomingServer(o?: { username?: string; body?: Record<string, unknown> }): Promise<{ id: string; [k: string]: unknown }>
  /** Create, connect (consent) and Test & Confirm an incoming server: ready to fetch. */
  confirmedServer(o?: { username?: string; body?: Record<string, unknown> }): Promise<{ id: string; [k: string]: unknown }>
}

/** The world (Mailbridge, the identity emulator, the SMTP peer) plus a real Dovecot that asks the emulator about tokens. */
export async function startMailroom(o: Parameters<typeof startWorld>[0] = {}): Promise<Mailroom> {
  const w = await startWorld(o)
  const dovecot = await startDovecot({ introspectUrl: w.ms.introspectUrl })
  const room: Mailroom = {
    ...w,
    dovecot,
    async incomingServer(x = {}) {
      const res = await w.mb.api('POST', '/api/v1/incoming-servers', {
        name: 'Inbox',
        authentication: 'outlook',
        username: x.username ?? ALICE,
        host: dovecot.host,
        port: dovecot.imapsPort,
        ...x.body,
      })
      if (res.statusCode !== 201) throw new Error(`creating the incoming server failed: ${res.body}`)
      return res.json()
    },
    async confirmedServer(x = {}) {
      const server = await room.incomingServer(x)
      const back = await w.connect(server.id, { kind: 'incoming', user: x.username ?? ALICE })
      if (back.statusCode !== 302) throw new Error(`connect failed: ${back.statusCode} ${back.body}`)
      const test = await w.mb.api('POST', `/api/v1/incoming-servers/${server.id}/test`)
      if (!test.json().ok) throw new Error(`Test & Confirm failed: ${test.body}`)
      return server
    },
    async close() {
      await w.mb.services.scheduler.stop()
      await w.mb.services.dispatcher.stop()
      await w.close()
      await dovecot.stop()
    },
  }
  return room
}

/** A plain RFC 5322 message. */
export function rfc822(o: { subject: string; messageId?: string; from?: string; to?: string; headers?: string; body?: string }): string {
  return (
    `From: ${o.from ?? 'Customer <customer@fabrikam.com>'}\r\nTo: ${o.to ?? ALICE}\r\nSubject: ${o.subject}\r\n` +
    (o.messageId ? `Message-ID: ${o.messageId}\r\n` : '') +
    `Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n${o.headers ?? ''}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${o.body ?? `Body of ${o.subject}\r\n`}`
  )
}
