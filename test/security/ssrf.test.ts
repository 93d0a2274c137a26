import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { startWebhookReceiver } from '../support/webhook-receiver.ts'
import { runQueue, startWorld } from '../support/world.ts'

/**
 * Issue 21 item 8 (design.md §10): webhook URLs and server hosts do not reach this machine outside
 * MAILBRIDGE_TRUSTED_HOSTS (127.0.0.1 in the tests), nor link-local or cloud-metadata addresses; checked at
 * creation and again on the resolved address at delivery; redirects are not followed.
 */

type World = Awaited<ReturnType<typeof startWorld>>
const hook = (w: World, url: string) => w.mb.api('POST', '/api/v1/webhooks', { url, events: ['mail.sent'] })

/** Send one mail, so mail.sent is delivered once to the webhook; its delivery as the API shows it. */
async function deliverMailSent(w: World, webhookId: string): Promise<{ last_status: number | null; last_error: string | null }> {
  await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 's', text: 't' })
  await runQueue(w)
  await w.mb.services.dispatcher.tick()
  await w.mb.services.dispatcher.idle()
  return (await w.mb.api('GET', `/api/v1/webhooks/${webhookId}/deliveries`)).json().items[0]
}

test('ssrf: webhook urls to cloud metadata, link-local and untrusted loopback addresses are refused with 400', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  for (const url of [
    'http://169.254.169.254/latest/meta-data/iam/security-credentials/',
    'http://[fd00:ec2::254]/latest/meta-data/',
    'http://[fe80::1]/',
    'http://127.0.0.2:8080/hook',
    'http://[::1]:8080/hook',
    'http://[::ffff:127.0.0.2]/hook',
    'http://0.0.0.0:8080/hook',
    'http://localhost:8080/hook',
  ]) {
    const res = await hook(w, url)
    assert.equal(res.statusCode, 400, `${url}: ${res.body}`)
    assert.equal(res.json().error.field, 'url')
    assert.match(res.json().error.message, /MAILBRIDGE_TRUSTED_HOSTS|metadata/, url)
  }
  assert.equal((await hook(w, 'http://127.0.0.1:8080/hook')).statusCode, 201, 'a trusted host passes')
  assert.equal((await hook(w, 'https://app.example.com/mailbridge')).statusCode, 201, 'a public name passes')
})

test('ssrf: a name that resolves to loopback is refused at delivery, and nothing reaches the service behind it', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const internal = await startWebhookReceiver()
  t.after(internal.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  const created = (await hook(w, internal.url)).json()
  // The name changed its answer after creation (DNS rebinding): `localhost` resolves to 127.0.0.1, which is only trusted by its address.
  const rebound = internal.url.replace('127.0.0.1', 'localhost')
  await w.mb.services.database.db.updateTable('webhooks').set({ url: rebound }).where('id', '=', created.id).execute()
  const d = await deliverMailSent(w, created.id)
  assert.equal(internal.received.length, 0, 'the loopback service received nothing')
  assert.match(d.last_error ?? '', /localhost resolves to a loopback address/)
})

test('ssrf: a redirect is not followed, and what the endpoint answered stays out of the delivery log', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const target = await startWebhookReceiver()
  t.after(target.close)
  const redirector = createServer((_req, res) => res.writeHead(302, { location: target.url }).end('{"AccessKeyId":"internal-answer"}'))
  await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r))
  t.after(() => new Promise<void>((r) => redirector.close(() => r())))
  const server = await w.outgoingServer()
  await w.connect(server.id)
  const created = (await hook(w, `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/hook`)).json()
  const d = await deliverMailSent(w, created.id)
  assert.equal(target.received.length, 0, 'the redirect was not followed')
  assert.equal(d.last_status, 302)
  assert.doesNotMatch(JSON.stringify(d), /internal-answer/)
})

test('ssrf: a password server on an untrusted loopback or metadata address is refused with 400', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  for (const host of ['169.254.169.254', '127.0.0.2', 'localhost']) {
    const res = await w.mb.api('POST', '/api/v1/outgoing-servers', { name: 'relay', authentication: 'none', host, port: 25, encryption: 'none' })
    assert.equal(res.statusCode, 400, `${host}: ${res.body}`)
    assert.equal(res.json().error.field, 'host')
  }
  assert.equal((await w.mb.api('POST', '/api/v1/outgoing-servers', { name: 'relay', authentication: 'none', host: 'smtp.example.com', port: 25, encryption: 'none' })).statusCode, 201)
})
