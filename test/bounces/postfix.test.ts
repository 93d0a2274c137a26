import assert from 'node:assert/strict'
import { test } from 'node:test'
import nodemailer from 'nodemailer'
import { recognise } from '../../src/bounces/recognise.ts'
import { recogniseStored } from '../../src/bounces/record.ts'
import { dovecotAvailable } from '../support/dovecot.ts'
import { startMailroom } from '../support/mailroom.ts'
import { postfixAvailable, startPostfix } from '../support/postfix.ts'
import { ALICE, runQueue } from '../support/world.ts'

const noPostfix = postfixAvailable() ? false : 'Postfix is not installed: run .ci/install-peers.sh'

test("postfix: Postfix's own DSN for a remote 550 and an error-transport refusal is read with each recipient, status and the returned Message-ID", { skip: noPostfix }, async (t) => {
  const pf = await startPostfix()
  t.after(pf.close)
  const smtp = nodemailer.createTransport({ host: pf.host, port: pf.port, secure: false, ignoreTLS: true })
  await smtp.sendMail({ from: 'alice@contoso.com', to: ['ok@fabrikam.example', 'nobody@fabrikam.example', 'x@unknown.fabrikam.example'], subject: 'Invoice 42', text: 'Attached.', messageId: '<inv42@contoso.com>' })
  const dsn = await pf.next((m) => m.from === '')
  assert.deepEqual(dsn.to, ['alice@contoso.com'], 'the DSN goes to the envelope sender, with a null reverse path')
  assert.ok(pf.delivered.some((m) => m.from === 'alice@contoso.com' && m.to.includes('ok@fabrikam.example')), 'the good recipient got the mail')
  const r = await recognise(dsn.raw)
  assert.equal(r.auto_reply, false, "Postfix marks its DSNs Auto-Submitted: auto-replied; they are bounces, not replies")
  assert.ok(r.bounce, `not recognised: ${dsn.raw.toString('utf8').slice(0, 600)}`)
  assert.equal(r.bounce.kind, 'dsn')
  assert.equal(r.bounce.reporting_mta, 'mx.postfix.test')
  assert.equal(r.bounce.original.message_id, '<inv42@contoso.com>')
  const lines = [...r.bounce.recipients].sort((a, b) => a.recipient.localeCompare(b.recipient))
  assert.deepEqual(
    lines.map((l) => [l.recipient, l.action, l.status, l.remote_mta]),
    [['nobody@fabrikam.example', 'failed', '5.1.1', '127.0.0.1'], ['x@unknown.fabrikam.example', 'failed', '5.1.1', null]],
  )
  assert.match(lines[0]!.diagnostic!, /^550 5\.1\.1 <nobody@fabrikam\.example>: Recipient address rejected: User unknown/)
})

test('postfix: a mail Mailbridge sends through Postfix to two refused recipients becomes bounced once its DSN is fetched and recognised', { skip: noPostfix || (dovecotAvailable() ? false : 'Dovecot is not installed') }, async (t) => {
  const pf = await startPostfix()
  t.after(pf.close)
  const room = await startMailroom()
  t.after(room.close)
  const out = await room.mb.api('POST', '/api/v1/outgoing-servers', { name: 'Postfix', authentication: 'none', host: pf.host, port: pf.port, encryption: 'none', username: ALICE, from_filter: 'contoso.com' })
  assert.equal(out.statusCode, 201, out.body)
  const server = await room.confirmedServer()
  const sent = (await room.mb.api('POST', '/api/v1/mail', { from: ALICE, to: ['nobody@fabrikam.example'], cc: ['x@unknown.fabrikam.example'], subject: 'Invoice 43', text: 'Attached.', server_id: out.json().id })).json()
  await runQueue(room)
  assert.equal((await room.mb.api('GET', `/api/v1/mail/${sent.id}`)).json().state, 'sent', 'Postfix accepts at submission and reports later')

  const dsn = await pf.next((m) => m.from === '')
  await room.dovecot.seed(ALICE, dsn.raw)
  assert.equal((await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)).json().stored, 1)
  const [stored] = (await room.mb.api('GET', '/api/v1/messages')).json().items
  const raw = await room.mb.services.messages.raw(stored.id)
  await room.mb.services.database.db.transaction().execute((tx) => recogniseStored(tx, room.mb.services.webhooks, { id: stored.id, server_id: server.id, raw }))

  const mail = (await room.mb.api('GET', `/api/v1/mail/${sent.id}`)).json()
  assert.equal(mail.state, 'bounced')
  assert.deepEqual(mail.bounces.map((b: { recipient: string; status: string }) => [b.recipient, b.status]).sort(), [['nobody@fabrikam.example', '5.1.1'], ['x@unknown.fabrikam.example', '5.1.1']])
  assert.equal((await room.mb.api('GET', `/api/v1/messages/${stored.id}`)).json().bounce.mail_id, sent.id)
})
