import assert from 'node:assert/strict'
import { test } from 'node:test'
import { classify } from './transport.ts'

const smtpError = (responseCode: number | undefined, response: string, command = 'DATA', code = 'EMESSAGE') =>
  Object.assign(new Error(response), { responseCode, response, command, code })

test('classify: 4xx and connection errors are transient', () => {
  for (const r of ['421 4.3.2 Service not available', '451 4.7.500 Server busy', '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded']) {
    assert.equal(classify(smtpError(Number(r.slice(0, 3)), r), 'srv').kind, 'transient', r)
  }
  assert.equal(classify(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNECTION' }), 'srv').kind, 'transient')
})

test('classify: 5xx are permanent, with Odoo\'s failure types, and 5.2.25x is a lock-out', () => {
  assert.deepEqual(
    [classify(smtpError(550, '550 5.1.10 RESOLVER.ADR.RecipientNotFound', 'RCPT TO'), 's').failureType, classify(smtpError(550, '550 5.7.60 SMTP; Client does not have permissions to send as this sender', 'MAIL FROM'), 's').failureType],
    ['mail_email_invalid', 'mail_from_invalid'],
  )
  assert.equal(classify(smtpError(550, '550 5.2.252 SendAsDenied; throttled'), 's').kind, 'lockout')
  assert.equal(classify(smtpError(535, '535 5.7.3 Authentication unsuccessful', 'AUTH XOAUTH2', 'EAUTH'), 's').kind, 'auth')
  const v = classify(smtpError(554, '554 5.6.0 Corrupt message'), 'Outlook (smtp.office365.com:587, alice@contoso.com)')
  assert.equal(v.kind, 'permanent')
  assert.match(v.reason, /alice@contoso\.com.*554 5\.6\.0/)
})
