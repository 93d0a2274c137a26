import { randomBytes } from 'node:crypto'
import type { WebhookConfig } from '../config.ts'
import type { SecretBox } from '../crypto/secret-box.ts'
import { type Database, isoIn, now } from '../db/index.ts'
import type { WebhookDeliveryRow, WebhookRow } from '../db/schema.ts'
import { errorCode, type Logger } from '../log.ts'
import { backoffMs } from '../queue/backoff.ts'
import { SIGNATURE_HEADER, sign } from './signer.ts'
import { postDelivery } from './post.ts'
import type { TrustedHosts } from '../host-policy.ts'
import { PollLoop } from '../queue/poll-loop.ts'
import { GroupCommit } from '../db/group-commit.ts'
import { webhookDeliverySeconds } from '../metrics.ts'
import { claimDue } from '../queue/lease.ts'
import type { Wakeup } from '../queue/wakeup.ts'

/** Every column of a delivery: the attempt reads its payload, event and counts. */
const DELIVERY_COLUMNS = [
  'id', 'webhook_id', 'event', 'payload', 'state', 'attempts', 'next_attempt_at', 'lease_owner', 'lease_until', 'last_status', 'last_error', 'delivered_at', 'created_at', 'updated_at',
] as const satisfies ReadonlyArray<keyof WebhookDeliveryRow>

/**
 * Sends queued deliveries: claims due ones per webhook under a lease (a dead node's come back when it is found dead,
 * queue/dead-nodes.ts, or when the lease expires), POSTs the signed payload, and records 2xx as delivered, anything
 * else as a retry with backoff, then `failed`. Each webhook has `concurrency` deliveries in flight on this node, taken
 * in order of creation (retries when their backoff is due), so a slow endpoint fills only its own. Writing a delivery
 * wakes the dispatcher (queue/wakeup.ts), and so does each finished delivery; the poll is the fallback.
 */
export class WebhookDispatcher {
  readonly id: string
  readonly #sends = new Set<Promise<void>>()
  /** Deliveries in flight here, per webhook. */
  readonly #inflight = new Map<string, number>()
  readonly #poll: PollLoop
  #unlisten?: () => Promise<void>

  constructor(
    private readonly deps: {
      database: Database
      box: SecretBox
      log: Logger
      config: WebhookConfig
      /** Raised when deliveries are written (webhooks/service.ts enqueue). */
      wakeup?: Wakeup
      /** This node's id (queue/heartbeat.ts), the owner of its leases; one of its own when not given. */
      nodeId?: string
      /** MAILBRIDGE_TRUSTED_HOSTS: the only hosts on this machine a webhook may reach. */
      trustedHosts: TrustedHosts
    },
  ) {
    this.id = deps.nodeId ?? `d-${randomBytes(4).toString('hex')}`
    this.#poll = new PollLoop({ pass: () => this.tick(), pollMs: deps.config.pollMs, log: deps.log, what: 'webhook dispatcher' })
  }

  async start(): Promise<void> {
    this.#poll.start()
    try {
      this.#unlisten ??= await this.deps.wakeup?.listen(() => this.#poll.wake())
    } catch (e) {
      this.deps.log.warn({ err: e }, 'webhook dispatcher cannot listen for new deliveries; it polls every MAILBRIDGE_WEBHOOK_POLL_MS')
    }
  }

  /** Look now instead of at the end of the poll interval. */
  wake(): void {
    this.#poll.wake()
  }

  /** One pass: for every webhook with room here, claim what is due and start sending it. Returns how many started. */
  async tick(): Promise<number> {
    const { db } = this.deps.database
    const at = now()
    // Only webhooks with something due: one query, not a claim transaction per webhook on every wake-up.
    const hooks = await db
      .selectFrom('webhooks')
      .selectAll()
      .where((eb) =>
        eb.exists(
          eb
            .selectFrom('webhook_deliveries as d')
            .select('d.id')
            .whereRef('d.webhook_id', '=', 'webhooks.id')
            .where('d.state', '=', 'pending')
            .where('d.next_attempt_at', '<=', at)
            .where((e) => e.or([e('d.lease_until', 'is', null), e('d.lease_until', '<', at)])),
        ),
      )
      .execute()
    let started = 0
    for (const hook of hooks) {
      const { id } = hook
      const room = this.deps.config.concurrency - (this.#inflight.get(id) ?? 0)
      if (room <= 0) continue
      for (const d of await this.#claim(id, room)) {
        started++
        this.#inflight.set(id, (this.#inflight.get(id) ?? 0) + 1)
        const p = this.#deliver(d, hook)
          .catch((e: unknown) => this.deps.log.error({ err: e, error_code: errorCode(e), webhook_id: id, delivery_id: d.id }, 'could not record a webhook delivery; its lease returns it to the queue'))
          .finally(() => {
            const left = (this.#inflight.get(id) ?? 1) - 1
            this.#inflight.set(id, left)
            this.#sends.delete(p)
            // Refill in batches, not one claim per answer.
            if (left <= this.deps.config.concurrency / 2) this.#poll.wake()
          })
        this.#sends.add(p)
      }
    }
    return started
  }

  #claim(webhookId: string, room: number): Promise<WebhookDeliveryRow[]> {
    const at = now()
    return claimDue(this.deps.database, {
      table: 'webhook_deliveries',
      due: (eb) =>
        eb.and([
          eb('webhook_id', '=', webhookId),
          eb('state', '=', 'pending'),
          eb('next_attempt_at', '<=', at),
          eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', at)]),
        ]),
      limit: room,
      set: () => ({ lease_owner: this.id, lease_until: isoIn(this.deps.config.timeoutMs * 3) }),
      returning: DELIVERY_COLUMNS,
    })
  }

  async idle(): Promise<void> {
    while (this.#sends.size) await Promise.allSettled([...this.#sends])
  }

  /** One attempt, to the webhook as this pass read it (deleting a webhook deletes its deliveries: see service.ts). */
  async #deliver(d: WebhookDeliveryRow, hook: WebhookRow): Promise<void> {
    const log = this.deps.log.child({ webhook_id: d.webhook_id, delivery_id: d.id, event: d.event, url: hook.url })
    const attempts = d.attempts + 1
    let status: number | null = null
    let error: string | null = null
    try {
      const timestamp = Math.floor(Date.now() / 1000)
      const headers = {
        'content-type': 'application/json',
        'user-agent': 'Mailbridge-Webhook/1',
        'mailbridge-event': d.event,
        'mailbridge-delivery': d.id,
        [SIGNATURE_HEADER]: sign(this.deps.box.open(hook.secret, 'webhooks.secret'), timestamp, d.payload),
      }
      status = await postDelivery(hook.url, headers, d.payload, { timeoutMs: this.deps.config.timeoutMs, trusted: this.deps.trustedHosts })
      // A redirect is not followed: it counts as a failure like any other non-2xx answer.
      if (status < 200 || status >= 300) error = `${hook.url} answered HTTP ${status}`
    } catch (e) {
      const cause = (e as Error & { cause?: Error }).cause?.message ?? (e as Error).message
      error = `POST ${hook.url} failed: ${cause}`
    }
    const at = now()
    const base = { attempts, last_status: status, last_error: error, lease_owner: null, lease_until: null, updated_at: at }
    let set: Partial<WebhookDeliveryRow>
    if (!error) {
      set = { ...base, state: 'delivered', delivered_at: at }
      log.debug({ status, attempts }, 'webhook delivered')
    } else if (attempts >= this.deps.config.maxAttempts) {
      set = { ...base, state: 'failed' }
      log.warn({ attempts, cause: error }, 'webhook delivery failed for good')
    } else {
      const wait = backoffMs(attempts, { retryBaseMs: this.deps.config.retryBaseMs, retryMaxMs: this.deps.config.retryMaxMs })
      set = { ...base, next_attempt_at: isoIn(wait) }
      log.info({ attempts, retry_in_s: Math.round(wait / 1000), cause: error }, 'webhook delivery deferred')
    }
    if (!error) webhookDeliverySeconds.observe((Date.now() - Date.parse(d.created_at)) / 1000)
    await this.#outcomes.add({ id: d.id, set })
  }

  /** Outcomes committed together (db/group-commit.ts): one transaction per group of answers, not one per answer. */
  readonly #outcomes = new GroupCommit<{ id: string; set: Partial<WebhookDeliveryRow> }, void>(async (items) => {
    await this.deps.database.db.transaction().execute(async (tx) => {
      for (const { id, set } of items) await tx.updateTable('webhook_deliveries').set(set).where('id', '=', id).where('lease_owner', '=', this.id).execute()
    })
    return items.map(() => undefined)
  })

  /** Stop claiming and let deliveries in flight finish (each is bounded by the request timeout). */
  async stop(): Promise<void> {
    await this.#poll.stop()
    await this.#unlisten?.()
    this.#unlisten = undefined
    await this.idle()
  }
}
