import nodemailer from 'nodemailer'
import type { Transporter } from 'nodemailer'
import type SMTPPool from 'nodemailer/lib/smtp-pool/index.js'
import type { SecretBox } from '../crypto/secret-box.ts'
import type { Secret } from '../crypto/secret.ts'
import type { OutgoingServerRow } from '../db/schema.ts'
import { providerFor } from '../oauth/providers.ts'
import { type Accepted, type ComposedMail, type MailTransport, serverPlace, type Verdict } from './mail-transport.ts'

/** Exchange Online allows 3 concurrent SMTP AUTH connections per mailbox; a 4th gets 432 4.3.2. */
export const MAX_CONNECTIONS_PER_MAILBOX = 3

type Server = Pick<OutgoingServerRow, 'name' | 'host' | 'port' | 'username'>

/** What to do when Exchange answers 5.7.139: SMTP AUTH is off for the mailbox or its whole tenant. */
export const enableSmtpAuth = (mailbox: string): string =>
  `Enable Authenticated SMTP in the Microsoft 365 admin center (Users → Active users → ${mailbox} → Mail → Manage email apps), ` +
  `or in PowerShell: Set-CASMailbox -Identity ${mailbox} -SmtpClientAuthenticationDisabled $false ` +
  `(tenant-wide: Set-TransportConfig -SmtpClientAuthenticationDisabled $false).`

/** One SMTP reply and the command it answered, from nodemailer's error or from Test Connection's probe. */
export interface SmtpAnswer {
  /** The reply code; none when no reply came (connection refused, reset, timeout, TLS). */
  code?: number
  /** The whole reply line as the server sent it: "535 5.7.3 Authentication unsuccessful". */
  response?: string
  /** `AUTH`, `MAIL FROM`, `RCPT TO`, `DATA`… */
  command?: string
}

/**
 * The verdict on an SMTP answer. 4xx and connection trouble are worth retrying; 5xx are not, because Exchange
 * locks a mailbox that keeps failing (5.2.251–5.2.255, "continuous-error throttling"), so a lock-out pauses the
 * server. 535 5.7.139 says SMTP AUTH is disabled for the mailbox or tenant: no token cures that, so it pauses
 * the server with what to do instead of refreshing and turning the token red.
 * @see https://learn.microsoft.com/en-us/Exchange/mail-flow-best-practices/continuous-error-throttling-smtp-auth-submissions
 * @see https://learn.microsoft.com/en-us/exchange/clients-and-mobile-in-exchange-online/authenticated-client-smtp-submission
 */
export function replyVerdict(a: SmtpAnswer, server: Server, cause = 'no reply'): Verdict {
  const response = a.response?.trim()
  const said = response ? `${serverPlace(server)} answered "${response}"` : `${serverPlace(server)}: ${cause}`
  const text = response ?? ''
  const command = a.command ?? ''
  if (a.code === undefined || a.code < 500) {
    // No reply at all (connection refused, reset, timeout, TLS) or a 4xx (421, 432 4.3.2, 451 4.7.x): retry later.
    return { kind: 'transient', failureType: 'mail_smtp', reason: said, response }
  }
  if (/\b5\.2\.25[1-5]\b/.test(text)) return { kind: 'pause', mail: 'fails', failureType: 'mail_smtp', reason: said, response }
  if (/\b5\.7\.139\b/.test(text)) {
    const reason = `SMTP AUTH is disabled for ${server.username} or its tenant (${said}). ${enableSmtpAuth(server.username)} Or send through Microsoft Graph instead.`
    return { kind: 'pause', mail: 'waits', failureType: 'mail_smtp', reason, response }
  }
  if (/^AUTH/i.test(command)) return { kind: 'refused', failureType: 'mail_smtp', reason: said, response }
  if (/^MAIL FROM/i.test(command) || /\b5\.7\.60\b|SendAsDenied/i.test(text)) return { kind: 'permanent', failureType: 'mail_from_invalid', reason: said, response }
  if (/^RCPT TO/i.test(command) || /\b5\.1\.\d+\b/.test(text)) return { kind: 'permanent', failureType: 'mail_email_invalid', reason: said, response }
  return { kind: 'permanent', failureType: 'mail_smtp', reason: said, response }
}

interface SmtpError extends Error {
  code?: string
  responseCode?: number
  response?: string
  command?: string
}

/** The verdict on a nodemailer error (its codes: lib/errors.js), the one place that reads them. */
export function smtpVerdict(e: unknown, server: Server): Verdict {
  const err = e as SmtpError
  // nodemailer's pool fails the mails still waiting for one of its connections when it is closed (this node paused
  // the server, or its share of connection slots changed): they never reached the server.
  if (err.message === 'Connection pool was closed') {
    return { kind: 'closed', failureType: 'mail_smtp', reason: `${serverPlace(server)}: the connection closed before the mail was submitted` }
  }
  return replyVerdict({ code: err.responseCode, response: err.response, command: err.code === 'EAUTH' ? 'AUTH' : err.command }, server, err.message)
}

interface Pooled {
  transport: Transporter<SMTPPool.SentMessageInfo>
  version: string
}

/**
 * SMTP, the one mail transport today: one single-connection pooled nodemailer transport per connection slot of an
 * outgoing server (slots.ts), so a slot given back closes exactly its own connection and no pool is ever resized;
 * one AUTH per connection. A connection that authenticates presents the token the latest submission to its server
 * carried: refreshing a refused token is the token-use step's job (oauth/token-use.ts), not nodemailer's.
 */
export class SmtpTransport implements MailTransport {
  readonly #pools = new Map<string, Pooled>()
  readonly #tokens = new Map<string, Secret>()

  constructor(private readonly deps: { box: SecretBox }) {}

  async send(server: OutgoingServerRow, mail: ComposedMail, o: { slot: number; token?: Secret }): Promise<Accepted | Verdict> {
    if (o.token) this.#tokens.set(server.id, o.token)
    try {
      const info = await this.#connection(server, o.slot).sendMail(mail)
      return { kind: 'accepted', response: info.response }
    } catch (e) {
      return smtpVerdict(e, server)
    }
  }

  /** The connection of one slot of a server (see slots.ts), replaced when the server's settings changed. */
  #connection(server: OutgoingServerRow, slot: number): Transporter<SMTPPool.SentMessageInfo> {
    const key = `${server.id}:${slot}`
    const version = `${server.updated_at}|${server.host}|${server.port}`
    const known = this.#pools.get(key)
    if (known?.version === version) return known.transport
    known?.transport.close()
    const transport = nodemailer.createTransport({ ...this.#options(server), maxConnections: 1 })
    this.#pools.set(key, { transport, version })
    return transport
  }

  open(serverId: string): number[] {
    return [...this.#pools.keys()].filter((k) => k.startsWith(`${serverId}:`)).map((k) => Number(k.slice(serverId.length + 1)))
  }

  #options(server: OutgoingServerRow): SMTPPool.Options {
    const auth: SMTPPool.Options['auth'] = providerFor(server.authentication)
      ? ({
          type: 'OAuth2',
          user: server.username,
          // Asked at each connection's AUTH; `renew` (after a 334 challenge) gets the same token, so the refusal
          // reaches the token-use step, which refreshes once for every caller.
          provisionCallback: (user: string, _renew: boolean, cb: (err: Error | null, token?: string) => void) => {
            const token = this.#tokens.get(server.id)
            if (token) cb(null, token.reveal())
            else cb(new Error(`no access token was given for ${user}`))
          },
        } as SMTPPool.Options['auth'])
      : server.authentication === 'login'
        ? { user: server.username, pass: this.deps.box.open(server.password!, 'outgoing_servers.password').reveal() }
        : undefined
    return {
      pool: true,
      host: server.host,
      port: server.port,
      secure: server.encryption === 'ssl',
      requireTLS: server.encryption === 'starttls',
      ignoreTLS: server.encryption === 'none',
      // Never rotate: nodemailer opens the next connection before the old one has closed, which would briefly make
      // a 4th connection to the mailbox. A connection Exchange drops is replaced by the pool.
      maxMessages: Infinity,
      auth,
      connectionTimeout: 30_000,
      greetingTimeout: 30_000,
      socketTimeout: 120_000,
      name: 'mailbridge.localhost',
      logger: false,
    }
  }

  drop(serverId: string, slot?: number): void {
    for (const s of slot === undefined ? this.open(serverId) : [slot]) {
      this.#pools.get(`${serverId}:${s}`)?.transport.close()
      this.#pools.delete(`${serverId}:${s}`)
    }
  }

  close(): void {
    for (const { transport } of this.#pools.values()) transport.close()
    this.#pools.clear()
    this.#tokens.clear()
  }
}
