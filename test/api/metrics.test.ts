import assert from 'node:assert/strict'
import { test } from 'node:test'
import { providerFor } from '../../src/oauth/providers.ts'
import { dovecotAvailable } from '../support/dovecot.ts'
import { startMailroom } from '../support/mailroom.ts'
import { startWebhookReceiver } from '../support/webhook-receiver.ts'
import { ALICE, runQueue, startWorld } from '../support/world.ts'

test('metrics: mails by state, queue depth, token health and secret expiry, in Prometheus text, without a token', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  await w.mb.services.settings.update({ microsoft_outlook_client_secret_expires_at: new Date(Date.now() + 10 * 86_400_000).toISOString() })
  for (let i = 0; i < 3; i++) await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: `m${i}`, text: 't' })
  const before = await w.mb.app.inject('/metrics')
  assert.equal(before.statusCode, 200)
  assert.match(before.headers['content-type'] as string, /text\/plain/)
  assert.match(before.body, /^mailbridge_mails\{state="outgoing"\} 3$/m)
  assert.match(before.body, /^mailbridge_mails_due 3$/m)
  assert.match(before.body, new RegExp(`^mailbridge_outgoing_server_token_valid\\{server_id="${server.id}",mailbox="alice@contoso.com"\\} 1$`, 'm'))
  assert.match(before.body, /^mailbridge_client_secret_expires_in_days\{provider="microsoft_outlook"\} (9\.9\d*|10)$/m)
  await w.mb.services.mailWorker.tick()
  await w.mb.services.mailWorker.idle()
  const after = (await w.mb.app.inject('/metrics')).body
  assert.match(after, /^mailbridge_mails\{state="sent"\} 3$/m)
  assert.match(after, /^mailbridge_mails_due 0$/m)
  assert.match(after, /^mailbridge_send_duration_seconds_count\{outcome="sent"\} 3$/m)
  assert.match(after, /^mailbridge_mail_queue_seconds_count 3$/m)
  assert.ok(!after.includes('Qk8Q~'), 'no secret in metrics')
})

test('metrics: token refreshes are counted by result on the node that made them', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  const outlook = providerFor('outlook')!
  const count = async (result: string) =>
    Number(new RegExp(`^mailbridge_token_refreshes_total\\{provider="outlook",result="${result}"\\} (\\d+)$`, 'm').exec((await w.mb.app.inject('/metrics')).body)?.[1] ?? 0)
  const [ok, revoked] = [await count('ok'), await count('AADSTS50173')]
  const token = await w.mb.services.credentials.accessToken(outlook, ALICE)
  await w.mb.services.credentials.accessToken(outlook, ALICE, { rejected: token })
  assert.equal(await count('ok'), ok + 1, 'one refresh, counted ok')
  w.ms.revokeUser(ALICE)
  const fresh = await w.mb.services.credentials.accessToken(outlook, ALICE)
  await assert.rejects(w.mb.services.credentials.accessToken(outlook, ALICE, { rejected: fresh }), /AADSTS50173/)
  assert.equal(await count('AADSTS50173'), revoked + 1, 'the refused refresh, counted by its AADSTS code')
})

const series = (body: string, name: string) => body.split('\n').filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))

test('metrics: no secret expiry entered, no expiry series (an alert on it would fire on every new install)', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const body = (await w.mb.app.inject('/metrics')).body
  assert.deepEqual(series(body, 'mailbridge_client_secret_expires_in_days'), [])
  assert.match(body, /^# HELP mailbridge_client_secret_expires_in_days /m, 'the series is still described')
})

test('metrics: paused outgoing servers are counted', async (t) => {
  const w = await startWorld({ smtp: { dataReply: () => ({ code: 550, message: '5.2.252 SendAsDenied; alice@contoso.com not allowed to send as x; throttled' }) } })
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  assert.deepEqual(series((await w.mb.app.inject('/metrics')).body, 'mailbridge_outgoing_servers_paused'), ['mailbridge_outgoing_servers_paused 0'])
  await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: '1', text: 't' })
  await runQueue(w)
  assert.deepEqual(series((await w.mb.app.inject('/metrics')).body, 'mailbridge_outgoing_servers_paused'), ['mailbridge_outgoing_servers_paused 1'])
})

test('metrics: per incoming server, the token state and the age of the last fetch that succeeded, which a failing fetch does not renew', { skip: dovecotAvailable() ? false : 'Dovecot is not installed: run .ci/install-peers.sh' }, async (t) => {
  const room = await startMailroom()
  t.after(room.close)
  const server = await room.confirmedServer()
  const labels = `{server_id="${server.id}",mailbox="${ALICE}"}`
  const age = async () => {
    const line = series((await room.mb.app.inject('/metrics')).body, 'mailbridge_incoming_server_last_fetch_ok_age_seconds')
    return line.length ? Number(line[0]!.slice(line[0]!.lastIndexOf(' ') + 1)) : undefined
  }
  assert.equal(await age(), undefined, 'absent before the first fetch')
  assert.ok(series((await room.mb.app.inject('/metrics')).body, 'mailbridge_incoming_server_token_valid').includes(`mailbridge_incoming_server_token_valid${labels} 1`))
  await room.mb.services.fetcher.fetch(server.id)
  const ok = await age()
  assert.ok(ok !== undefined && ok >= 0)
  const okAt = (await room.mb.services.database.db.selectFrom('incoming_servers').select('last_fetch_ok_at').where('id', '=', server.id).executeTakeFirstOrThrow()).last_fetch_ok_at
  room.ms.revokeUser(ALICE)
  room.ms.expireAccessTokens(ALICE)
  await assert.rejects(room.mb.services.fetcher.fetch(server.id), /AADSTS50173/)
  const row = await room.mb.services.database.db.selectFrom('incoming_servers').select(['last_fetch_ok_at', 'last_error']).where('id', '=', server.id).executeTakeFirstOrThrow()
  assert.ok(row.last_error, 'the fetch failed')
  assert.equal(row.last_fetch_ok_at, okAt, 'the failed fetch is not a success')
  assert.ok((await age())! >= ok!)
  assert.ok(series((await room.mb.app.inject('/metrics')).body, 'mailbridge_incoming_server_token_valid').includes(`mailbridge_incoming_server_token_valid${labels} 0`))
})

test('metrics: webhook deliveries waiting per webhook and the age of the oldest, back to 0 once delivered', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const receiver = await startWebhookReceiver()
  t.after(receiver.close)
  const sent = (await w.mb.api('POST', '/api/v1/webhooks', { url: receiver.url, events: ['mail.sent'] })).json()
  const idle = (await w.mb.api('POST', '/api/v1/webhooks', { url: receiver.url, events: ['mail.failed'] })).json()
  const server = await w.outgoingServer()
  await w.connect(server.id)
  for (let i = 0; i < 3; i++) await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: `m${i}`, text: 't' })
  await w.mb.services.mailWorker.tick()
  await w.mb.services.mailWorker.idle()
  // One delivery written an hour ago (a receiver down since then): the age is read from the rows, not this node.
  const { db } = w.mb.services.database
  const first = await db.selectFrom('webhook_deliveries').select('id').where('webhook_id', '=', sent.id).orderBy('id').executeTakeFirstOrThrow()
  await db.updateTable('webhook_deliveries').set({ created_at: new Date(Date.now() - 3_600_000).toISOString() }).where('id', '=', first.id).execute()

  const waiting = (body: string, id: string) => Number(new RegExp(`^mailbridge_webhook_deliveries_waiting\\{webhook_id="${id}"\\} (\\d+)$`, 'm').exec(body)?.[1])
  const oldest = (body: string) => Number(/^mailbridge_webhook_oldest_waiting_seconds (\S+)$/m.exec(body)?.[1])
  const before = (await w.mb.app.inject('/metrics')).body
  assert.equal(waiting(before, sent.id), 3)
  assert.equal(waiting(before, idle.id), 0, 'a webhook with nothing waiting reports 0')
  assert.ok(oldest(before) >= 3600 && oldest(before) < 3600 + 600, `oldest waiting ${oldest(before)} s, written an hour ago`)

  await w.mb.services.dispatcher.tick()
  await w.mb.services.dispatcher.idle()
  assert.equal(receiver.distinct(), 3)
  const after = (await w.mb.app.inject('/metrics')).body
  assert.equal(waiting(after, sent.id), 0)
  assert.equal(oldest(after), 0)
  assert.match(after, /^mailbridge_webhook_delivery_seconds_count 3$/m)
})
