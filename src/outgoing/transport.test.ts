import assert from 'node:assert/strict'
import { test } from 'node:test'
import { replyVerdict, smtpVerdict } from './transport.ts'

const server = { name: 'Outlook', host: 'smtp.office365.com', port: 587, username: 'alice@contoso.com' }

/** An error as nodemailer makes it (lib/errors.js, smtp-connection `_formatError`): code, response, responseCode, command. */
const smtpError = (responseCode: number | undefined, response: string | undefined, command = 'DATA', code = 'EMESSAGE') =>
  Object.assign(new Error(response ?? 'connect ECONNREFUSED 127.0.0.1:587'), { responseCode, response, command, code })

/** [what happened, nodemailer's error, verdict kind, failure_type, what the mail does after a pause] */
const TABLE: Array<[string, Error, string, string, string?]> = [
  ['421 closing the channel', smtpError(421, '421 4.3.2 Service not available'), 'transient', 'mail_smtp'],
  ['451 4.7.500 server busy', smtpError(451, '451 4.7.500 Server busy'), 'transient', 'mail_smtp'],
  ['432 4.3.2 on DATA (concurrency limit)', smtpError(432, '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded'), 'transient', 'mail_smtp'],
  ['432 4.3.2 on AUTH (other clients hold the connections)', smtpError(432, '432 4.3.2 Concurrent connections limit exceeded', 'AUTH XOAUTH2', 'EAUTH'), 'transient', 'mail_smtp'],
  ['no reply: connection refused', smtpError(undefined, undefined, 'CONN', 'ECONNECTION'), 'transient', 'mail_smtp'],
  ['535 5.7.3 on AUTH (a stale or wrong token)', smtpError(535, '535 5.7.3 Authentication unsuccessful', 'AUTH XOAUTH2', 'EAUTH'), 'refused', 'mail_smtp'],
  ['535 5.7.139 (SMTP AUTH disabled)', smtpError(535, '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.', 'AUTH XOAUTH2', 'EAUTH'), 'pause', 'mail_smtp', 'waits'],
  ['550 5.2.252 lock-out', smtpError(550, '550 5.2.252 SendAsDenied; throttled'), 'pause', 'mail_smtp', 'fails'],
  ['554 5.2.255 lock-out on AUTH', smtpError(554, '554 5.2.255 too many failures', 'AUTH XOAUTH2', 'EAUTH'), 'pause', 'mail_smtp', 'fails'],
  ['550 5.7.60 on MAIL FROM (not allowed to send as)', smtpError(550, '550 5.7.60 SMTP; Client does not have permissions to send as this sender', 'MAIL FROM'), 'permanent', 'mail_from_invalid'],
  ['554 5.2.0 SendAsDenied on DATA', smtpError(554, '554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException'), 'permanent', 'mail_from_invalid'],
  ['550 5.1.10 on RCPT TO (no such recipient)', smtpError(550, '550 5.1.10 RESOLVER.ADR.RecipientNotFound', 'RCPT TO'), 'permanent', 'mail_email_invalid'],
  ['554 5.6.0 corrupt message', smtpError(554, '554 5.6.0 Corrupt message'), 'permanent', 'mail_smtp'],
  ['the pool closed before a connection took the mail', Object.assign(new Error('Connection pool was closed'), { code: 'ECONNECTION' }), 'closed', 'mail_smtp'],
]

for (const [what, err, kind, failureType, mail] of TABLE) {
  test(`smtpVerdict(): ${what} → ${kind}${mail ? ` (the mail ${mail})` : ''}, ${failureType}`, () => {
    const v = smtpVerdict(err, server)
    assert.equal(v.kind, kind)
    assert.equal(v.failureType, failureType)
    assert.equal(v.kind === 'pause' ? v.mail : undefined, mail)
  })
}

test('smtpVerdict(): the reason names the server, its host and the mailbox, with the reply as it came', () => {
  const v = smtpVerdict(smtpError(554, '554 5.6.0 Corrupt message'), server)
  assert.equal(v.reason, 'Outlook (smtp.office365.com:587, alice@contoso.com) answered "554 5.6.0 Corrupt message"')
  assert.equal(v.response, '554 5.6.0 Corrupt message')
  assert.match(smtpVerdict(smtpError(undefined, undefined, 'CONN', 'ECONNECTION'), server).reason, /smtp\.office365\.com:587.*ECONNREFUSED/)
})

test('smtpVerdict(): 5.7.139 says how to enable SMTP AUTH for the mailbox, or to use Graph', () => {
  const v = smtpVerdict(smtpError(535, '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.', 'AUTH XOAUTH2', 'EAUTH'), server)
  assert.match(v.reason, /SMTP AUTH is disabled for alice@contoso\.com/)
  assert.match(v.reason, /Set-CASMailbox -Identity alice@contoso\.com -SmtpClientAuthenticationDisabled \$false/)
  assert.match(v.reason, /Microsoft Graph/)
  assert.match(v.reason, /535 5\.7\.139/)
})

test('replyVerdict(): Test Connection\'s probe replies get the same verdicts as the queue\'s', () => {
  assert.equal(replyVerdict({ code: 535, response: '535 5.7.3 Authentication unsuccessful', command: 'AUTH' }, server).kind, 'refused')
  assert.equal(replyVerdict({ code: 535, response: '535 5.7.139 Authentication unsuccessful', command: 'AUTH' }, server).kind, 'pause')
  assert.equal(replyVerdict({ code: 550, response: '550 5.7.60 SMTP; Client does not have permissions', command: 'MAIL FROM' }, server).failureType, 'mail_from_invalid')
  assert.equal(replyVerdict({}, server, 'no answer within 15 s').kind, 'transient')
})
