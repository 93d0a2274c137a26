import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client'

/**
 * Event counters of this thread: what happened here since the process started (sends, refreshes, fetches).
 * Figures that are state (mails by state, queue depth, token health) are not here: web/metrics.ts reads them
 * from the database at scrape time. A node's background thread keeps its own counters; the web thread asks
 * for them at each scrape (roles.ts) and sums them with its own.
 */
export const counters = new Registry()

export const sendSeconds = new Histogram({
  name: 'mailbridge_send_duration_seconds',
  help: 'SMTP submission of one mail, from handing it to the connection to the server\'s reply, by outcome',
  labelNames: ['outcome'],
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers: [counters],
})

export const queueSeconds = new Histogram({
  name: 'mailbridge_mail_queue_seconds',
  help: 'From accepted (202) to sent (250), per sent mail',
  buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14_400, 86_400],
  registers: [counters],
})

export const webhookDeliverySeconds = new Histogram({
  name: 'mailbridge_webhook_delivery_seconds',
  help: 'From a webhook delivery written (the event) to the endpoint\'s 2xx answer, per delivered delivery',
  buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 3600],
  registers: [counters],
})

export const tokenRefreshes = new Counter({
  name: 'mailbridge_token_refreshes_total',
  help: 'Access-token refreshes by provider and result (ok, or the error code: invalid_grant, AADSTS…, network)',
  labelNames: ['provider', 'result'],
  registers: [counters],
})

export const fetches = new Counter({
  name: 'mailbridge_fetches_total',
  help: 'Fetches of an incoming server by result (ok, failed)',
  labelNames: ['result'],
  registers: [counters],
})

export const messagesFetched = new Counter({
  name: 'mailbridge_messages_fetched_total',
  help: 'Messages fetched from IMAP servers, by what became of them (stored, duplicate)',
  labelNames: ['outcome'],
  registers: [counters],
})

export const relaySessions = new Gauge({
  name: 'mailbridge_relay_sessions',
  help: 'SMTP relay connections open now on this node',
  registers: [counters],
})

export const relayAuthFailures = new Counter({
  name: 'mailbridge_relay_auth_failures_total',
  help: 'Refused relay AUTHs by reason (wrong: unknown user or wrong password; limited: too many failures from the address; unencrypted: before STARTTLS)',
  labelNames: ['reason'],
  registers: [counters],
})

export const relayMailsAccepted = new Counter({
  name: 'mailbridge_relay_mails_accepted_total',
  help: 'Mails the relay queued (answered 250)',
  registers: [counters],
})

export const relayMailsRefused = new Counter({
  name: 'mailbridge_relay_mails_refused_total',
  help: 'Mails the relay refused at MAIL FROM or at the end of DATA, by reason',
  labelNames: ['reason'],
  registers: [counters],
})

type Snapshot = MetricObjectWithValues<MetricValue<string>>[]
const sources: Array<() => Promise<Snapshot>> = []

/** Another thread's counters, summed into this thread's at each scrape; returns its removal. */
export function addCounterSource(source: () => Promise<Snapshot>): () => void {
  sources.push(source)
  return () => void sources.splice(sources.indexOf(source), 1)
}

/** This thread's counters plus every other thread's that answers, in Prometheus text. */
export async function countersText(): Promise<string> {
  const theirs = await Promise.all(sources.map((s) => s().catch(() => [] as Snapshot)))
  if (!theirs.length) return counters.metrics()
  return AggregatorRegistry.aggregate([await counters.getMetricsAsJSON(), ...theirs] as never).metrics()
}
