import type { ExpressionBuilder } from 'kysely'
import { randomBytes } from 'node:crypto'
import type { QueueConfig } from '../config.ts'
import type { SecretBox } from '../crypto/secret-box.ts'
import { type Database, type DB, isoIn, now } from '../db/index.ts'
import type { OutgoingServerRow } from '../db/schema.ts'
import { errorCode, type Logger } from '../log.ts'
import type { CredentialService } from '../oauth/credentials.ts'
import { claimDue, releaseLeases } from '../queue/lease.ts'
import { PollLoop } from '../queue/poll-loop.ts'
import type { SettingsService } from '../settings/service.ts'
import type { WebhookService } from '../webhooks/service.ts'
import { CLAIMED_COLUMNS, type ClaimedMail } from './claimed-mail.ts'
import { composeMail } from './compose.ts'
import type { MailService } from './mail-service.ts'
import type { MailTransport } from './mail-transport.ts'
import { MailOutcomes } from './outcomes.ts'
import { ServerPauses } from './pauses.ts'
import { SmtpSlots } from './slots.ts'
import { submitMail } from './submit.ts'
import { SmtpTransport } from './transport.ts'

/** Mails handed to a server's pool per connection this node holds: enough to keep each one busy. */
const IN_FLIGHT_PER_CONNECTION = 8

/** A mail's lease: `sending` while held, `outgoing` again when handed back. */
const SENDING = { table: 'mails', leased: (eb: ExpressionBuilder<DB, 'mails'>) => eb('state', '=', 'sending'), back: { state: 'outgoing' } } as const

/**
 * The queue worker's loop: for every server with mail due, it holds connection slots (slots.ts; at most
 * `sendConcurrency` mailboxes at once), claims as many mails as its connections can take under a lease
 * (queue/lease.ts), and hands each to submit.ts, whose result outcomes.ts records. Leases make a crashed worker's
 * mails come back; the per-minute limit counts every server's attempts in the database, so it holds across workers.
 */
export class MailWorker {
  readonly id: string
  readonly #inflight = new Map<string, number>()
  readonly #sends = new Set<Promise<void>>()
  readonly #transport: MailTransport
  readonly #slots: SmtpSlots
  readonly #slotLoad = new Map<string, number>()
  /** When this node last had mail for a server. */
  readonly #busyAt = new Map<string, number>()
  #lastSweep = 0
  readonly #pauses: ServerPauses
  readonly #outcomes: MailOutcomes
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
      /** How mails leave; SMTP when not given. */
      transport?: MailTransport
    },
  ) {
    this.id = deps.nodeId ?? `w-${randomBytes(4).toString('hex')}`
    this.#transport = deps.transport ?? new SmtpTransport({ box: deps.box })
    this.#slots = new SmtpSlots(deps.database.db, this.id, deps.queue.slotLeaseMs)
    // A paused server's connections close at once: the mails queued on them come back unattempted (submit.ts).
    this.#pauses = new ServerPauses({ db: deps.database.db, log: deps.log, pauseMs: deps.queue.pauseMs, onPause: (id) => this.#transport.drop(id) })
    this.#outcomes = new MailOutcomes({ database: deps.database, owner: this.id, queue: deps.queue, pauses: this.#pauses, webhooks: deps.webhooks })
    this.#poll = new PollLoop({ pass: () => this.tick(), pollMs: deps.queue.pollMs, log: deps.log, what: 'mail worker' })
    deps.mails.events.on('queued', () => this.#poll.wake())
  }

  /** mail.sent, mail.failed and token.invalid as they are recorded, in process. */
  get events(): MailOutcomes['events'] {
    return this.#outcomes.events
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
      await releaseLeases(this.deps.database, SENDING)
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
      for (const slot of this.#transport.open(server.id)) if (!held.has(slot)) this.#transport.drop(server.id, slot)
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
          .catch((e: unknown) => this.deps.log.error({ err: e, error_code: errorCode(e), mail_id: mail.id, server_id: server.id, mailbox: server.username }, 'could not record the outcome of a mail; its lease returns it to the queue'))
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

  /** The held slot with the fewest mails waiting on its connection, or when the mail may be tried instead. */
  #take(serverId: string, mail: ClaimedMail): { slot: number } | { wait: string } {
    const held = this.#pauses.heldBack(serverId, mail)
    if (held) return { wait: held }
    let best: number | undefined
    for (const slot of this.#slots.held(serverId)) {
      if (best === undefined || (this.#slotLoad.get(`${serverId}:${slot}`) ?? 0) < (this.#slotLoad.get(`${serverId}:${best}`) ?? 0)) best = slot
    }
    if (best === undefined) return { wait: now() }
    this.#slotLoad.set(`${serverId}:${best}`, (this.#slotLoad.get(`${serverId}:${best}`) ?? 0) + 1)
    return { slot: best }
  }

  #give(serverId: string, slot: number): void {
    this.#slotLoad.set(`${serverId}:${slot}`, (this.#slotLoad.get(`${serverId}:${slot}`) ?? 1) - 1)
  }

  /** No mail for a server here: close its connections and give its slots back; 1 when it held any. */
  #releaseServer(serverId: string): 0 | 1 {
    if (this.#slots.count(serverId) === 0) return 0
    this.#transport.drop(serverId)
    this.#slots.release(serverId)
    return 1
  }

  /** Wait until every mail this worker started has an outcome (tests and drains). */
  async idle(): Promise<void> {
    while (this.#sends.size) await Promise.allSettled([...this.#sends])
  }

  #claim(server: OutgoingServerRow, room: number): Promise<ClaimedMail[]> {
    const { traits } = this.deps.database
    const at = now()
    return claimDue(this.deps.database, {
      table: 'mails',
      due: (eb) => eb.and([eb('state', '=', 'outgoing'), eb('server_id', '=', server.id), eb('next_attempt_at', '<=', at)]),
      limit: async (tx) => {
        // Serialise claims per server across nodes, so the per-minute count below cannot be raced (PostgreSQL;
        // SQLite's claim holds the one write lock already).
        if (traits.skipLocked) await tx.selectFrom('outgoing_servers').select('id').where('id', '=', server.id).forUpdate().execute()
        if (!server.max_per_minute) return room
        const recent = await tx
          .selectFrom('mails')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('server_id', '=', server.id)
          .where('last_attempt_at', '>', isoIn(-60_000))
          .executeTakeFirstOrThrow()
        return Math.min(room, server.max_per_minute - Number(recent.n))
      },
      set: () => ({ state: 'sending', lease_owner: this.id, lease_until: isoIn(this.deps.queue.leaseMs), last_attempt_at: now() }),
      returning: CLAIMED_COLUMNS,
    })
  }

  async #deliver(server: OutgoingServerRow, mail: ClaimedMail, forced: string | undefined): Promise<void> {
    const log = this.deps.log.child({ mail_id: mail.id, server_id: server.id, mailbox: server.username })
    const { db } = this.deps.database
    const r = await submitMail({
      transport: this.#transport,
      credentials: this.deps.credentials,
      server,
      log,
      compose: async () => composeMail(server, mail, (await db.selectFrom('mails').select('content').where('id', '=', mail.id).executeTakeFirstOrThrow()).content, forced),
      connections: { take: () => this.#take(server.id, mail), give: (slot) => this.#give(server.id, slot) },
    })
    switch (r.kind) {
      case 'accepted':
        return this.#outcomes.sent(server, mail, r.response, log)
      case 'wait':
        return this.#outcomes.waits(mail, r.until)
      case 'token':
        return this.#outcomes.tokenProblem(server, mail, r.error, log)
      default:
        return this.#outcomes.failed(server, mail, r, log)
    }
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
      await releaseLeases(this.deps.database, { ...SENDING, of: this.id })
    }
    this.#transport.close()
    await this.#slots.releaseAll()
  }
}
