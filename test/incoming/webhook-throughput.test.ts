import assert from 'node:assert/strict'
import { test } from 'node:test'
import { dovecotAvailable } from '../support/dovecot.ts'
import { rfc822, startMailroom } from '../support/mailroom.ts'
import { startWebhookReceiver } from '../support/webhook-receiver.ts'
import { ALICE } from '../support/world.ts'

const skip = dovecotAvailable() ? false : 'Dovecot is not installed: run .ci/install-peers.sh'

const messages = (n: number, tag: string) => Array.from({ length: n }, (_, i) => rfc822({ subject: `${tag} ${i}`, messageId: `<${tag}-${i}@fabrikam.com>` }))

// The poll is set to its 10-minute maximum: only the wake-up on written deliveries can deliver the burst. Before
// issue 22 the dispatcher sent 16 per poll and nothing woke it, so this waited for minutes (the timeout is the
// safety net of a hang, not a measure).
test('webhooks: a burst of 2,000 fetched messages reaches the receiver, every delivery at least once and signed', { skip, timeout: 120_000 }, async (t) => {
  const room = await startMailroom({ env: { MAILBRIDGE_WEBHOOK_POLL_MS: '600000' } })
  t.after(room.close)
  const receiver = await startWebhookReceiver()
  t.after(receiver.close)
  const hook = (await room.mb.api('POST', '/api/v1/webhooks', { url: receiver.url, events: ['message.received'] })).json()
  receiver.secret = hook.secret
  const server = await room.confirmedServer()
  const N = 2000
  await room.dovecot.seedMany(ALICE, messages(N, 'burst'))
  await room.mb.services.dispatcher.start()

  const fetched = (await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)).json()
  assert.equal(fetched.stored, N, JSON.stringify(fetched))
  await receiver.until(N)
  await room.mb.services.dispatcher.idle()

  assert.equal(receiver.distinct(), N)
  const unsigned = receiver.received.filter((r) => !r.signed)
  assert.equal(unsigned.length, 0, `${unsigned.length} requests failed the README's signature check`)
  const { db } = room.mb.services.database
  const stored = await db.selectFrom('messages').select('id').execute()
  const announced = new Set(receiver.received.map((r) => JSON.parse(r.body).data.message_id as string))
  assert.deepEqual([...announced].sort(), stored.map((m) => m.id).sort(), 'each stored message is announced')
  const states = await db.selectFrom('webhook_deliveries').select(['state', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('state').execute()
  assert.deepEqual(states.map((s) => [s.state, Number(s.n)]), [['delivered', N]])
})

test('webhooks: an endpoint that takes 1 s per answer does not hold up a fast one beside it', { skip, timeout: 120_000 }, async (t) => {
  const room = await startMailroom()
  t.after(room.close)
  const fast = await startWebhookReceiver()
  const slow = await startWebhookReceiver({ answerMs: 1000 })
  t.after(fast.close)
  t.after(slow.close)
  for (const r of [fast, slow]) r.secret = (await room.mb.api('POST', '/api/v1/webhooks', { url: r.url, events: ['message.received'] })).json().secret
  const server = await room.confirmedServer()
  const N = 100
  await room.dovecot.seedMany(ALICE, messages(N, 'pair'))
  await room.mb.services.dispatcher.start()

  assert.equal((await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)).json().stored, N)
  await fast.until(N)
  // Both endpoints' deliveries were written together, interleaved; a shared cap let the slow one's fill every slot.
  assert.ok(slow.distinct() < N / 2, `the slow endpoint had ${slow.distinct()} of ${N} when the fast one had all: they advanced together`)
  assert.ok([...fast.received, ...slow.received].every((r) => r.signed))
})
