import assert from 'node:assert/strict'
import { test } from 'node:test'
import { mailBounced, mailOutcome, messageReceived, tokenInvalid } from './events.ts'

const mail = { id: 'm1', server_id: 's1', message_id: '<a1.mailbridge@contoso.com>' }

test('mailOutcome(): sent carries mail_id and the Message-ID under both names, and no failure fields', () => {
  const { event, data } = mailOutcome(mail, { state: 'sent' })
  assert.equal(event, 'mail.sent')
  assert.deepEqual(JSON.parse(JSON.stringify(data)), {
    mail_id: 'm1',
    server_id: 's1',
    message_id: '<a1.mailbridge@contoso.com>',
    internet_message_id: '<a1.mailbridge@contoso.com>',
    state: 'sent',
  })
})

test('mailOutcome(): exception is mail.failed with the failure type and reason', () => {
  const { event, data } = mailOutcome(mail, { state: 'exception', failure_type: 'mail_email_invalid', failure_reason: '550 5.1.1 unknown' })
  assert.equal(event, 'mail.failed')
  assert.equal(data.failure_type, 'mail_email_invalid')
  assert.equal(data.failure_reason, '550 5.1.1 unknown')
  assert.equal(data.internet_message_id, mail.message_id)
})

test('messageReceived(): message_id is the Mailbridge id, internet_message_id the header', () => {
  const data = messageReceived(
    { id: 's2', username: 'Ada@Contoso.com', folder: 'INBOX' },
    { id: 'msg1', uid: 7, message_id: '<x@fabrikam.com>', thread_id: 't1', in_reply_to_mail_id: null, from_addr: 'bob@fabrikam.com', subject: 'Hi', parse_error: null },
  )
  assert.equal(data.message_id, 'msg1')
  assert.equal(data.internet_message_id, '<x@fabrikam.com>')
  assert.equal(data.mailbox, 'Ada@Contoso.com')
  assert.equal(data.uid, 7)
  assert.equal(data.auto_reply, false, 'a message stored without recognition is no automatic reply')
  assert.equal(messageReceived({ id: 's2', username: 'a@b.c', folder: 'INBOX' }, { id: 'msg2', uid: 8, message_id: null, thread_id: 't2', in_reply_to_mail_id: null, from_addr: null, subject: null, parse_error: null, auto_reply: 1 }).auto_reply, true)
})

test('mailBounced(): message_id is the stored report, internet_message_id the mail that bounced', () => {
  assert.deepEqual(mailBounced(mail, 'report1', { recipient: 'x@fabrikam.com', status: '5.1.1', diagnostic: '550 5.1.1 unknown' }), {
    mail_id: 'm1',
    message_id: 'report1',
    internet_message_id: '<a1.mailbridge@contoso.com>',
    server_id: 's1',
    recipient: 'x@fabrikam.com',
    status: '5.1.1',
    action: 'failed',
    diagnostic: '550 5.1.1 unknown',
  })
})

test('tokenInvalid(): the mailbox is lower case, as credentials are keyed', () => {
  assert.deepEqual(tokenInvalid('incoming', { id: 's3', username: 'Ada@Contoso.com' }, 'revoked'), { server_kind: 'incoming', server_id: 's3', mailbox: 'ada@contoso.com', reason: 'revoked' })
})
