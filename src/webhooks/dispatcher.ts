import { randomBytes } from 'node:crypto'
import type { WebhookConfig } from '../config.ts'
import type { SecretBox } from '../crypto/secret-box.ts'
import { type Database, isoIn, now } from '../db/index.ts'
import type { WebhookDeliveryRow } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import { backoffMs } from '../outgoing/worker.ts'
import { SIGNATURE_HEADER, sign } from './signer.ts'
import { PollLoop } from '../poll-loop.ts'

/** Deliveries in flight at once, across all webhooks of this node. */
const IN_FLIGHT = 16

/**
 * Sends queued deliveries: claims due ones under a lease (a crashed node's come back when it expires), POSTs the
 * signed payload, and records 2xx as delivered, anything else as a retry with backoff, then `failed`.
 */
export class WebhookDispatcher {
  readonly id = `d-${randomBytes(4).toString('hex')}`
  readonly #sends = new Set<Promise<void>>()
  readonly #poll: PollLoop

  constructor(private readonly deps: { database: Database; box: SecretBox; log: Logger; config: WebhookConfig }) {
    this.#poll = new PollLoop({ pass: () => this.tick(), pollMs: deps.config.pollMs, log: deps.log, what: 'webhook dispatcher' })
  }

  start(): void {
    this.#poll.start()
  }

  /** One pass: claim what is due and start sending it. Returns how many were started. */
  async tick(): Promise<number> {
    const room = IN_FLIGHT - this.#sends.size
    if (room <= 0) return 0
    const { db, traits } = this.deps.database
    const claimed = await db.transaction().execute(async (tx) => {
      const at = now()
      const due = await tx
        .selectFrom('webhook_deliveries')
        .select('id')
        .where('state', '=', 'pending')
        .where('next_attempt_at', '<=', at)
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', at)]))
        .orderBy('next_attempt_at')
        .limit(room)
        .$if(traits.skipLocked, (q) => q.forUpdate().skipLocked())
        .execute()
      if (!due.length) return []
      return tx
        .updateTable('webhook_deliveries')
        .set({ lease_owner: this.id, lease_until: isoIn(this.deps.config.timeoutMs * 3), updated_at: at })
        .where('id', 'in', due.map((d) => d.id))
        .returningAll()
        .execute()
    })
    for (const d of claimed) {
      const p = this.#deliver(d).finally(() => this.#sends.delete(p))
      this.#sends.add(p)
    }
    return claimed.length
  }

  async idle(): Promise<void> {
    while (this.#sends.size) await Promise.allSettled([...this.#sends])
  }

  async #deliver(d: WebhookDeliveryRow): Promise<void> {
    const { db } = this.deps.database
    const hook = await db.selectFrom('webhooks').selectAll().where('id', '=', d.webhook_id).executeTakeFirst()
    const log = this.deps.log.child({ webhook_id: d.webhook_id, delivery_id: d.id, event: d.event, url: hook?.url })
    if (!hook) {
      await db.deleteFrom('webhook_deliveries').where('id', '=', d.id).execute()
      return
    }
    const attempts = d.attempts + 1
    let status: number | null = null
    let error: string | null = null
    try {
      const timestamp = Math.floor(Date.now() / 1000)
      const res = await fetch(hook.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Mailbridge-Webhook/1',
          'mailbridge-event': d.event,
          'mailbridge-delivery': d.id,
          [SIGNATURE_HEADER]: sign(this.deps.box.open(hook.secret, 'webhooks.secret'), timestamp, d.payload),
        },
        body: d.payload,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.deps.config.timeoutMs),
      })
      status = res.status
      await res.body?.cancel()
      if (res.status < 200 || res.status >= 300) error = `${hook.url} answered HTTP ${res.status}`
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
    await db.updateTable('webhook_deliveries').set(set).where('id', '=', d.id).where('lease_owner', '=', this.id).execute()
  }

  /** Stop claiming and let deliveries in flight finish (each is bounded by the request timeout). */
  async stop(): Promise<void> {
    await this.#poll.stop()
    await this.idle()
  }
}
