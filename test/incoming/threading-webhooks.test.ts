import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { Secret } from '../../src/crypto/secret.ts'
import { SIGNATURE_HEADER, verify } from '../../src/webhooks/signer.ts'
import { dovecotAvailable } from '../support/dovecot.ts'
import { rfc822, startMailroom } from '../support/mailroom.ts'
import { ALICE } from '../support/world.ts'

const skip = dovecotAvailable() ? false : 'Dovecot is not installed: run .ci/install-peers.sh'

/** A local webhook receiver that answers 500 to the first `failFirst` requests, then 200; it records every request. */
async function startReceiver(failFirst: number) {
  const requests: Array<{ headers: http.IncomingHttpHeaders; body: string; status: number }> = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (d: string) => (body += d))
    req.on('end', () => {
      const status = requests.length < failFirst ? 500 : 200
      requests.push({ headers: req.headers, body, status })
      res.writeHead(status).end()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, requests, close: () => new Promise<void>((r) => server.close(() => r())) }
}

test('threading: a reply to a mail Mailbridge sent names that mail and shares its thread, and a reply to the reply joins it', { skip }, async (t) => {
  const room = await startMailroom()
  t.after(room.close)
  const out = await room.outgoingServer()
  await room.connect(out.id)
  const server = await room.confirmedServer()
  const sent = (await room.mb.api('POST', '/api/v1/mail', { to: ['customer@fabrikam.com'], subject: 'Quote 42', text: 'Here it is' })).json()
  await room.mb.services.mailWorker.tick()
  await room.mb.services.mailWorker.idle()
  assert.equal((await room.mb.api('GET', `/api/v1/mail/${sent.id}`)).json().state, 'sent')
  const sentMessageId = (await room.mb.api('GET', `/api/v1/mail/${sent.id}`)).json().message_id as string

  await room.dovecot.seedMany(ALICE, [
    rfc822({ subject: 'Unrelated', messageId: '<other@fabrikam.com>' }),
    rfc822({ subject: 'Re: Quote 42', messageId: '<reply-1@fabrikam.com>', headers: `In-Reply-To: ${sentMessageId}\r\nReferences: ${sentMessageId}\r\n` }),
    rfc822({ subject: 'Re: Re: Quote 42', messageId: '<reply-2@fabrikam.com>', headers: `In-Reply-To: <reply-1@fabrikam.com>\r\nReferences: ${sentMessageId} <reply-1@fabrikam.com>\r\n` }),
  ])
  assert.equal((await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)).json().stored, 3)
  const [other, reply1, reply2] = (await room.mb.api('GET', '/api/v1/messages')).json().items
  assert.equal(reply1.in_reply_to_mail_id, sent.id)
  assert.equal(reply1.thread_id, sentMessageId)
  assert.deepEqual(reply1.references, [sentMessageId])
  assert.equal(reply2.thread_id, sentMessageId)
  assert.equal(reply2.in_reply_to, '<reply-1@fabrikam.com>')
  assert.equal(reply2.in_reply_to_mail_id, null, 'it answers the customer, not a Mailbridge mail')
  assert.equal(other.thread_id, '<other@fabrikam.com>')
  assert.equal(other.in_reply_to_mail_id, null)
})

test('webhooks: message.received and mail.sent are signed, retried with backoff after failures, and logged in the API', { skip }, async (t) => {
  const room = await startMailroom({ env: { MAILBRIDGE_WEBHOOK_RETRY_BASE_S: '0' } })
  t.after(room.close)
  const receiver = await startReceiver(2)
  t.after(receiver.close)
  const created = await room.mb.api('POST', '/api/v1/webhooks', { url: receiver.url, events: ['message.received', 'mail.sent'] })
  assert.equal(created.statusCode, 201, created.body)
  const hook = created.json()
  assert.match(hook.secret, /^whsec_/)
  const shown = (await room.mb.api('GET', `/api/v1/webhooks/${hook.id}`)).json()
  assert.equal(shown.secret, undefined, 'the secret is shown once')
  assert.equal(shown.secret_set, true)
  assert.ok(!room.mb.logs.some((l) => l.includes(hook.secret)), 'the secret is never logged')

  const out = await room.outgoingServer()
  await room.connect(out.id)
  const server = await room.confirmedServer()
  await room.dovecot.seed(ALICE, rfc822({ subject: 'Hello hook', messageId: '<hook@fabrikam.com>' }))
  await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)
  const mail = (await room.mb.api('POST', '/api/v1/mail', { to: ['customer@fabrikam.com'], subject: 'Sent one', text: 'x' })).json()
  await room.mb.services.mailWorker.tick()
  await room.mb.services.mailWorker.idle()

  // Two deliveries; the receiver fails the first two requests, so one of them needs retries.
  const d = room.mb.services.dispatcher
  for (let i = 0; i < 10 && receiver.requests.filter((r) => r.status === 200).length < 2; i++) {
    await d.tick()
    await d.idle()
  }
  const okRequests = receiver.requests.filter((r) => r.status === 200)
  assert.equal(okRequests.length, 2)
  assert.equal(receiver.requests.length, 4)
  for (const r of receiver.requests) {
    assert.ok(verify(new Secret(hook.secret), r.headers[SIGNATURE_HEADER] as string, r.body), 'every request carries a valid signature')
    assert.ok(!verify(new Secret('whsec_wrong-secret-000000'), r.headers[SIGNATURE_HEADER] as string, r.body))
    assert.ok(!verify(new Secret(hook.secret), r.headers[SIGNATURE_HEADER] as string, r.body + ' '), 'a changed body fails')
  }
  const events = okRequests.map((r) => JSON.parse(r.body)).sort((a, b) => a.event.localeCompare(b.event))
  assert.equal(events[0].event, 'mail.sent')
  assert.equal(events[0].data.mail_id, mail.id)
  assert.equal(events[1].event, 'message.received')
  assert.equal(events[1].data.subject, 'Hello hook')
  assert.equal(events[1].data.internet_message_id, '<hook@fabrikam.com>')

  const log = (await room.mb.api('GET', `/api/v1/webhooks/${hook.id}/deliveries`)).json()
  assert.equal(log.items.length, 2)
  assert.deepEqual(log.items.map((i: { state: string }) => i.state), ['delivered', 'delivered'])
  assert.equal(log.items.reduce((n: number, i: { attempts: number }) => n + i.attempts, 0), 4)
  assert.ok(log.items.every((i: { last_status: number }) => i.last_status === 200))
})

test('webhooks: a delivery that keeps failing ends failed after the last attempt, with the cause in its log', { skip }, async (t) => {
  const room = await startMailroom({ env: { MAILBRIDGE_WEBHOOK_RETRY_BASE_S: '0', MAILBRIDGE_WEBHOOK_MAX_ATTEMPTS: '3' } })
  t.after(room.close)
  const receiver = await startReceiver(100)
  t.after(receiver.close)
  const hook = (await room.mb.api('POST', '/api/v1/webhooks', { url: receiver.url, events: ['message.received'] })).json()
  const server = await room.confirmedServer()
  await room.dovecot.seed(ALICE, rfc822({ subject: 'x', messageId: '<x@y>' }))
  await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)
  for (let i = 0; i < 5; i++) {
    await room.mb.services.dispatcher.tick()
    await room.mb.services.dispatcher.idle()
  }
  assert.equal(receiver.requests.length, 3)
  const [item] = (await room.mb.api('GET', `/api/v1/webhooks/${hook.id}/deliveries`)).json().items
  assert.equal(item.state, 'failed')
  assert.equal(item.attempts, 3)
  assert.match(item.last_error, /answered HTTP 500/)
})

test('webhooks: bad input says what to fix', async (t) => {
  const { startMailbridge } = await import('../support/harness.ts')
  const mb = await startMailbridge()
  t.after(mb.close)
  const badUrl = await mb.api('POST', '/api/v1/webhooks', { url: 'ftp://x', events: ['mail.sent'] })
  assert.equal(badUrl.statusCode, 400)
  assert.equal(badUrl.json().error.field, 'url')
  const badEvent = await mb.api('POST', '/api/v1/webhooks', { url: 'https://app.example.com/h', events: ['mail.lost'] })
  assert.equal(badEvent.statusCode, 400)
  assert.match(badEvent.json().error.field, /events/)
  const none = await mb.api('POST', '/api/v1/webhooks', { url: 'https://app.example.com/h' })
  assert.equal(none.statusCode, 400)
  assert.equal(none.json().error.field, 'events')
  assert.equal((await mb.api('GET', '/api/v1/webhooks/nope/deliveries')).statusCode, 404)
})

test('threading: a chain fetched in one batch (each naming only its parent) shares the root\'s thread; a second copy of a Message-ID in the batch is a duplicate', { skip }, async (t) => {
  const room = await startMailroom()
  t.after(room.close)
  const server = await room.confirmedServer()
  await room.dovecot.seedMany(ALICE, [
    rfc822({ subject: 'Order 7', messageId: '<root@fabrikam.com>' }),
    rfc822({ subject: 'Re: Order 7', messageId: '<child@fabrikam.com>', headers: 'In-Reply-To: <root@fabrikam.com>\r\n' }),
    rfc822({ subject: 'Re: Re: Order 7', messageId: '<grandchild@fabrikam.com>', headers: 'In-Reply-To: <child@fabrikam.com>\r\n' }),
    rfc822({ subject: 'Re: Order 7 (sent twice)', messageId: '<child@fabrikam.com>', headers: 'In-Reply-To: <root@fabrikam.com>\r\n' }),
    rfc822({ subject: 'No Message-ID at all' }),
  ])
  assert.deepEqual((await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)).json(), { fetched: 5, stored: 4, duplicates: 1, failed: 0, parse_errors: 0 })
  const [root, child, grandchild, loose] = (await room.mb.api('GET', '/api/v1/messages')).json().items
  assert.deepEqual([root.thread_id, child.thread_id, grandchild.thread_id], ['<root@fabrikam.com>', '<root@fabrikam.com>', '<root@fabrikam.com>'])
  assert.equal(loose.subject, 'No Message-ID at all')
  assert.equal(loose.thread_id, `<${loose.id}@mailbridge.thread>`)
})
