import nodemailer from 'nodemailer'
import type { Transporter } from 'nodemailer'
import type SMTPPool from 'nodemailer/lib/smtp-pool/index.js'
import type { SecretBox } from '../crypto/secret-box.ts'
import type { Secret } from '../crypto/secret.ts'
import type { FailureType, OutgoingServerRow } from '../db/schema.ts'
import type { CredentialService } from '../oauth/credentials.ts'
import { providerFor } from '../oauth/providers.ts'

/** Exchange Online allows 3 concurrent SMTP AUTH connections per mailbox; a 4th gets 432 4.3.2. */
export const MAX_CONNECTIONS_PER_MAILBOX = 3

/** What the queue needs to know about a failed submission; decided here, once (style.md §6). */
export interface Verdict {
  kind: 'transient' | 'permanent' | 'auth' | 'lockout'
  failureType: FailureType
  reason: string
  response?: string
}

interface SmtpError extends Error {
  code?: string
  responseCode?: number
  response?: string
  command?: string
}

/**
 * Classify an SMTP failure. 4xx and connection trouble are worth retrying; 5xx are not, because Exchange locks
 * a mailbox that keeps failing (5.2.251–5.2.255, "continuous-error throttling").
 * @see https://learn.microsoft.com/en-us/Exchange/mail-flow-best-practices/continuous-error-throttling-smtp-auth-submissions
 */
export function classify(e: unknown, where: string): Verdict {
  const err = e as SmtpError
  const response = err.response?.trim()
  const said = response ? `${where} answered "${response}"` : `${where}: ${err.message}`
  const code = err.responseCode
  if (code === undefined || code < 500) {
    // No reply at all (connection refused, reset, timeout, TLS) or a 4xx (421, 432 4.3.2, 451 4.7.x): retry later.
    return { kind: 'transient', failureType: 'mail_smtp', reason: said, response }
  }
  if (/\b5\.2\.25[1-5]\b/.test(response ?? '')) return { kind: 'lockout', failureType: 'mail_smtp', reason: said, response }
  if (err.code === 'EAUTH' || /^AUTH/i.test(err.command ?? '')) return { kind: 'auth', failureType: 'mail_smtp', reason: said, response }
  if (/^MAIL FROM/i.test(err.command ?? '') || /\b5\.7\.60\b|SendAsDenied/i.test(response ?? '')) {
    return { kind: 'permanent', failureType: 'mail_from_invalid', reason: said, response }
  }
  if (/^RCPT TO/i.test(err.command ?? '') || /\b5\.1\.\d+\b/.test(response ?? '')) {
    return { kind: 'permanent', failureType: 'mail_email_invalid', reason: said, response }
  }
  return { kind: 'permanent', failureType: 'mail_smtp', reason: said, response }
}

interface Pooled {
  transport: Transporter<SMTPPool.SentMessageInfo>
  version: string
}

/**
 * One single-connection pooled nodemailer transport per connection slot of an outgoing server (slots.ts): a slot
 * given back closes exactly its own connection, and no pool is ever resized. One AUTH per connection. Tokens
 * come from the credential service through nodemailer's provisionCallback; after a 535 nodemailer asks once
 * more with `renew`, and we refresh unless someone already did.
 */
export class TransportPool {
  readonly #pools = new Map<string, Pooled>()

  constructor(private readonly deps: { credentials: CredentialService; box: SecretBox }) {}

  /** The connection of one slot of a server (see slots.ts). */
  get(server: OutgoingServerRow, slot: number): Transporter<SMTPPool.SentMessageInfo> {
    const key = `${server.id}:${slot}`
    const version = `${server.updated_at}|${server.host}|${server.port}`
    const known = this.#pools.get(key)
    if (known?.version === version) return known.transport
    known?.transport.close()
    const transport = nodemailer.createTransport({ ...this.#options(server), maxConnections: 1 })
    this.#pools.set(key, { transport, version })
    return transport
  }

  /** Slots of a server that have an open pool here. */
  open(serverId: string): number[] {
    return [...this.#pools.keys()].filter((k) => k.startsWith(`${serverId}:`)).map((k) => Number(k.slice(serverId.length + 1)))
  }

  #options(server: OutgoingServerRow): SMTPPool.Options {
    const p = providerFor(server.authentication)
    let last: Secret | undefined
    const auth: SMTPPool.Options['auth'] = p
      ? {
          type: 'OAuth2',
          user: server.username,
          provisionCallback: (user: string, renew: boolean, cb: (err: Error | null, token?: string, expires?: number) => void) => {
            this.deps.credentials.accessToken(p, { mailbox: user, tenant: server.tenant_id, host: server.host }, renew && last ? { rejected: last } : {}).then(
              (token) => {
                last = token
                cb(null, token.reveal())
              },
              (err: Error) => cb(err),
            )
          },
        } as SMTPPool.Options['auth']
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

  /** Close a slot's connection (or all of a server's): idle now, busy after its message. */
  drop(serverId: string, slot?: number): void {
    for (const s of slot === undefined ? this.open(serverId) : [slot]) {
      this.#pools.get(`${serverId}:${s}`)?.transport.close()
      this.#pools.delete(`${serverId}:${s}`)
    }
  }

  close(): void {
    for (const { transport } of this.#pools.values()) transport.close()
    this.#pools.clear()
  }
}
