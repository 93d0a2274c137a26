import assert from 'node:assert/strict'
import { test } from 'node:test'
import { recogniseStored } from '../../src/bounces/record.ts'
import { adminClient } from '../support/admin-client.ts'
import { deliveryReport, outOfOffice } from '../support/delivery-report.ts'
import { dovecotAvailable } from '../support/dovecot.ts'
import { startMailroom } from '../support/mailroom.ts'
import { startWebhookReceiver } from '../support/webhook-receiver.ts'
import { ALICE, runQueue } from '../support/world.ts'

const skip = dovecotAvailable() ? false : 'Dovecot is not installed: run .ci/install-peers.sh'

test('bounces: an NDR fetched from the sending mailbox makes the mail bounced, shows bounces[] and bounce, and tells mail.bounced signed', { skip }, async (t) => {
  const room = await startMailroom()
  t.after(room.close)
  const receiver = await startWebhookReceiver()
  t.after(receiver.close)
  const hook = (await room.mb.api('POST', '/api/v1/webhooks', { url: receiver.url, events: ['mail.bounced'] })).json()
  receiver.secret = hook.secret
  const out = await room.outgoingServer()
  await room.connect(out.id)
  const admin = await adminClient(room.mb.app, room.mb.services)
  assert.match((await admin.get(`/admin/outgoing-servers/${out.id}`)).body, new RegExp(`Connect an incoming server for ${ALICE}</a> to learn about bounces`))
  const server = await room.confirmedServer()
  assert.doesNotMatch((await admin.get(`/admin/outgoing-servers/${out.id}`)).body, /to learn about bounces/, 'the mailbox is fetched now')

  const sent = (await room.mb.api('POST', '/api/v1/mail', { to: ['Bob <bob@fabrikam.example>', 'carol@fabrikam.example'], subject: 'Invoice 42', text: 'Attached.' })).json()
  await runQueue(room)
  const mail = (await room.mb.api('GET', `/api/v1/mail/${sent.id}`)).json()
  assert.equal(mail.state, 'sent')
  assert.deepEqual(mail.bounces, [])

  await room.dovecot.seedMany(ALICE, [
    deliveryReport({
      to: ALICE,
      returnedMessageId: mail.message_id,
      lines: [
        { recipient: 'bob@fabrikam.example', action: 'failed', status: '5.1.1', diagnostic: '550 5.1.1 <bob@fabrikam.example>: Recipient address rejected: User unknown' },
        { recipient: 'carol@fabrikam.example', action: 'failed', status: '5.2.2', diagnostic: '552 5.2.2 mailbox full' },
      ],
    }),
    outOfOffice(mail.message_id),
  ])
  assert.equal((await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)).json().stored, 2)
  const [report, ooo] = (await room.mb.api('GET', '/api/v1/messages')).json().items

  // As the fetch path will: after the message rows are inserted, in the same transaction (here, one of its own).
  const { db } = room.mb.services.database
  for (const m of [report, ooo]) {
    const raw = await room.mb.services.messages.raw(m.id)
    await db.transaction().execute((tx) => recogniseStored(tx, room.mb.services.webhooks, { id: m.id, server_id: server.id, raw }))
  }

  const bounced = (await room.mb.api('GET', `/api/v1/mail/${sent.id}`)).json()
  assert.equal(bounced.state, 'bounced')
  assert.deepEqual(
    bounced.bounces.map((b: Record<string, unknown>) => [b.recipient, b.status, b.action, b.message_id]),
    [['bob@fabrikam.example', '5.1.1', 'failed', report.id], ['carol@fabrikam.example', '5.2.2', 'failed', report.id]],
  )
  assert.match(bounced.bounces[0].diagnostic, /User unknown/)
  assert.match(bounced.bounces[0].reported_at, /^\d{4}-\d\d-\d\dT/)
  assert.deepEqual((await room.mb.api('GET', '/api/v1/mail?state=bounced')).json().items.map((m: { id: string }) => m.id), [sent.id])

  const shown = (await room.mb.api('GET', `/api/v1/messages/${report.id}`)).json()
  assert.equal(shown.auto_reply, false)
  assert.deepEqual(shown.bounce.mail_id, sent.id)
  assert.equal(shown.bounce.original_message_id, mail.message_id)
  assert.deepEqual(shown.bounce.recipients.map((r: { recipient: string }) => r.recipient), ['bob@fabrikam.example', 'carol@fabrikam.example'])
  const away = (await room.mb.api('GET', `/api/v1/messages/${ooo.id}`)).json()
  assert.deepEqual([away.auto_reply, away.bounce, away.in_reply_to_mail_id], [true, null, sent.id], 'threaded as a reply, but marked')

  const d = room.mb.services.dispatcher
  for (let i = 0; i < 10 && receiver.distinct() < 2; i++) {
    await d.tick()
    await d.idle()
  }
  await receiver.until(2)
  assert.ok(receiver.received.every((r) => r.signed && r.event === 'mail.bounced'))
  const data = receiver.received.map((r) => JSON.parse(r.body).data).sort((a, b) => a.recipient.localeCompare(b.recipient))
  assert.deepEqual(data[0], {
    mail_id: sent.id,
    message_id: report.id,
    internet_message_id: mail.message_id,
    server_id: out.id,
    recipient: 'bob@fabrikam.example',
    status: '5.1.1',
    action: 'failed',
    diagnostic: '550 5.1.1 <bob@fabrikam.example>: Recipient address rejected: User unknown',
  })

  const queue = (await admin.get('/admin/mail?state=bounced')).body
  assert.match(queue, /<span class="tag bad">Bounced<\/span>/)
  assert.match(queue, /bob@fabrikam\.example <code>5\.1\.1<\/code> 550 5\.1\.1 &lt;bob@fabrikam\.example&gt;: Recipient address rejected/)
})
