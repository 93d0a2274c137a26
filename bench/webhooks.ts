/**
 * bench/webhooks: N messages seeded into a real Dovecot, fetched by the scheduler of a `serve` node (its background
 * thread, as mail normally arrives) with one webhook subscribed to message.received at a local receiver (node:http
 * on 127.0.0.1, answering 200 at once). It prints, from the same run, the store alone (first message stored → last
 * stored, from the rows) beside the deliveries (first message stored → last message.received received); issue 22's
 * target is deliveries within 1.2× the store.
 *   npm run bench:webhooks -- [messages=5000]
 *   MAILBRIDGE_WEBHOOK_CONCURRENCY=32 npm run bench:webhooks   (the node's per-webhook concurrency; default 8)
 */
import { performance } from 'node:perf_hooks'
import { rfc822, startMailroom } from '../test/support/mailroom.ts'
import { startNode } from '../test/support/process.ts'
import { startWebhookReceiver } from '../test/support/webhook-receiver.ts'
import { ALICE } from '../test/support/world.ts'
import { progress, table } from './lib.ts'

const N = Number(process.argv[2] ?? 5000)

const room = await startMailroom({ shared: true })
const receiver = await startWebhookReceiver()
const hook = (await room.mb.api('POST', '/api/v1/webhooks', { url: receiver.url, events: ['message.received'] })).json()
receiver.secret = hook.secret
const server = await room.confirmedServer()
// A business note of a few kB each: the webhook's payload does not carry the body, so size matters to the store only.
await room.dovecot.seedMany(ALICE, Array.from({ length: N }, (_, i) => rfc822({ subject: `Webhook bench ${i}`, messageId: `<wh-${i}@fabrikam.com>`, body: `Order ${i}.\r\n`.repeat(200) })))
progress('seeded', N, N)
const { db } = room.mb.services.database
// Held back until the node is up: its start-up is not timed.
await db.updateTable('incoming_servers').set({ state: 'draft' }).where('id', '=', server.id).execute()
const concurrency = process.env.MAILBRIDGE_WEBHOOK_CONCURRENCY ?? '8'
const node = await startNode(room.nodeEnv({ MAILBRIDGE_FETCH_POLL_MS: '20', MAILBRIDGE_WEBHOOK_CONCURRENCY: concurrency }), ['serve'])
await db.updateTable('incoming_servers').set({ state: 'confirmed' }).where('id', '=', server.id).execute()
const t0 = performance.now()
await receiver.until(N)
const wall = (performance.now() - t0) / 1000
const span = await db.selectFrom('messages').select((eb) => [eb.fn.min<string>('received_at').as('first'), eb.fn.max<string>('received_at').as('last'), eb.fn.countAll<number>().as('n')]).executeTakeFirstOrThrow()
if (Number(span.n) !== N) throw new Error(`stored ${span.n} of ${N}`)
const firstStored = Date.parse(span.first)
const store = (Date.parse(span.last) - firstStored) / 1000
const delivered = (Math.max(...receiver.received.map((r) => r.at)) - firstStored) / 1000
const unsigned = receiver.received.filter((r) => !r.signed).length
node.child.kill('SIGTERM')
await node.exited
await receiver.close()
await room.close()

console.log(`\nbench/webhooks: ${N} messages, Dovecot on loopback (TLS + XOAUTH2) → a serve node's scheduled fetch → one webhook on 127.0.0.1 (MAILBRIDGE_WEBHOOK_CONCURRENCY ${concurrency}), ${new Date().toISOString()}\n`)
console.log(
  table([
    { what: 'store alone (first stored → last stored)', seconds: store, 'msgs/s': N / store },
    { what: 'deliveries (first stored → last message.received received)', seconds: delivered, 'msgs/s': N / delivered },
  ]),
)
console.log(`\nrequests ${receiver.received.length} for ${receiver.distinct()} deliveries, ${unsigned} failing the signature check; ${wall.toFixed(2)} s from the server confirmed to the last delivery.`)
console.log(`ratio deliveries / store: ${(delivered / store).toFixed(2)} (target ≤ 1.20)`)
process.exit(0)
