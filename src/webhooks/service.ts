import type { Kysely } from 'kysely'
import type { SecretBox } from '../crypto/secret-box.ts'
import { randomToken } from '../crypto/passwords.ts'
import { Secret } from '../crypto/secret.ts'
import { type DB, groupsOf, newId, now } from '../db/index.ts'
import type { WebhookRow } from '../db/schema.ts'
import { invalid, notFound } from '../errors.ts'
import { refusedHost, type TrustedHosts } from '../host-policy.ts'
import type { Logger } from '../log.ts'
import type { Wakeup } from '../queue/wakeup.ts'
import type { EventData } from './events.ts'
import { deliveryToApi, webhookToApi, type Delivery, type Webhook, type WebhookEvent, type WebhookInput } from './model.ts'

/** Anything that can run queries: the database or an open transaction. */
export type Queryable = Pick<Kysely<DB>, 'selectFrom' | 'insertInto' | 'getExecutor'>

/** Webhook subscriptions, and the one way events become durable deliveries: `enqueue` inside the caller's transaction. */
export class WebhookService {
  constructor(private readonly deps: { db: Kysely<DB>; box: SecretBox; log: Logger; wakeup?: Wakeup; trustedHosts: TrustedHosts }) {}

  async #row(id: string): Promise<WebhookRow> {
    const row = await this.deps.db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst()
    if (!row) throw notFound('Webhook', id)
    return row
  }

  async list(): Promise<Webhook[]> {
    return (await this.deps.db.selectFrom('webhooks').selectAll().orderBy('id').execute()).map(webhookToApi)
  }

  async get(id: string): Promise<Webhook> {
    return webhookToApi(await this.#row(id))
  }

  #checkUrl(url: string): string {
    let u: URL
    try {
      u = new URL(url)
    } catch {
      throw invalid('url', `The webhook url must be an absolute http(s) URL such as https://app.example.com/mailbridge, got "${url}".`)
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw invalid('url', 'The webhook url must start with https:// (or http:// on a private network).')
    // Checked again on the resolved address at each delivery (webhooks/post.ts): a name may point here later.
    const refused = refusedHost(u.hostname, this.deps.trustedHosts)
    if (refused) throw invalid('url', `The webhook url points at ${refused}, which Mailbridge does not deliver to; MAILBRIDGE_TRUSTED_HOSTS names the hosts on this machine it may use.`)
    return u.toString()
  }

  /**
   * Create: the answer carries a generated signing secret, once; later reads show only `secret_set`. A secret the
   * caller chose is never echoed back (ASVS V8.3: secrets do not travel where they are not needed).
   */
  async create(input: WebhookInput): Promise<Webhook> {
    if (!input.url) throw invalid('url', 'Give the url the events are POSTed to.')
    if (!input.events?.length) throw invalid('events', 'Choose at least one event: message.received, mail.sent, mail.failed, mail.bounced, token.invalid.')
    const secret = new Secret(input.secret ?? `whsec_${randomToken(24)}`)
    const at = now()
    const row: WebhookRow = {
      id: newId(),
      url: this.#checkUrl(input.url),
      events: JSON.stringify(input.events),
      secret: this.deps.box.seal(secret, 'webhooks.secret'),
      created_at: at,
      updated_at: at,
    }
    await this.deps.db.insertInto('webhooks').values(row).execute()
    this.deps.log.info({ webhook_id: row.id, url: row.url, events: input.events }, 'webhook created')
    return input.secret === undefined ? { ...webhookToApi(row), secret: secret.reveal() } : webhookToApi(row)
  }

  async update(id: string, input: WebhookInput): Promise<Webhook> {
    await this.#row(id)
    await this.deps.db
      .updateTable('webhooks')
      .set({
        ...(input.url !== undefined ? { url: this.#checkUrl(input.url) } : {}),
        ...(input.events !== undefined ? { events: JSON.stringify(input.events) } : {}),
        ...(input.secret !== undefined ? { secret: this.deps.box.seal(new Secret(input.secret), 'webhooks.secret') } : {}),
        updated_at: now(),
      })
      .where('id', '=', id)
      .execute()
    return this.get(id)
  }

  /** Deleting a webhook also drops its deliveries, delivered or not: nobody is listening any more. */
  async delete(id: string): Promise<void> {
    await this.#row(id)
    await this.deps.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('webhook_deliveries').where('webhook_id', '=', id).execute()
      await tx.deleteFrom('webhooks').where('id', '=', id).execute()
    })
  }

  async deliveries(id: string, q: { limit?: number; cursor?: string } = {}): Promise<{ items: Delivery[]; next_cursor: string | null }> {
    await this.#row(id)
    const limit = q.limit ?? 50
    const rows = await this.deps.db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('webhook_id', '=', id)
      .$if(q.cursor !== undefined, (qb) => qb.where('id', '<', q.cursor!))
      .orderBy('id', 'desc')
      .limit(limit + 1)
      .execute()
    const items = rows.slice(0, limit).map(deliveryToApi)
    return { items, next_cursor: rows.length > limit ? items[items.length - 1]!.id : null }
  }

  /**
   * Queue one delivery per subscribed webhook, in the caller's transaction: the event is recorded exactly when
   * the state change it reports is, so a crash cannot lose it (delivery is then at least once).
   */
  enqueue<E extends WebhookEvent>(q: Queryable, event: E, data: EventData[E]): Promise<number> {
    return this.enqueueAll(q, event, [data])
  }

  /** One delivery per subscribed webhook and event, in one insert (a fetched batch's message.received events). */
  async enqueueAll<E extends WebhookEvent>(q: Queryable, event: E, events: Array<EventData[E]>): Promise<number> {
    if (!events.length) return 0
    const hooks = (await q.selectFrom('webhooks').select(['id', 'events']).execute()).filter((h) => (JSON.parse(h.events) as string[]).includes(event))
    const at = now()
    const rows = hooks.flatMap((h) =>
      events.map((data) => {
        const id = newId()
        return {
          id,
          webhook_id: h.id,
          event,
          payload: JSON.stringify({ id, event, created_at: at, data }),
          state: 'pending' as const,
          next_attempt_at: at,
          lease_owner: null,
          lease_until: null,
          last_status: null,
          last_error: null,
          delivered_at: null,
          created_at: at,
          updated_at: at,
        }
      }),
    )
    for (const g of groupsOf(rows)) await q.insertInto('webhook_deliveries').values(g).execute()
    // Wake the dispatchers, which otherwise look only at their poll interval (16 a second was the cap, issue 22).
    if (rows.length) await this.deps.wakeup?.raise(q)
    return rows.length
  }

}
