import { EventEmitter } from 'node:events'
import type { Kysely } from 'kysely'
import { bouncesOf } from '../bounces/mail-bounces.ts'
import { GroupCommit } from '../db/group-commit.ts'
import { type DB, newId, now } from '../db/index.ts'
import type { MailRow, MailState, OutgoingServerRow } from '../db/schema.ts'
import { MailbridgeError, invalid, notFound } from '../errors.ts'
import type { Logger } from '../log.ts'
import { domainOf, formatMailbox, type Mailbox } from '../mail-address.ts'
import type { SettingsStore } from '../settings-store.ts'
import { checkMail, type RawContent } from './mail-input.ts'
import { mailToApi, type Mail, type SendMailBody } from './mail-model.ts'
import type { RawMail } from './raw-message.ts'
import { selectServer, serverAddress } from './selection.ts'
import type { OutgoingServerService } from './service.ts'

export const DEFAULT_MAX_MAIL_BYTES = 35 * 1024 * 1024
/** Mailbridge's Message-ID for a mail it gives one to: unique by the mail id, in the sender's domain (RFC 5322 §3.6.4). */
export const messageIdFor = (id: string, domain: string): string => `<${id}.mailbridge@${domain}>`
const NO_SERVER = 'No outgoing server exists yet: create one (Settings → Outgoing Email Servers) before sending.'

export interface Page<T> {
  items: T[]
  next_cursor: string | null
}

/** The durable queue's front door: accept (one INSERT, then 202), look, retry, cancel. */
export class MailService {
  /** `queued` wakes this process's worker at once instead of at its next poll. */
  readonly events = new EventEmitter()

  constructor(
    private readonly deps: { db: Kysely<DB>; settings: SettingsStore; servers: OutgoingServerService; log: Logger; maxBytes: number },
  ) {
    deps.servers.changed.on('change', () => this.invalidateRouting())
    deps.settings.changed.on('change', () => this.invalidateRouting())
  }

  /** `servers`: the outgoing servers the caller may send through (an API token limited to servers); all when left out. */
  async accept(body: SendMailBody, servers?: readonly string[]): Promise<Mail> {
    const input = checkMail(body, this.deps.maxBytes)
    const { db } = this.deps
    if (input.idempotencyKey) {
      const existing = await db.selectFrom('mails').selectAll().where('idempotency_key', '=', input.idempotencyKey).executeTakeFirst()
      if (existing) return mailToApi(existing)
    }
    const { server, from } = await this.#route(input.from, input.serverId, servers)
    const id = newId()
    return this.#insert(this.#row(id, {
      idempotency_key: input.idempotencyKey ?? null,
      // Generated once: retries resend the same Message-ID, so receivers can drop duplicates.
      message_id: messageIdFor(id, domainOf(from.address)),
      from_addr: formatMailbox(from),
      to_addrs: JSON.stringify(input.to.map(formatMailbox)),
      cc_addrs: JSON.stringify(input.cc.map(formatMailbox)),
      bcc_addrs: JSON.stringify(input.bcc.map(formatMailbox)),
      reply_to: input.replyTo ? formatMailbox(input.replyTo) : null,
      subject: input.subject,
      content: JSON.stringify(input.content),
      size: input.size,
      server_id: server.id,
    }))
  }

  /**
   * Queue a message that arrived as raw MIME (the SMTP relay), with the envelope it came with. It is stored
   * before this resolves, so the relay answers 250 only for a committed mail. Server selection is the API's;
   * From rewriting happens at send time, on the header block only.
   */
  async acceptRaw(mail: RawMail, envelopeTo: string[]): Promise<Mail> {
    const { server, from } = await this.#route(mail.from)
    const content: RawContent = { raw: mail.raw.toString('base64'), envelope_to: envelopeTo }
    return this.#insert(this.#row(newId(), {
      idempotency_key: null,
      message_id: mail.messageId,
      from_addr: formatMailbox(from),
      to_addrs: JSON.stringify(mail.to),
      cc_addrs: JSON.stringify(mail.cc),
      bcc_addrs: JSON.stringify(mail.bcc),
      reply_to: mail.replyTo ? formatMailbox(mail.replyTo) : null,
      subject: mail.subject,
      content: JSON.stringify(content),
      size: mail.raw.length,
      server_id: server.id,
    }))
  }

  /** The outgoing server for a sender, as Odoo picks it (selection.ts); no sender means the first server's address. */
  async #route(sender: Mailbox | undefined, serverId?: string, allowed?: readonly string[]): Promise<{ server: OutgoingServerRow; from: Mailbox }> {
    const routing = await this.#routing()
    const { forced } = routing
    const servers = allowed ? routing.servers.filter((s) => allowed.includes(s.id)) : routing.servers
    if (allowed && !servers.length) throw new MailbridgeError('forbidden', { message: `This API token is limited to the servers ${allowed.join(', ')}, and none of them is an outgoing server: it may not send.` })
    let server = serverId ? servers.find((s) => s.id === serverId) : undefined
    if (serverId && !server) throw invalid('server_id', `Outgoing server ${serverId} does not exist.`)
    const from: Mailbox = sender ?? { name: '', address: forced ?? (servers[0] ? serverAddress(servers[0]) : '') }
    if (!from.address) throw new MailbridgeError('conflict', { field: 'from', message: NO_SERVER })
    server ??= selectServer(servers, forced ?? from.address)
    if (!server) throw new MailbridgeError('conflict', { field: 'server_id', message: NO_SERVER })
    return { server, from }
  }

  #row(id: string, fields: Omit<MailRow, 'id' | 'state' | 'attempts' | 'next_attempt_at' | 'last_attempt_at' | 'lease_until' | 'lease_owner' | 'failure_type' | 'failure_reason' | 'smtp_response' | 'sent_at' | 'created_at' | 'updated_at'>): MailRow {
    const at = now()
    return {
      id,
      state: 'outgoing',
      ...fields,
      attempts: 0,
      next_attempt_at: at,
      last_attempt_at: null,
      lease_until: null,
      lease_owner: null,
      failure_type: null,
      failure_reason: null,
      smtp_response: null,
      sent_at: null,
      created_at: at,
      updated_at: at,
    }
  }

  /** Accepted mails are committed together (db/group-commit.ts): one fsync for a burst, not one per mail. */
  readonly #inserts = new GroupCommit<MailRow, true>(async (rows) => {
    const { db } = this.deps
    try {
      await db.insertInto('mails').values(rows).execute()
      return rows.map(() => true as const)
    } catch (e) {
      if (rows.length === 1) return [e as Error]
      // One row spoiled the group (an idempotency key raced): each row again on its own, so only it fails.
      return Promise.all(rows.map((r) => db.insertInto('mails').values(r).execute().then(() => true as const, (x: Error) => x)))
    }
  })

  async #insert(row: MailRow): Promise<Mail> {
    try {
      await this.#inserts.add(row)
    } catch (e) {
      // Two requests with the same idempotency key at once: the loser returns the winner's mail.
      if (row.idempotency_key) {
        const winner = await this.deps.db.selectFrom('mails').selectAll().where('idempotency_key', '=', row.idempotency_key).executeTakeFirst()
        if (winner) return mailToApi(winner)
      }
      throw e
    }
    this.events.emit('queued', row.server_id)
    return mailToApi(row)
  }

  #routingCache?: { at: number; value: Promise<{ servers: OutgoingServerRow[]; forced: string | undefined }> }

  /**
   * The servers and `mail.force.smtp.from`, read at most once a second: accepting a burst of mails should not
   * re-read them per mail. A change made on another node is seen within that second.
   */
  #routing() {
    if (!this.#routingCache || Date.now() - this.#routingCache.at > 1000) {
      const value = (async () => ({ servers: await this.deps.servers.rows(), forced: (await this.deps.settings.parameter('mail.force.smtp.from')) || undefined }))()
      this.#routingCache = { at: Date.now(), value }
      value.catch(() => (this.#routingCache = undefined))
    }
    return this.#routingCache.value
  }

  /** Forget the cached servers and parameters (after a change on this node). */
  invalidateRouting(): void {
    this.#routingCache = undefined
  }

  async get(id: string): Promise<Mail> {
    const row = await this.deps.db.selectFrom('mails').selectAll().where('id', '=', id).executeTakeFirst()
    if (!row) throw notFound('Mail', id)
    return mailToApi(row, (await bouncesOf(this.deps.db, [id])).get(id))
  }

  /** Newest first; the cursor is the last id of the page. `servers`: only the mails of these outgoing servers. */
  async list(o: { state?: MailState; limit?: number; cursor?: string }, servers?: readonly string[]): Promise<Page<Mail>> {
    const limit = Math.min(Math.max(o.limit ?? 50, 1), 500)
    let q = this.deps.db.selectFrom('mails').selectAll().orderBy('id', 'desc').limit(limit + 1)
    if (o.state) q = q.where('state', '=', o.state)
    if (servers) q = q.where('server_id', 'in', servers.length ? [...servers] : [''])
    if (o.cursor) q = q.where('id', '<', o.cursor)
    const rows = await q.execute()
    const bounces = await bouncesOf(this.deps.db, rows.slice(0, limit).map((r) => r.id))
    const items = rows.slice(0, limit).map((r) => mailToApi(r, bounces.get(r.id)))
    return { items, next_cursor: rows.length > limit ? items.at(-1)!.id : null }
  }

  /** exception → outgoing, or an outgoing mail waiting for its next attempt → due now. */
  async retry(id: string): Promise<Mail> {
    const at = now()
    const r = await this.deps.db
      .updateTable('mails')
      .set({ state: 'outgoing', next_attempt_at: at, failure_type: null, failure_reason: null, updated_at: at })
      .where('id', '=', id)
      .where('state', 'in', ['exception', 'outgoing'])
      .executeTakeFirst()
    if (r.numUpdatedRows === 0n) await this.#refuse(id, 'retried', 'Only a failed mail (exception) or one waiting for its next attempt can be retried.')
    const mail = await this.get(id)
    this.events.emit('queued', mail.server_id)
    return mail
  }

  async cancel(id: string): Promise<Mail> {
    const r = await this.deps.db
      .updateTable('mails')
      .set({ state: 'cancel', updated_at: now() })
      .where('id', '=', id)
      .where('state', 'in', ['outgoing', 'exception'])
      .executeTakeFirst()
    if (r.numUpdatedRows === 0n) await this.#refuse(id, 'cancelled', 'Only a mail that is not sent and not being sent right now can be cancelled.')
    return this.get(id)
  }

  async #refuse(id: string, verb: string, why: string): Promise<never> {
    const mail = await this.get(id)
    throw new MailbridgeError('conflict', { message: `Mail ${id} is ${mail.state} and cannot be ${verb}. ${why}` })
  }
}
