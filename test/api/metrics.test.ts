import assert from 'node:assert/strict'
import { test } from 'node:test'
import { providerFor } from '../../src/oauth/providers.ts'
import { ALICE, startWorld } from '../support/world.ts'

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
  assert.match(before.body, /^mailbridge_client_secret_expires_in_days 9\.9\d*|^mailbridge_client_secret_expires_in_days 10$/m)
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
