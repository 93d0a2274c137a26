import assert from 'node:assert/strict'
import { test } from 'node:test'
import { readDeliveryStatus } from './delivery-status.ts'
import { recipientStatus } from './status-code.ts'

test('readDeliveryStatus: per-message and per-recipient groups (RFC 3464 §2.1), folded diagnostic unfolded', () => {
  const ds = readDeliveryStatus(
    'Reporting-MTA: dns; mx.example.net\nOriginal-Envelope-Id: inv-42\n\nFinal-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\nRemote-MTA: dns; mx.example.org\nDiagnostic-Code: smtp; 550 5.1.1 <a@example.org>:\n  user unknown\n\nFinal-Recipient: rfc822;<b@example.org>\nAction: delayed\nStatus: 4.4.1\n',
  )
  assert.equal(ds.reporting_mta, 'mx.example.net')
  assert.equal(ds.envelope_id, 'inv-42')
  assert.deepEqual(ds.recipients, [
    { recipient: 'a@example.org', original_recipient: null, status: '5.1.1', action: 'failed', diagnostic: '550 5.1.1 <a@example.org>: user unknown', remote_mta: 'mx.example.org' },
    { recipient: 'b@example.org', original_recipient: null, status: '4.4.1', action: 'delayed', diagnostic: null, remote_mta: null },
  ])
})

test('readDeliveryStatus: a utf-8 address type (RFC 6533 §3) has its \\x{HEX} escapes decoded', () => {
  const ds = readDeliveryStatus('Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient: utf-8; j\\x{F6}rg@b\\x{FC}cher.example\nOriginal-Recipient: rfc822; joerg+2Bshop@example.de\nAction: failed\nStatus: 5.1.1\n')
  assert.equal(ds.recipients[0]!.recipient, 'jörg@bücher.example')
  assert.equal(ds.recipients[0]!.original_recipient, 'joerg+shop@example.de')
})

test('readDeliveryStatus: a group with no empty line before the recipient fields still yields the recipient', () => {
  const ds = readDeliveryStatus('Reporting-MTA: dns; mx.example.net\nFinal-Recipient: rfc822; a@example.org\nAction: failure\nStatus: 5.0.0\n')
  assert.equal(ds.recipients[0]!.action, 'failed')
  assert.equal(ds.reporting_mta, 'mx.example.net')
})

test('recipientStatus: a generic X.0.0 gives way to the server reply code of the same class (RFC 2034 §4)', () => {
  assert.equal(recipientStatus('5.0.0', "5.1.0 - Unknown address error 550-'5.7.1 Access denied'"), '5.7.1')
  assert.equal(recipientStatus('5.1.1', '550 5.7.1 blocked'), '5.1.1')
  assert.equal(recipientStatus(null, 'host mx.example.org said: 452 mailbox full'), '4.0.0')
  assert.equal(recipientStatus(null, 'Exim 4.72 at 192.0.2.45'), null)
})
