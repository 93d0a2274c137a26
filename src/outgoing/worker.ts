import { EventEmitter } from 'node:events'
import { randomBytes } from 'node:crypto'
import type { QueueConfig } from '../config.ts'
import type { SecretBox } from '../crypto/secret-box.ts'
import type { Secret } from '../crypto/secret.ts'
import { GroupCommit } from '../db/group-commit.ts'
import { type Database, isoIn, now } from '../db/index.ts'
import type { MailRow, OutgoingServerRow } from '../db/schema.ts'
import { databaseErrorCode, MailbridgeError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { literalHeaderText, parseMailbox, toNodemailer, type Mailbox } from '../mail-address.ts'
import { accountOf, type CredentialService } from '../oauth/credentials.ts'
import { ProviderError } from '../oauth/protocol.ts'
import { providerFor } from '../oauth/providers.ts'
import { queueSeconds, sendSeconds } from '../metrics.ts'
import { PollLoop } from '../poll-loop.ts'
import type { SettingsService } from '../settings/service.ts'
import { mailOutcome, tokenInvalid, type MailOutcome } from '../webhooks/events.ts'
import type { WebhookService } from '../webhooks/service.ts'
import { recordAttempt } from './mail-attempts.ts'
import { isRaw, type StoredContent } from './mail-input.ts'
import type { MailService } from './mail-service.ts'
import { rewriteRawHeaders } from './raw-message.ts'
import { rewriteFrom } from './selection.ts'
import { SmtpSlots } from './slots.ts'
import { classify, TransportPool, type Verdict } from './transport.ts'

/** Mails handed to a server's pool per connection this node holds: enough to keep each one busy. */
const IN_FLIGHT_PER_CONNECTION = 8

/**
 * A claimed mail without its content: a claim takes up to IN_FLIGHT_PER_CONNECTION mails per connection, and
 * holding each one's content (up to ~48 MB of JSON) for its whole send would cost gigabytes for large mails.
 * The content is read by the delivery that composes it, and dropped once composed.
 */
const CLAIMED_COLUMNS = [
  'id', 'idempotency_key', 'state', 'message_id', 'from_addr', 'to_addrs', 'cc_addrs', 'bcc_addrs', 'reply_to', 'subject', 'size', 'server_id', 'attempts',
  'next_attempt_at', 'last_attempt_at', 'lease_until', 'lease_owner', 'failure_type', 'failure_reason', 'smtp_response', 'sent_at', 'created_at', 'updated_at',
] as const satisfies ReadonlyArray<Exclude<keyof MailRow, 'content'>>
/** What a claim returns: the listed columns and no others, so a column added to mails is not assumed to be read. */
type ClaimedMail = Pick<MailRow, (typeof CLAIMED_COLUMNS)[number]>

interface Outcome {
  mail: ClaimedMail
  set: Partial<Pick<MailRow, 'state' | 'smtp_response' | 'sent_at' | 'failure_type' | 'failure_reason' | 'next_attempt_at'>>
  countAttempt: boolean
}

/** Exponential backoff with ±20 % jitter, so a fleet of retries does not arrive together. */
export function backoffMs(attempts: number, q: Pick<QueueConfig, 'retryBaseMs' | 'retryMaxMs'>, random = Math.random): number {
  const base = Math.min(q.retryMaxMs, q.retryBaseMs * 2 ** Math.max(0, attempts - 1))
  return Math.round(base * (0.8 + 0.4 * random()))
}

const list = (json: string): Mailbox[] => (JSON.parse(json) as string[]).map((v) => parseMailbox(v)!).filter(Boolean)

/**
 * A waiting mail says why when the reason changes; the same reason at each retry (every minute for a dead token)
 * goes to debug, or one broken mailbox fills the log. The reason stored with the mail is the last one logged.
 */
const sameReason = (mail: Pick<MailRow, 'failure_reason'>, reason: string): boolean => mail.failure_reason === reason

/**
 * The queue worker: claims due mails per server under a lease, sends them over the server's pool, and records
 * each outcome. Leases make a crashed worker's mails come back; the per-minute limit counts every server's
 * attempts in the database, so it holds across workers.
 */
export class MailWorker {
  readonly events = new EventEmitter()
  readonly id: string
  readonly #inflight = new Map<string, number>()
  readonly #sends = new Set<Promise<void>>()
  readonly #pool: TransportPool
  readonly #slots: SmtpSlots
  readonly #slotLoad = new Map<string, number>()
  /** When this node last had mail for a server. */
  readonly #busyAt = new Map<string, number>()
  #lastSweep = 0
  /** Mailboxes whose dead token this process already announced (token.invalid): once until it works again. */
  readonly #announced = new Set<string>()
  /** Servers this node saw lock out or refuse AUTH (when, and until when): mails claimed before wait, unattempted. */
  readonly #pausedHere = new Map<string, { at: number; until: number }>()
  readonly #poll: PollLoop

  constructor(
    private readonly deps: {
      database: Database
      box: SecretBox
      credentials: CredentialService
      settings: SettingsService
      mails: MailService
      log: Logger
      queue: QueueConfig
      /** Records mail.sent / mail.failed / token.invalid as durable webhook deliveries. */
      webhooks?: WebhookService
      /** This node's id (queue/heartbeat.ts), the owner of its leases; one of its own when not given. */
      nodeId?: string
    },
  ) {
    this.id = deps.nodeId ?? `w-${randomBytes(4).toString('hex')}`
    this.#pool = new TransportPool({ credentials: deps.credentials, box: deps.box })
    this.#slots = new SmtpSlots(deps.database.db, this.id, deps.queue.slotLeaseMs)
    this.#poll = new PollLoop({ pass: () => this.tick(), pollMs: deps.queue.pollMs, log: deps.log, what: 'mail worker' })
    deps.mails.events.on('queued', () => this.#poll.wake())
  }

  start(): void {
    this.#poll.start()
  }

  /** One pass: give back expired leases, then claim and start sending for every server with room. */
  async tick(): Promise<number> {
    const { db } = this.deps.database
    const at = now()
    if (Date.now() - this.#lastSweep > 1000) {
      this.#lastSweep = Date.now()
      await db
        .updateTable('mails')
        .set({ state: 'outgoing', lease_owner: null, lease_until: null, updated_at: at })
        .where('state', '=', 'sending')
        .where('lease_until', '<', at)
        .execute()
    }
    const servers = await db.selectFrom('outgoing_servers').selectAll().execute()
    // Only servers with mail due (or in flight) take connection slots and claim: a node holding a thousand connected
    // mailboxes with no mail must not write a thousand slot leases and claims a second (bench/mailboxes).
    const due = new Set(
      (await db.selectFrom('mails').select('server_id').distinct().where('state', '=', 'outgoing').where('next_attempt_at', '<=', at).execute()).map((m) => m.server_id),
    )
    const forced = (await this.deps.settings.parameter('mail.force.smtp.from')) || undefined
    // At most sendConcurrency mailboxes hold connections here at once: a thousand mailboxes with a mail each must not
    // open a thousand SMTP connections at once (TLS handshakes time out, and Exchange throttles such bursts).
    let sending = servers.filter((s) => this.#slots.count(s.id) > 0).length
    const waiting = [...due].some((id) => this.#slots.count(id) === 0)
    let started = 0
    for (const server of servers) {
      const inflight = this.#inflight.get(server.id) ?? 0
      if (server.paused_until && server.paused_until > at) {
        if (inflight === 0) sending -= this.#releaseServer(server.id)
        continue
      }
      if (inflight === 0 && !due.has(server.id)) {
        // Keep connections through short lulls, unless mailboxes with mail wait for room on this node.
        const full = waiting && sending >= this.deps.queue.sendConcurrency
        if (full || Date.now() - (this.#busyAt.get(server.id) ?? 0) > this.deps.queue.slotLeaseMs) sending -= this.#releaseServer(server.id)
        continue
      }
      const had = this.#slots.count(server.id)
      if (had === 0 && sending >= this.deps.queue.sendConcurrency) continue
      const slots = await this.#slots.refresh(server.id, true)
      if (had === 0 && slots > 0) sending++
      // Close the connections of slots given back (fair share shrank, or a lease was lost).
      const held = new Set(this.#slots.held(server.id))
      for (const slot of this.#pool.open(server.id)) if (!held.has(slot)) this.#pool.drop(server.id, slot)
      const room = slots * IN_FLIGHT_PER_CONNECTION - inflight
      if (room <= 0) continue
      const claimed = await this.#claim(server, room)
      if (claimed.length > 0 || inflight > 0) this.#busyAt.set(server.id, Date.now())
      // Keep connections through short lulls (and through claims lost to other nodes); give them back when idle.
      else if (Date.now() - (this.#busyAt.get(server.id) ?? 0) > this.deps.queue.slotLeaseMs) sending -= this.#releaseServer(server.id)
      for (const mail of claimed) {
        started++
        this.#inflight.set(server.id, (this.#inflight.get(server.id) ?? 0) + 1)
        const send = this.#deliver(server, mail, forced)
          // The database refused to record the outcome (busy, full): the mail stays leased, and the lease hands it
          // back to the queue. At least once: if the server had taken it, it goes out again.
          .catch((e: unknown) => this.deps.log.error({ err: e, mail_id: mail.id, server_id: server.id, mailbox: server.username }, 'could not record the outcome of a mail; its lease returns it to the queue'))
          .finally(() => {
            const left = (this.#inflight.get(server.id) ?? 1) - 1
            this.#inflight.set(server.id, left)
            this.#sends.delete(send)
            // Refill in batches, not one claim per finished mail.
            if (left <= (this.#slots.count(server.id) * IN_FLIGHT_PER_CONNECTION) / 2) this.#poll.wake()
          })
        this.#sends.add(send)
      }
    }
    return started
  }

  /** The held slot with the fewest mails waiting on its connection. */
  #pickSlot(serverId: string): number | undefined {
    let best: number | undefined
    for (const slot of this.#slots.held(serverId)) {
      if (best === undefined || (this.#slotLoad.get(`${serverId}:${slot}`) ?? 0) < (this.#slotLoad.get(`${serverId}:${best}`) ?? 0)) best = slot
    }
    return best
  }

  /** No mail for a server here: close its connections and give its slots back; 1 when it held any. */
  #releaseServer(serverId: string): 0 | 1 {
    if (this.#slots.count(serverId) === 0) return 0
    this.#pool.drop(serverId)
    this.#slots.release(serverId)
    return 1
  }

  /** Wait until every mail this worker started has an outcome (tests and drains). */
  async idle(): Promise<void> {
    while (this.#sends.size) await Promise.allSettled([...this.#sends])
  }

  async #claim(server: OutgoingServerRow, room: number): Promise<ClaimedMail[]> {
    const { db, traits } = this.deps.database
    return db.transaction().execute(async (tx) => {
      // Serialise claims per server across nodes, so the per-minute count below cannot be raced (PostgreSQL).
      if (traits.skipLocked) await tx.selectFrom('outgoing_servers').select('id').where('id', '=', server.id).forUpdate().execute()
      const at = now()
      let limit = room
      if (server.max_per_minute) {
        const recent = await tx
          .selectFrom('mails')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('server_id', '=', server.id)
          .where('last_attempt_at', '>', isoIn(-60_000))
          .executeTakeFirstOrThrow()
        limit = Math.min(limit, server.max_per_minute - Number(recent.n))
      }
      if (limit <= 0) return []
      const due = await tx
        .selectFrom('mails')
        .select('id')
        .where('state', '=', 'outgoing')
        .where('server_id', '=', server.id)
        .where('next_attempt_at', '<=', at)
        .orderBy('next_attempt_at')
        .orderBy('id')
        .limit(limit)
        .$if(traits.skipLocked, (q) => q.forUpdate().skipLocked())
        .execute()
      if (due.length === 0) return []
      return tx
        .updateTable('mails')
        .set({ state: 'sending', lease_owner: this.id, lease_until: isoIn(this.deps.queue.leaseMs), last_attempt_at: at, updated_at: at })
        .where('id', 'in', due.map((d) => d.id))
        .where('state', '=', 'outgoing')
        .returning(CLAIMED_COLUMNS)
        .execute()
    })
  }

  #message(server: OutgoingServerRow, mail: ClaimedMail, stored: string, forced: string | undefined) {
    const content = JSON.parse(stored) as StoredContent
    const from = parseMailbox(mail.from_addr)!
    const replyTo = mail.reply_to ? parseMailbox(mail.reply_to) : undefined
    const r = rewriteFrom(server, from, replyTo, forced)
    if (isRaw(content)) {
      // Relayed mail goes out as it came, with only From/Reply-To rewritten; the envelope is the SMTP session's.
      return { raw: rewriteRawHeaders(Buffer.from(content.raw, 'base64'), from, r), envelope: { from: r.envelopeFrom, to: content.envelope_to } }
    }
    const to = list(mail.to_addrs)
    const cc = list(mail.cc_addrs)
    const bcc = list(mail.bcc_addrs)
    return {
      messageId: mail.message_id,
      date: new Date(mail.created_at),
      from: toNodemailer(r.from),
      replyTo: r.replyTo ? toNodemailer(r.replyTo) : undefined,
      to: to.map(toNodemailer),
      cc: cc.map(toNodemailer),
      bcc: bcc.map(toNodemailer),
      subject: literalHeaderText(mail.subject),
      text: content.text,
      html: content.html,
      headers: content.headers,
      attachments: content.attachments.map((a) => ({ filename: a.filename, contentType: a.content_type, content: Buffer.from(a.content_base64, 'base64') })),
      envelope: { from: r.envelopeFrom, to: [...to, ...cc, ...bcc].map((m) => m.address) },
    }
  }

  async #deliver(server: OutgoingServerRow, mail: ClaimedMail, forced: string | undefined): Promise<void> {
    const log = this.deps.log.child({ mail_id: mail.id, server_id: server.id, mailbox: server.username })
    const where = `${server.name} (${server.host}:${server.port}, ${server.username})`
    const p = providerFor(server.authentication)
    let token: Secret | undefined
    try {
      // Ask for the token first: a dead token keeps the mail queued instead of failing it.
      if (p) token = await this.deps.credentials.accessToken(p, accountOf(server))
    } catch (e) {
      return this.#tokenProblem(server, mail, e as Error, log)
    }
    const stored = await this.deps.database.db.selectFrom('mails').select('content').where('id', '=', mail.id).executeTakeFirstOrThrow()
    const message = this.#message(server, mail, stored.content, forced)
    let poolReplaced = 0
    let authRetried = false
    for (;;) {
      let sending: number | undefined
      try {
        const held = this.#heldBack(server.id, mail)
        if (held) return this.#finish(mail, { state: 'outgoing', next_attempt_at: held }, false)
        const slot = this.#pickSlot(server.id)
        if (slot === undefined) return this.#finish(mail, { state: 'outgoing', next_attempt_at: now() }, false)
        this.#slotLoad.set(`${server.id}:${slot}`, (this.#slotLoad.get(`${server.id}:${slot}`) ?? 0) + 1)
        sending = performance.now()
        const info = await this.#pool
          .get(server, slot)
          .sendMail(message)
          .finally(() => this.#slotLoad.set(`${server.id}:${slot}`, (this.#slotLoad.get(`${server.id}:${slot}`) ?? 1) - 1))
        sendSeconds.observe({ outcome: 'sent' }, (performance.now() - sending) / 1000)
        queueSeconds.observe((Date.now() - Date.parse(mail.created_at)) / 1000)
        await this.#finish(mail, { state: 'sent', smtp_response: info.response, sent_at: now() })
        this.#announced.delete(server.username.toLowerCase())
        // Clears a use failure whoever recorded it (another node, the fetcher); no write when none is on record.
        if (p) await this.deps.credentials.recordUseSuccess(p, accountOf(server))
        log.debug({ response: info.response }, 'mail sent')
        return
      } catch (e) {
        // Our own database failing is not the SMTP server's doing: never record it as the server's answer.
        if (databaseErrorCode(e)) throw e
        if (e instanceof ProviderError || (e instanceof MailbridgeError && e.code === 'token_error')) return this.#tokenProblem(server, mail, e, log)
        // The server was paused while this mail waited for a connection: it never reached Exchange.
        if ((e as Error).message === 'Connection pool was closed' && this.#heldBack(server.id, mail)) continue
        // The pool was replaced (this node's share of connection slots changed) before the mail got a connection.
        if ((e as Error).message === 'Connection pool was closed' && poolReplaced++ < 3) continue
        const verdict = classify(e, where)
        if (sending !== undefined) sendSeconds.observe({ outcome: verdict.kind === 'transient' ? 'deferred' : 'failed' }, (performance.now() - sending) / 1000)
        // Exchange answers a stale token with 535 at once (no 334 challenge, so nodemailer does not renew):
        // refresh once, unless another mail already did, and try again on a new connection.
        if (verdict.kind === 'auth' && p && !authRetried) {
          authRetried = true
          log.info('535 on AUTH: retrying once with a refreshed token')
          try {
            token = await this.deps.credentials.accessToken(p, accountOf(server), { rejected: token })
          } catch (te) {
            return this.#tokenProblem(server, mail, te as Error, log)
          }
          continue
        }
        return this.#failed(server, mail, verdict, log)
      }
    }
  }

  #finish(mail: ClaimedMail, set: Outcome['set'], countAttempt = true): Promise<void> {
    return this.#outcomes.add({ mail, set, countAttempt })
  }

  /**
   * Outcomes are committed together (db/group-commit.ts): a pool finishing mails back to back costs one
   * transaction per group, not one per mail. Each webhook delivery is written in the transaction of the state it
   * reports: both or neither. A crash before the commit sends those mails again (at least once, never zero).
   */
  readonly #outcomes = new GroupCommit<Outcome, void>(async (items) => {
    const { webhooks } = this.deps
    const reported: Array<[string, MailOutcome]> = []
    await this.deps.database.db.transaction().execute(async (tx) => {
      for (const { mail, set, countAttempt } of items) {
        const r = await tx
          .updateTable('mails')
          .set((eb) => ({ ...set, lease_owner: null, lease_until: null, updated_at: now(), ...(countAttempt ? { attempts: eb('attempts', '+', 1) } : {}) }))
          .where('id', '=', mail.id)
          .where('lease_owner', '=', this.id)
          .executeTakeFirst()
        if (countAttempt && r.numUpdatedRows > 0n) await recordAttempt(tx, mail, set, now())
        if (set.state !== 'sent' && set.state !== 'exception') continue
        const { event, data } = mailOutcome(mail, set.state === 'sent' ? { state: 'sent' } : { state: 'exception', failure_type: set.failure_type ?? null, failure_reason: set.failure_reason ?? null })
        if (webhooks && r.numUpdatedRows > 0n) await webhooks.enqueue(tx, event, data)
        reported.push([event, data])
      }
    })
    for (const [name, event] of reported) this.events.emit(name, event)
    return items.map(() => undefined)
  })

  async #failed(server: OutgoingServerRow, mail: ClaimedMail, v: Verdict, log: Logger): Promise<void> {
    const attempts = mail.attempts + 1
    if (v.kind === 'transient' && attempts < this.deps.queue.maxAttempts) {
      const wait = backoffMs(attempts, this.deps.queue)
      log[sameReason(mail, v.reason) ? 'debug' : 'info']({ attempts, retry_in_s: Math.round(wait / 1000), cause: v.reason }, 'mail deferred')
      return this.#finish(mail, { state: 'outgoing', next_attempt_at: isoIn(wait), failure_reason: v.reason, smtp_response: v.response ?? null })
    }
    if (v.kind === 'lockout' || v.kind === 'auth') {
      // Exchange blocks a mailbox that keeps failing; stop this server before we make it worse. Closing its pool
      // hands back the mails queued on its connections (see #deliver); those already on the wire finish.
      this.#pausedHere.set(server.id, { at: Date.now(), until: Date.now() + this.deps.queue.pauseMs })
      this.#pool.drop(server.id)
      const paused = await this.#pause(server, v.reason)
      if (!paused && v.kind === 'auth') {
        // Another mail already failed AUTH and paused the server: this one waits for the pause, it did nothing wrong.
        return this.#finish(mail, { state: 'outgoing', next_attempt_at: isoIn(this.deps.queue.pauseMs) }, false)
      }
      const p = providerFor(server.authentication)
      if (v.kind === 'auth' && p) {
        await this.deps.credentials.recordUseFailure(p, accountOf(server), v.reason)
      }
    }
    const reason = v.kind === 'transient' ? `${v.reason} (gave up after ${attempts} attempts)` : v.reason
    log.warn({ failure_type: v.failureType, cause: reason }, 'mail failed')
    await this.#finish(mail, { state: 'exception', failure_type: v.failureType, failure_reason: reason, smtp_response: v.response ?? null })
  }

  /**
   * For a mail claimed before this node saw its server lock out: when it may be tried (ISO). Later claims follow
   * the pause in the database, which the claim already respects.
   */
  #heldBack(serverId: string, mail: ClaimedMail): string | undefined {
    const p = this.#pausedHere.get(serverId)
    if (!p || p.until <= Date.now() || Date.parse(mail.last_attempt_at ?? mail.created_at) > p.at) return undefined
    return new Date(p.until).toISOString()
  }

  /** Pause a server unless it already is; true when this call paused it. */
  async #pause(server: OutgoingServerRow, reason: string): Promise<boolean> {
    const at = now()
    const r = await this.deps.database.db
      .updateTable('outgoing_servers')
      .set({ paused_until: isoIn(this.deps.queue.pauseMs), pause_reason: reason })
      .where('id', '=', server.id)
      .where((eb) => eb.or([eb('paused_until', 'is', null), eb('paused_until', '<', at)]))
      .executeTakeFirst()
    if (r.numUpdatedRows > 0n) this.deps.log.warn({ server_id: server.id, mailbox: server.username, cause: reason }, 'outgoing server paused')
    return r.numUpdatedRows > 0n
  }

  async #tokenProblem(server: OutgoingServerRow, mail: ClaimedMail, e: Error, log: Logger): Promise<void> {
    const transient = e instanceof ProviderError && e.transient
    const waited = Date.now() - Date.parse(mail.created_at)
    if (!transient && waited > this.deps.queue.tokenWaitMs) {
      log.warn({ cause: e.message }, 'mail failed: the token stayed invalid too long')
      return this.#finish(mail, { state: 'exception', failure_type: 'mail_smtp', failure_reason: `The token of ${server.username} stayed invalid for ${Math.round(waited / 60_000)} minutes: ${e.message}` }, false)
    }
    // An unreachable token endpoint is not the mail's fault: it spends no attempt (a 4xx after the outage still has
    // the whole budget), and the mail waits as long again as it has waited, so a long outage thins its own retries.
    const { retryBaseMs, retryMaxMs } = this.deps.queue
    const wait = transient ? backoffMs(1, { retryBaseMs: Math.max(retryBaseMs, waited), retryMaxMs }) : Math.max(retryBaseMs, 60_000)
    log[sameReason(mail, e.message) ? 'debug' : 'warn']({ cause: e.message, retry_in_s: Math.round(wait / 1000) }, 'mail waits for a valid token')
    // An unreachable provider is not a dead token: nobody needs to Reconnect, so nothing is announced.
    if (!transient) this.events.emit('token.invalid', { server_id: server.id, mailbox: server.username, reason: e.message })
    // Announced once per mailbox until a mail gets through again, and before this worker moves on.
    const mailbox = server.username.toLowerCase()
    if (this.deps.webhooks && !transient && !this.#announced.has(mailbox)) {
      await this.deps.webhooks.enqueue(this.deps.database.db, 'token.invalid', tokenInvalid('outgoing', server, e.message))
      this.#announced.add(mailbox)
    }
    await this.#finish(mail, { state: 'outgoing', next_attempt_at: isoIn(wait), failure_reason: e.message }, false)
  }

  /**
   * Drain (SIGTERM): stop claiming, let mails being sent finish for up to `drainMs`, then hand what remains back
   * to the queue. Delivery is at least once: a mail cut off mid-DATA may go out twice, never zero times.
   */
  async stop(): Promise<void> {
    if (!this.#poll.started && this.#sends.size === 0) return
    await this.#poll.stop()
    const drained = await Promise.race([this.idle().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), this.deps.queue.drainMs).unref())])
    if (!drained) {
      await this.deps.database.db
        .updateTable('mails')
        .set({ state: 'outgoing', lease_owner: null, lease_until: null, updated_at: now() })
        .where('state', '=', 'sending')
        .where('lease_owner', '=', this.id)
        .execute()
    }
    this.#pool.close()
    await this.#slots.releaseAll()
  }
}
