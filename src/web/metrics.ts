import type { FastifyPluginAsync } from 'fastify'
import { Gauge, Registry } from 'prom-client'
import { countersText } from '../metrics.ts'
import { providerFor } from '../oauth/providers.ts'
import type { WebServices } from './web-services.ts'

/**
 * GET /metrics (Prometheus text). Gauges are read from the database at scrape time, so every node reports the
 * same cluster-wide figures and nothing is lost when a node restarts. Event counters and latencies (src/metrics.ts)
 * follow: this node's, since it started.
 */
export const metricsRoutes: FastifyPluginAsync<{ services: Pick<WebServices, 'database' | 'outgoingServers' | 'incomingServers' | 'settings'> }> = async (app, { services }) => {
  const { db } = services.database
  const registry = new Registry()
  const count = async (table: 'mails' | 'webhook_deliveries', gauge: Gauge) => {
    gauge.reset()
    const rows = await db.selectFrom(table).select(['state', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('state').execute()
    for (const r of rows) gauge.set({ state: r.state }, Number(r.n))
  }
  new Gauge({ name: 'mailbridge_mails', help: 'Mails in the queue by state', labelNames: ['state'], registers: [registry], async collect() { await count('mails', this) } })
  new Gauge({
    name: 'mailbridge_mails_due',
    help: 'Outgoing mails whose next attempt is due now (queue depth)',
    registers: [registry],
    async collect() {
      const r = await db.selectFrom('mails').select((eb) => eb.fn.countAll<number>().as('n')).where('state', '=', 'outgoing').where('next_attempt_at', '<=', new Date().toISOString()).executeTakeFirstOrThrow()
      this.set(Number(r.n))
    },
  })
  new Gauge({ name: 'mailbridge_webhook_deliveries', help: 'Webhook deliveries by state', labelNames: ['state'], registers: [registry], async collect() { await count('webhook_deliveries', this) } })
  new Gauge({
    name: 'mailbridge_webhook_deliveries_waiting',
    help: 'Webhook deliveries not yet answered with a 2xx nor given up (pending, retries and those in flight), per webhook',
    labelNames: ['webhook_id'],
    registers: [registry],
    async collect() {
      this.reset()
      // Every webhook, 0 included: an alert on a series that vanishes when its queue drains would never clear.
      for (const h of await db.selectFrom('webhooks').select('id').execute()) this.set({ webhook_id: h.id }, 0)
      const rows = await db.selectFrom('webhook_deliveries').select(['webhook_id', (eb) => eb.fn.countAll<number>().as('n')]).where('state', '=', 'pending').groupBy('webhook_id').execute()
      for (const r of rows) this.set({ webhook_id: r.webhook_id }, Number(r.n))
    },
  })
  new Gauge({
    name: 'mailbridge_webhook_oldest_waiting_seconds',
    help: 'Age of the oldest webhook delivery still waiting (0 when none waits): how far the applications lag behind',
    registers: [registry],
    async collect() {
      const r = await db.selectFrom('webhook_deliveries').select((eb) => eb.fn.min<string | null>('created_at').as('oldest')).where('state', '=', 'pending').executeTakeFirst()
      this.set(r?.oldest ? Math.max(0, (Date.now() - Date.parse(r.oldest)) / 1000) : 0)
    },
  })
  new Gauge({ name: 'mailbridge_messages', help: 'Incoming messages stored', registers: [registry], async collect() {
    const r = await db.selectFrom('messages').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
    this.set(Number(r.n))
  } })
  const tokenValid = (kind: 'outgoing' | 'incoming', list: () => Promise<Array<{ id: string; username: string; authentication: string; token: { valid: boolean } }>>) =>
    new Gauge({
      name: `mailbridge_${kind}_server_token_valid`,
      help: `1 when the ${kind} server's OAuth token is valid (the green tag), 0 otherwise`,
      labelNames: ['server_id', 'mailbox'],
      registers: [registry],
      async collect() {
        this.reset()
        for (const s of await list()) if (providerFor(s.authentication)) this.set({ server_id: s.id, mailbox: s.username }, s.token.valid ? 1 : 0)
      },
    })
  tokenValid('outgoing', () => services.outgoingServers.list())
  tokenValid('incoming', () => services.incomingServers.list())
  new Gauge({
    name: 'mailbridge_incoming_server_last_fetch_ok_age_seconds',
    help: 'Seconds since the incoming server\'s last fetch that ended without error; absent until it has one',
    labelNames: ['server_id', 'mailbox'],
    registers: [registry],
    async collect() {
      this.reset()
      const rows = await db.selectFrom('incoming_servers').select(['id', 'username', 'last_fetch_ok_at']).where('last_fetch_ok_at', 'is not', null).execute()
      for (const r of rows) this.set({ server_id: r.id, mailbox: r.username }, (Date.now() - Date.parse(r.last_fetch_ok_at!)) / 1000)
    },
  })
  new Gauge({
    name: 'mailbridge_outgoing_servers_paused',
    help: 'Outgoing servers paused now (a refused token or a throttling reply: their mails wait)',
    registers: [registry],
    async collect() {
      const r = await db.selectFrom('outgoing_servers').select((eb) => eb.fn.countAll<number>().as('n')).where('paused_until', '>', new Date().toISOString()).executeTakeFirstOrThrow()
      this.set(Number(r.n))
    },
  })
  new Gauge({
    name: 'mailbridge_client_secret_expires_in_days',
    help: 'Days until the Outlook client secret expires (AADSTS7000222 after that); absent until its date is entered',
    // A label, because prom-client prints a label-less gauge as 0 when nothing was set: the alert would fire.
    labelNames: ['provider'],
    registers: [registry],
    async collect() {
      this.reset()
      const at = (await services.settings.view()).microsoft_outlook_client_secret_expires_at
      if (at) this.set({ provider: 'microsoft_outlook' }, (Date.parse(at) - Date.now()) / 86_400_000)
    },
  })
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => reply.type(registry.contentType).send(`${await registry.metrics()}\n${await countersText()}`))
}
