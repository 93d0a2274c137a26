import { createHmac, timingSafeEqual } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Harness } from './harness.ts'

/** One request as the receiver saw it. */
export interface Received {
  delivery: string
  event: string
  body: string
  /** The signature checked as README.md's Webhooks section tells a receiver to, with the webhook's secret. */
  signed: boolean
  at: number
}

export interface WebhookReceiver {
  url: string
  /** Every request, in arrival order (repeats included: delivery is at least once). */
  received: Received[]
  /** Distinct `Mailbridge-Delivery` ids received. */
  distinct(): number
  /** The secret to check signatures with: the one POST /api/v1/webhooks showed once. */
  secret?: string
  /** Resolves once `n` distinct deliveries have arrived. */
  until(n: number): Promise<void>
  close(): Promise<void>
}

/** README.md's receiver, verbatim in substance: HMAC-SHA256 over "<t>.<raw body>", constant-time, 5-minute window. */
function verify(secret: string, header: string | undefined, rawBody: string): boolean {
  if (!header) return false
  const { t, v1 } = Object.fromEntries(header.split(',').map((kv) => kv.split('=')))
  if (!t || !v1 || Math.abs(Date.now() / 1000 - Number(t)) > 300) return false
  const mac = createHmac('sha256', secret).update(`${t}.${rawBody}`).digest()
  const given = Buffer.from(v1, 'hex')
  return given.length === mac.length && timingSafeEqual(given, mac)
}

/**
 * An application's webhook endpoint on 127.0.0.1 (node:http): answers 200 after `answerMs` (a slow application),
 * recording each request and whether its signature holds.
 */
export async function startWebhookReceiver(o: { answerMs?: number } = {}): Promise<WebhookReceiver> {
  const waiters: Array<{ n: number; resolve: () => void }> = []
  const ids = new Set<string>()
  const receiver: WebhookReceiver = {
    url: '',
    received: [],
    distinct: () => ids.size,
    until: (n) => (ids.size >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
    close: () => {
      // Mailbridge's fetch keeps connections alive; closing must not wait for them.
      server.closeAllConnections()
      return new Promise<void>((r) => server.close(() => r()))
    },
  }
  const server = http.createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (d: string) => (body += d))
    req.on('end', () => {
      setTimeout(() => {
        const delivery = String(req.headers['mailbridge-delivery'])
        const signed = receiver.secret !== undefined && verify(receiver.secret, req.headers['mailbridge-signature'] as string | undefined, body)
        receiver.received.push({ delivery, event: String(req.headers['mailbridge-event']), body, signed, at: Date.now() })
        ids.add(delivery)
        res.writeHead(200).end()
        for (const w of waiters.filter((w) => ids.size >= w.n)) {
          waiters.splice(waiters.indexOf(w), 1)
          w.resolve()
        }
      }, o.answerMs ?? 0)
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`
  return receiver
}

/**
 * What an application subscribed to `events` receives: a receiver with a webhook on Mailbridge pointing at it (its
 * secret kept to check signatures), and `deliver()`, which runs the dispatcher until the deliveries due are sent.
 */
export async function subscribe(mb: Pick<Harness, 'api' | 'services'>, events: string[]): Promise<WebhookReceiver & { deliver(): Promise<void>; data(event: string): unknown[] }> {
  const receiver = await startWebhookReceiver()
  const res = await mb.api('POST', '/api/v1/webhooks', { url: receiver.url, events })
  if (res.statusCode !== 201) {
    await receiver.close()
    throw new Error(`subscribing to ${events.join(', ')} failed: ${res.body}`)
  }
  receiver.secret = res.json().secret
  return Object.assign(receiver, {
    async deliver() {
      await mb.services.dispatcher.tick()
      await mb.services.dispatcher.idle()
    },
    /** The `data` of every signed delivery of `event`; an unsigned one fails the test. */
    data(event: string) {
      return receiver.received
        .filter((r) => r.event === event)
        .map((r) => {
          if (!r.signed) throw new Error(`delivery ${r.delivery} (${event}) is not signed with the webhook's secret`)
          return (JSON.parse(r.body) as { data: unknown }).data
        })
    },
  })
}
