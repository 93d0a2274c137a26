import assert from 'node:assert/strict'
import { test } from 'node:test'
import { gmail } from '../../src/oauth/providers.ts'
import { dovecotAvailable } from '../support/dovecot.ts'
import { CAROL, GMAIL_CLIENT_ID, startGmailWorld, type GmailWorld } from '../support/gmail-world.ts'
import { rfc822 } from '../support/mailroom.ts'
import { runQueue } from '../support/world.ts'

const skip = dovecotAvailable() ? false : 'Dovecot is not installed: run .ci/install-peers.sh'


test('gmail: a new server fills in smtp.gmail.com:587 STARTTLS and no rate limit; Connect asks Google for offline access with consent', async (t) => {
  const w = await startGmailWorld()
  t.after(w.close)
  const created = await w.mb.api('POST', '/api/v1/outgoing-servers', { name: 'Gmail', authentication: 'gmail', username: CAROL })
  assert.equal(created.statusCode, 201, created.body)
  const s = created.json()
  assert.deepEqual(
    { host: s.host, port: s.port, encryption: s.encryption, from_filter: s.from_filter, max_per_minute: s.max_per_minute, token: s.token.label },
    { host: 'smtp.gmail.com', port: 587, encryption: 'starttls', from_filter: CAROL, max_per_minute: null, token: 'Gmail Token Missing: click Connect your Gmail account' },
  )
  const url = new URL((await w.mb.api('POST', `/api/v1/outgoing-servers/${s.id}/connect`)).json().authorize_url)
  assert.equal(url.origin + url.pathname, w.google.authEndpoint)
  const q = Object.fromEntries(url.searchParams)
  assert.equal(q.client_id, GMAIL_CLIENT_ID)
  assert.equal(q.redirect_uri, 'http://localhost:8080/google_gmail/confirm')
  assert.equal(q.scope, 'openid email https://mail.google.com/')
  assert.equal(q.access_type, 'offline')
  assert.equal(q.prompt, 'consent')
  assert.equal(q.login_hint, CAROL)
  assert.equal(q.code_challenge_method, 'S256')
  assert.equal(q.response_mode, undefined, 'Microsoft\'s response_mode is not sent to Google')

  const imap = await w.mb.api('POST', '/api/v1/incoming-servers', { name: 'Gmail inbox', authentication: 'gmail', username: CAROL })
  assert.deepEqual([imap.json().host, imap.json().port, imap.json().encryption], ['imap.gmail.com', 993, 'ssl'])
})

test('gmail: consent → /google_gmail/confirm stores the credential, the server shows "Gmail Token Valid", and a mail goes out over XOAUTH2', async (t) => {
  const w = await startGmailWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  const back = await w.connect(server.id)
  assert.equal(back.statusCode, 302, back.body)
  assert.equal(back.headers.location, `/admin/outgoing-servers/${server.id}?connected=1`)
  const shown = (await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json()
  assert.equal(shown.token.label, 'Gmail Token Valid')
  assert.equal(shown.token.valid, true)
  const cred = await w.mb.services.credentials.find(gmail, CAROL)
  assert.ok(cred?.refresh_token && !cred.refresh_token.includes('1//0'), 'the refresh token is stored sealed')

  const test = await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/test`)
  assert.deepEqual(test.json(), { ok: true, message: 'Connection Test Successful!' })
  const sent = await w.mb.api('POST', '/api/v1/mail', { from: CAROL, to: ['erin@example.org'], subject: 'From Gmail', text: 'Hello' })
  assert.equal(sent.statusCode, 202, sent.body)
  await runQueue(w)
  const mail = (await w.mb.api('GET', `/api/v1/mail/${sent.json().id}`)).json()
  assert.equal(mail.state, 'sent', mail.failure_reason)
  assert.equal(w.smtp.messages.at(-1)?.user, CAROL)
  assert.deepEqual(w.smtp.messages.at(-1)?.to, ['erin@example.org'])
})

test('gmail: the consenting Google account must be the server\'s username (id_token email), else 403 and nothing stored', async (t) => {
  const w = await startGmailWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  const back = await w.connect(server.id, { user: 'dave@gmail.com' })
  assert.equal(back.statusCode, 403)
  assert.match(back.body, /Signed in as dave@gmail\.com, but this server is for carol@gmail\.com\. Sign in to Google with carol@gmail\.com/)
  assert.equal(await w.mb.services.credentials.find(gmail, CAROL), undefined)
  const declined = await w.connect(server.id, { approve: false })
  assert.equal(declined.statusCode, 400)
  assert.match(declined.body, /Google refused the sign-in: access_denied/)
})

test('gmail: a refresh keeps the stored refresh token, because Google sends none back', async (t) => {
  const w = await startGmailWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  const before = await w.mb.services.credentials.find(gmail, CAROL)
  const first = await w.mb.services.credentials.accessToken(gmail, CAROL)
  w.google.expireAccessTokens(CAROL)
  const second = await w.mb.services.credentials.accessToken(gmail, CAROL, { rejected: first })
  assert.notEqual(second.reveal(), first.reveal())
  const refreshes = w.google.tokenRequests.filter((r) => r.grant_type === 'refresh_token')
  assert.equal(refreshes.length, 1)
  assert.equal(refreshes[0]!.refreshToken, false, 'Google answered without a refresh_token')
  const after = await w.mb.services.credentials.find(gmail, CAROL)
  assert.equal(after!.refresh_count, 1)
  assert.equal(
    w.mb.services.box.open(after!.refresh_token!, 'credentials.refresh_token').reveal(),
    w.mb.services.box.open(before!.refresh_token!, 'credentials.refresh_token').reveal(),
    'the old refresh token is kept',
  )
  assert.equal(after!.refresh_token !== null, true)
  // And it still works: a second refresh with the kept token succeeds.
  w.google.expireAccessTokens(CAROL)
  await w.mb.services.credentials.accessToken(gmail, CAROL, { rejected: second })
  assert.equal((await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json().token.label, 'Gmail Token Valid')
})

test('gmail: a revoked grant gets Google\'s invalid_grant "Token has been expired or revoked." and turns the tag red with Reconnect', async (t) => {
  const w = await startGmailWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  w.google.revokeUser(CAROL)
  w.google.expireAccessTokens(CAROL)
  const first = await w.mb.services.credentials.find(gmail, CAROL)
  await assert.rejects(
    w.mb.services.credentials.accessToken(gmail, CAROL, { rejected: w.mb.services.box.open(first!.access_token!, 'credentials.access_token') }),
    /Token has been expired or revoked\. — Google no longer accepts this sign-in.*Reconnect/,
  )
  const shown = (await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json()
  assert.equal(shown.token.valid, false)
  assert.match(shown.token.label, /^Gmail Token Invalid: /)
})

test('gmail: Test & Confirm and a fetch read the mailbox from Dovecot with a Gmail token', { skip }, async (t) => {
  const w = await startGmailWorld({ dovecot: true })
  t.after(w.close)
  const server = await w.incomingServer()
  const back = await w.connect(server.id, { kind: 'incoming' })
  assert.equal(back.statusCode, 302, back.body)
  const tested = await w.mb.api('POST', `/api/v1/incoming-servers/${server.id}/test`)
  assert.equal(tested.json().ok, true, tested.body)
  await w.dovecot!.seed(CAROL, rfc822({ subject: 'Gmail order', to: CAROL, messageId: '<gmail-order@example.org>' }))
  const fetched = await w.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)
  assert.equal(fetched.statusCode, 200, fetched.body)
  assert.equal(fetched.json().stored, 1)
  const items = (await w.mb.api('GET', `/api/v1/messages?server_id=${server.id}`)).json().items
  assert.deepEqual(items.map((m: { subject: string }) => m.subject), ['Gmail order'])
})
