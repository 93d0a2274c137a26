/**
 * A real SMTP submission server (smtp-server) that validates XOAUTH2 bearer tokens the way Exchange Online's
 * smtp.office365.com:587 does: STARTTLS, AUTH XOAUTH2 only, Outlook-style replies.
 *
 * Tokens are checked by RFC 7662 introspection against the identity emulator (or any introspection endpoint).
 * Sources for the replies:
 * - AUTH   https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth
 * - SUBMIT https://learn.microsoft.com/exchange/clients-and-mobile-in-exchange-online/authenticated-client-smtp-submission
 * - LIMITS https://learn.microsoft.com/office365/servicedescriptions/exchange-online-service-description/exchange-online-limits
 * - research/peers-and-platform.md B3, B7, B8 and research/test-peers.md §2a
 */
import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import { randomUUID } from 'node:crypto'
import { simpleParser } from 'mailparser'
import { SMTPServer, type SMTPServerAuthentication, type SMTPServerAuthenticationResponse, type SMTPServerSession } from 'smtp-server'

export interface SmtpReply { code: number; message: string }

export interface PeerBehaviour {
  /** answer 535 5.7.139 (SMTP AUTH disabled for the tenant) */
  authDisabled: boolean
  /** default true: MAIL FROM must equal the authenticated user, else 550 5.7.60 */
  enforceSender: boolean
  /** reply for one RCPT TO, e.g. { code: 550, message: '5.1.10 RESOLVER.ADR.RecipNotFound; not found' } */
  rejectRcpt: (addr: string) => SmtpReply | undefined
  /** reply per DATA (n = 1-based count of DATA commands on this peer), e.g. 451 4.7.500 for the first N */
  dataReply: (n: number) => SmtpReply | undefined
  /** added per message before the reply (a remote Exchange is not instant) */
  delayMs: number
  /** authenticated sessions per mailbox; one more gets 432 4.3.2 on AUTH (a slot frees when its socket closes) */
  maxConnections: number
  /** destroy the socket mid-DATA, after the first chunk of the message arrived; nothing is recorded */
  dropDuringData: (n: number) => boolean
  /**
   * take the whole message (recorded, as a server that queued it would), then destroy the socket before the 250:
   * the reply is lost on the way, the client cannot know the mail went through
   */
  dropBeforeReply: (n: number) => boolean
  /**
   * the tenant's message size limit in bytes, counted on the message as submitted (encoded attachments included):
   * 35 MB by default, which an admin may raise up to 150 MB (LIMITS, message size limits)
   */
  maxMessageBytes: number
}

export interface SmtpPeerMessage { from: string; to: string[]; raw: Buffer; user: string; at: Date }

export interface SmtpPeer {
  host: '127.0.0.1'
  port: number
  messages: SmtpPeerMessage[]
  authAttempts: Array<{ user: string; ok: boolean }>
  /** concurrent TCP connections now, and their high-water mark */
  connections: { current: number; max: number }
  /** DATA commands seen, including those refused or cut: the attempts, where `messages` are the deliveries */
  dataCommands(): number
  /** The Message-ID of every delivered message, in order (a mail delivered twice appears twice) */
  messageIds(): Promise<Array<string | undefined>>
  behave(b: Partial<PeerBehaviour>): void
  waitFor(n: number, timeoutMs?: number): Promise<void>
  close(): Promise<void>
}

export interface SmtpPeerOptions {
  introspectUrl: string
  /** default https://outlook.office.com/SMTP.Send (Gmail: https://mail.google.com/) */
  requiredScope?: string
  /** the application permission an app-only token may carry instead (default SMTP.SendAsApp; null: none, as Gmail) */
  appRole?: string | null
  behaviour?: Partial<PeerBehaviour>
  /**
   * Local delivery, as Exchange puts mail for its own mailboxes in their store: called with every accepted message
   * before the 250 (a failure answers 451 4.3.0, as a store that cannot take it now; the message is not recorded).
   */
  deliver?: (m: SmtpPeerMessage) => Promise<void>
}

const HOST = '127.0.0.1'
const TLS_DIR = new URL('./tls/', import.meta.url)
// Exchange Online answers to both app id URIs for the same permissions (research B2).
const EXCHANGE_ORIGINS = new Set(['https://outlook.office.com', 'https://outlook.office365.com'])

// Replies, as Exchange Online words them.
const R = {
  // AUTH: "535 5.7.3 Authentication unsuccessful" for a bad token or the wrong account (AUTH; research B3).
  authFailed: { code: 535, message: `5.7.3 Authentication unsuccessful [${HOST}]` },
  // SMTP AUTH off for the tenant (SUBMIT; research B7).
  authDisabled: { code: 535, message: '5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.' },
  // RFC 4954 §6: 454 4.7.0 Temporary authentication failure, when the token cannot be checked now.
  authTemporary: { code: 454, message: '4.7.0 Temporary authentication failure' },
  // More than 3 concurrent connections per mailbox (LIMITS; research B8).
  threadLimit: { code: 432, message: '4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded' },
  mechanism: { code: 504, message: '5.7.4 Unrecognized authentication type' },
  notAuthenticated: { code: 530, message: '5.7.57 Client not authenticated to send mail.' },
  // Send-as check (research B7, test-peers §2a).
  sendAs: { code: 550, message: '5.7.60 SMTP; Client does not have permissions to send as this sender' },
  // RFC 3463 4.3.0: a transient mail system failure (local delivery could not store the message now).
  storeUnavailable: { code: 451, message: '4.3.0 Temporary server error. Please try again later' },
  tooBig: { code: 552, message: '5.3.4 Message size exceeds fixed maximum message size' },
} satisfies Record<string, SmtpReply>

const defaults: PeerBehaviour = {
  authDisabled: false,
  enforceSender: true,
  rejectRcpt: () => undefined,
  dataReply: () => undefined,
  delayMs: 0,
  maxConnections: Number.POSITIVE_INFINITY,
  dropDuringData: () => false,
  dropBeforeReply: () => false,
  // Exchange Online accepts 35 MB by default (LIMITS, message size limits).
  maxMessageBytes: 35 * 1024 * 1024,
}

export async function startSmtpPeer(o: SmtpPeerOptions): Promise<SmtpPeer> {
  const requiredScope = o.requiredScope ?? 'https://outlook.office.com/SMTP.Send'
  let behaviour: PeerBehaviour = { ...defaults, ...o.behaviour }
  const messages: SmtpPeerMessage[] = []
  const authAttempts: Array<{ user: string; ok: boolean }> = []
  const connections = { current: 0, max: 0 }
  const authenticated = new Map<string, string>() // session id → mailbox (lower case)
  const events = new EventEmitter()
  let dataCount = 0

  const server = new SMTPServer({
    name: HOST,
    secure: false, // STARTTLS on 587, no implicit TLS (SUBMIT: smtp.office365.com, port 587, STARTTLS)
    key: readFileSync(new URL('key.pem', TLS_DIR)),
    cert: readFileSync(new URL('cert.pem', TLS_DIR)),
    authMethods: ['XOAUTH2'],
    // Authentication is still required: onMailFrom answers Exchange's 530 5.7.57 instead of smtp-server's text.
    authOptional: true,
    hideENHANCEDSTATUSCODES: false,
    hideDSN: false,
    // smtp-server reads it at each EHLO and DATA, so behave() can change it.
    size: behaviour.maxMessageBytes,
    disableReverseLookup: true,
    heloResponse: '%s Hello %s',
    logger: false,
    closeTimeout: 1000,

    // smtp-server strips the raw socket's listeners at STARTTLS, so count closes here.
    onClose(session) {
      connections.current--
      sockets.delete(session.id)
      authenticated.delete(session.id)
    },

    onAuth(auth, session, callback) {
      void authenticate(auth, session).then(
        (user) => callback(null, { user } satisfies SMTPServerAuthenticationResponse),
        (err: Error) => callback(err),
      )
    },

    onMailFrom(address, session, callback) {
      const user = session.user as string | undefined
      if (!user) return callback(replyError(R.notAuthenticated))
      if (behaviour.enforceSender && address.address.toLowerCase() !== user.toLowerCase()) return callback(replyError(R.sendAs))
      callback()
    },

    onRcptTo(address, _session, callback) {
      const reply = behaviour.rejectRcpt(address.address)
      callback(reply ? replyError(reply) : undefined)
    },

    onData(stream, session, callback) {
      const n = ++dataCount
      const socket = () => sockets.get(session.id)?._socket
      if (behaviour.dropDuringData(n)) {
        stream.on('error', () => {})
        stream.once('data', () => socket()?.destroy())
        stream.resume()
        return
      }
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('end', () => {
        const raw = Buffer.concat(chunks)
        const reply = stream.sizeExceeded ? R.tooBig : behaviour.dataReply(n)
        void sleep(behaviour.delayMs).then(() => {
          if (reply && reply.code >= 400) {
            callback(replyError(reply))
            // RFC 5321 §3.8: a server that answers 421 closes the channel.
            if (reply.code === 421) setImmediate(() => socket()?.end())
            return
          }
          const message: SmtpPeerMessage = {
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            raw,
            user: session.user as string,
            at: new Date(),
          }
          return (o.deliver?.(message) ?? Promise.resolve()).then(
            () => {
              messages.push(message)
              events.emit('message')
              if (behaviour.dropBeforeReply(n)) return void socket()?.destroy()
              // Exchange: "250 2.0.0 OK <Message-ID> [Hostname=...]"
              callback(null, reply ? reply.message : `2.0.0 OK ${messageId(raw)} [Hostname=${HOST}]`)
            },
            () => callback(replyError(R.storeUnavailable)),
          )
        })
      })
    },
  })

  /** Validate an XOAUTH2 token (AUTH): introspect it (RFC 7662), then check user and scope. */
  async function authenticate(auth: SMTPServerAuthentication, session: SMTPServerSession): Promise<string> {
    const user = auth.username ?? ''
    const fail = (r: SmtpReply) => {
      authAttempts.push({ user, ok: false })
      return replyError(r)
    }
    if (auth.method !== 'XOAUTH2') throw fail(R.mechanism)
    if (behaviour.authDisabled) throw fail(R.authDisabled)
    let info: Record<string, unknown>
    try {
      const res = await fetch(o.introspectUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        // `username`: the mailbox asked for, so an app-only token's mailbox permission can be checked (Exchange
        // takes the mailbox from XOAUTH2's user= for client-credentials tokens; research B6).
        body: new URLSearchParams({ token: auth.accessToken ?? '', username: user }).toString(),
        signal: AbortSignal.timeout(5000),
      })
      if (!res.ok) throw new Error(`introspection answered ${res.status}`)
      info = (await res.json()) as Record<string, unknown>
    } catch {
      throw fail(R.authTemporary)
    }
    const names = [info.username, info.email, info.upn].filter((v): v is string => typeof v === 'string').map((v) => v.toLowerCase())
    const scopes = typeof info.scope === 'string' ? info.scope.split(/\s+/) : []
    // A delegated token carries SMTP.Send in its scope; an app-only one carries the SMTP.SendAsApp role instead.
    const roles = typeof info.roles === 'string' ? info.roles.split(/\s+/) : []
    const allowed = scopes.some((s) => scopeSatisfies(s, requiredScope)) || (o.appRole !== null && roles.includes(o.appRole ?? 'SMTP.SendAsApp'))
    if (info.active !== true || !names.includes(user.toLowerCase()) || !allowed) {
      throw fail(R.authFailed)
    }
    const mailbox = user.toLowerCase()
    const open = [...authenticated.values()].filter((m) => m === mailbox).length
    if (open >= behaviour.maxConnections) throw fail(R.threadLimit)
    authenticated.set(session.id, mailbox)
    authAttempts.push({ user, ok: true })
    return user
  }

  // Per connection: count it, remember it, and let replies that carry their own enhanced status code (Exchange's
  // wording) go out as written instead of getting smtp-server's generic one prefixed.
  const sockets = new Map<string, (typeof server.connections extends Set<infer C> ? C : never)>()
  const connect = server.connect.bind(server)
  server.connect = (socket, socketOptions) => {
    connect(socket, socketOptions)
    const conn = [...server.connections].pop()
    if (!conn) return
    sockets.set(conn.id, conn)
    connections.current++
    connections.max = Math.max(connections.max, connections.current)
    const send = conn.send.bind(conn)
    conn.send = (code, data, context) => {
      if (typeof data === 'string') {
        if (code === 220 && context === false && data.startsWith(`${HOST} ESMTP`)) {
          data = `${HOST} Microsoft ESMTP MAIL Service ready at ${new Date().toUTCString()}`
        } else if (code === 220 && data === 'Ready to start TLS') {
          data = 'SMTP server ready'
        } else if (context === 'MAIL_FROM_OK') {
          data = 'Sender OK'
        } else if (context === 'RCPT_TO_OK') {
          data = 'Recipient OK'
        }
        if (/^[245]\.\d{1,3}\.\d{1,3} /.test(data)) return send(code, data, false)
      }
      return send(code, data, context)
    }
  }

  // A client that dies mid-conversation (a killed worker) resets its socket; smtp-server reports that as a server
  // 'error', which must not bring the test process down.
  server.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject)
    server.listen(0, HOST, () => resolve())
  })
  const addr = server.server.address()
  const port = typeof addr === 'object' && addr ? addr.port : 0

  return {
    host: HOST,
    port,
    messages,
    authAttempts,
    connections,
    dataCommands: () => dataCount,
    messageIds: () => Promise.all(messages.map(async (m) => (await simpleParser(m.raw)).messageId)),
    behave(b) {
      behaviour = { ...behaviour, ...b }
      server.options.size = behaviour.maxMessageBytes
    },
    waitFor(n, timeoutMs = 5000) {
      if (messages.length >= n) return Promise.resolve()
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (messages.length < n) return
          clearTimeout(timer)
          events.off('message', check)
          resolve()
        }
        const timer = setTimeout(() => {
          events.off('message', check)
          reject(new Error(`smtp peer: ${messages.length} of ${n} messages after ${timeoutMs} ms`))
        }, timeoutMs)
        events.on('message', check)
      })
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve())
        for (const conn of server.connections) conn._socket.destroy()
      })
    },
  }
}

/** A token scope satisfies the required one if equal, or the same permission on another Exchange app id URI. */
function scopeSatisfies(granted: string, required: string) {
  if (granted === required) return true
  const split = (s: string) => {
    const i = s.lastIndexOf('/')
    return i < 0 ? ['', s] : [s.slice(0, i).toLowerCase(), s.slice(i + 1).toLowerCase()]
  }
  const [go, gp] = split(granted)
  const [ro, rp] = split(required)
  return gp === rp && EXCHANGE_ORIGINS.has(go ?? '') && EXCHANGE_ORIGINS.has(ro ?? '')
}

function replyError(r: SmtpReply) {
  return Object.assign(new Error(r.message), { responseCode: r.code })
}

function messageId(raw: Buffer) {
  const end = raw.indexOf('\r\n\r\n')
  const head = raw.subarray(0, end < 0 ? raw.length : end).toString('utf8')
  return /^Message-ID:\s*(<[^>\r\n]+>)/im.exec(head)?.[1] ?? `<${randomUUID()}@${HOST}>`
}

const sleep = (ms: number) => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve())
