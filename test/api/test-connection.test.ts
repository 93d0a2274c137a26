import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startSmtpPeer } from '../support/smtp-peer.ts'
import { ALICE, startWorld } from '../support/world.ts'

test('test connection: STARTTLS + AUTH XOAUTH2 + MAIL/RCPT/RSET against the peer → "Connection Test Successful!"', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  const res = await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/test`)
  assert.equal(res.statusCode, 200)
  assert.deepEqual(res.json(), { ok: true, message: 'Connection Test Successful!' })
  assert.deepEqual(w.smtp.authAttempts.map((a) => [a.user, a.ok]), [[ALICE, true]])
  assert.equal(w.smtp.messages.length, 0, 'nothing is sent')
})

test('test connection: a token the peer refuses gets one refresh, then a 535 5.7.3 message; the shared credential stays green', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  w.ms.expireAccessTokens(ALICE)
  // The refreshed token works: one retry fixes it.
  let res = (await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/test`)).json()
  assert.equal(res.ok, true)
  assert.equal(w.ms.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length, 1)
  // A peer that refuses every token (it wants a scope we never get): 535 after the one retry. The refusal is this
  // server's, not the credential's: Microsoft just issued the token, and the mailbox's other servers share it (issue 21).
  const strict = await startSmtpPeer({ introspectUrl: w.ms.introspectUrl, requiredScope: 'https://outlook.office.com/POP.AccessAsUser.All' })
  t.after(strict.close)
  await w.mb.api('PATCH', `/api/v1/outgoing-servers/${server.id}`, { port: strict.port })
  const refreshesBefore = w.ms.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length
  res = (await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/test`)).json()
  assert.equal(res.ok, false)
  assert.match(res.message, /535 5\.7\.3/)
  assert.match(res.message, /alice@contoso\.com/)
  assert.equal(strict.authAttempts.length, 2, 'one attempt, one retry with a refreshed token')
  // The first attempt asks for a new token (it proves the client secret), the retry for another.
  assert.equal(w.ms.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length, refreshesBefore + 2)
  const s = (await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json()
  assert.equal(s.token.valid, true)
})

test('test connection: SMTP AUTH disabled (5.7.139) says how to enable it', async (t) => {
  const w = await startWorld({ smtp: { authDisabled: true } })
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  const res = (await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/test`)).json()
  assert.equal(res.ok, false)
  assert.match(res.message, /5\.7\.139/)
  assert.match(res.message, /Set-CASMailbox -Identity alice@contoso\.com -SmtpClientAuthenticationDisabled \$false/)
  // No token cures it: one AUTH, no refresh beyond the one that proves the client secret, and the badge stays green.
  assert.equal(w.smtp.authAttempts.length, 1)
  assert.equal(w.ms.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length, 1)
  const s = (await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json()
  assert.equal(s.token.valid, true)
  assert.equal(s.token.label, 'Outlook Token Valid')
})

test('test connection: a closed port and an unknown host name the cause', async (t) => {
  // An Outlook server takes Microsoft's hosts only, or trusted ones: trust the name that does not resolve.
  const w = await startWorld({ env: { MAILBRIDGE_TRUSTED_HOSTS: '127.0.0.1,smtp.invalid' } })
  t.after(w.close)
  const closed = await w.outgoingServer({ body: { port: 1 } })
  await w.connect(closed.id)
  let res = (await w.mb.api('POST', `/api/v1/outgoing-servers/${closed.id}/test`)).json()
  assert.equal(res.ok, false)
  assert.match(res.message, /127\.0\.0\.1:1 refused the connection/)
  const dns = await w.outgoingServer({ body: { name: 'DNS', host: 'smtp.invalid' } })
  res = (await w.mb.api('POST', `/api/v1/outgoing-servers/${dns.id}/test`)).json()
  assert.match(res.message, /does not resolve|could not be resolved/)
})

test('test connection: a dead refresh token (AADSTS700082) asks to Reconnect, and the badge says Expired', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  w.ms.expireRefreshTokens(ALICE)
  await w.mb.services.database.db.updateTable('credentials').set({ access_expires_at: new Date(Date.now() + 60_000).toISOString() }).execute()
  const res = (await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/test`)).json()
  assert.equal(res.ok, false)
  assert.match(res.message, /AADSTS700082/)
  assert.match(res.message, /Reconnect/)
  const s = (await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json()
  assert.equal(s.token.status, 'expired')
  assert.equal(s.token.valid, false)
  // Reconnect works even though the token is dead, and the badge turns green again.
  assert.equal((await w.connect(server.id)).statusCode, 302)
  assert.equal((await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json().token.label, 'Outlook Token Valid')
})
