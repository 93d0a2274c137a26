import assert from 'node:assert/strict'
import { test } from 'node:test'
import { dovecotAvailable } from '../support/dovecot.ts'
import { CAROL, GMAIL_CLIENT_SECRET, startGmailWorld } from '../support/gmail-world.ts'
import { startMailroom } from '../support/mailroom.ts'
import { ALICE, CLIENT_ID, CLIENT_SECRET, startWorld } from '../support/world.ts'

const NEW_SECRET = 'Zz9Q~the.next.client-secret_value_9876543210'

test('settings: a Client Secret Microsoft refuses (the Secret ID pasted, AADSTS7000215) gets 422 and the stored one stays', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  const res = await w.mb.api('PATCH', '/api/v1/settings', { microsoft_outlook_client_secret: '8f2b6c1e-secret-id-not-value' })
  assert.equal(res.statusCode, 422)
  const error = res.json().error
  assert.equal(error.code, 'client_secret_refused')
  assert.equal(error.field, 'microsoft_outlook_client_secret')
  assert.match(error.message, /AADSTS7000215/)
  assert.match(error.message, /Value, not its Secret ID/)
  assert.match(error.message, new RegExp(ALICE))
  assert.equal((await w.mb.services.settings.secret('microsoft_outlook_client_secret'))?.reveal(), CLIENT_SECRET)
  assert.deepEqual(w.ms.tokenRequests.at(-1)?.aadsts, 7000215, 'Microsoft was asked')
  const after = (await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json()
  assert.equal(after.token.valid, true, 'a refused candidate is not the stored credential\'s failure')
  assert.ok(!w.mb.logs.join('').includes('8f2b6c1e-secret-id-not-value'), 'the candidate is never logged')
})

test('settings: a Client Secret Microsoft accepts is saved, and the answer says it was checked', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  // A new secret made in Azure (the emulator keeps one per app, so the old one stops working).
  w.ms.registerApp({ clientId: CLIENT_ID, clientSecret: NEW_SECRET, redirectUris: [w.mb.services.connect.redirectUri({ route: 'microsoft_outlook' } as never)] })
  const res = await w.mb.api('PATCH', '/api/v1/settings', { microsoft_outlook_client_secret: NEW_SECRET })
  assert.equal(res.statusCode, 200)
  assert.equal(res.json().microsoft_outlook_client_secret_check.result, 'accepted')
  assert.match(res.json().microsoft_outlook_client_secret_check.message, new RegExp(`Microsoft accepted the Client Secret: a token request for ${ALICE}`))
  assert.equal((await w.mb.services.settings.secret('microsoft_outlook_client_secret'))?.reveal(), NEW_SECRET)
  assert.equal(w.ms.tokenRequests.at(-1)?.grant_type, 'refresh_token')
  assert.equal(w.ms.tokenRequests.at(-1)?.error, undefined)
  // The refresh rotated the refresh token: the saved one still works.
  assert.equal((await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/test`)).json().ok, true)
})

test('settings: with no mailbox connected the secret is saved and the answer says it could not be checked', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const res = await w.mb.api('PATCH', '/api/v1/settings', { microsoft_outlook_client_secret: NEW_SECRET })
  assert.equal(res.statusCode, 200)
  assert.equal(res.json().microsoft_outlook_client_secret_check.result, 'unchecked')
  assert.match(res.json().microsoft_outlook_client_secret_check.message, /No mailbox is connected/)
  assert.equal((await w.mb.api('GET', '/api/v1/settings')).json().microsoft_outlook_client_secret_check, undefined)
})

test('test connection: a stored secret Microsoft refuses turns it red at once, though the cached token is still fresh', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  // As before this check existed: a wrong secret saved, with an hour left on the access token.
  await w.mb.services.settings.update({ microsoft_outlook_client_secret: 'the-secret-id-not-its-value' })
  const res = (await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/test`)).json()
  assert.equal(res.ok, false)
  assert.match(res.message, /AADSTS7000215/)
  assert.match(res.message, /Secret ID/)
})

test('settings: a Gmail Client Secret Google refuses (invalid_client "Unauthorized") gets 422 and the stored one stays', async (t) => {
  const w = await startGmailWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  const res = await w.mb.api('PATCH', '/api/v1/settings', { google_gmail_client_secret: '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_000' })
  assert.equal(res.statusCode, 422)
  const error = res.json().error
  assert.equal(error.code, 'client_secret_refused')
  assert.equal(error.field, 'google_gmail_client_secret')
  assert.match(error.message, /^Google refused this Client Secret \(invalid_client\)/)
  assert.match(error.message, new RegExp(CAROL))
  assert.equal((await w.mb.services.settings.secret('google_gmail_client_secret'))?.reveal(), GMAIL_CLIENT_SECRET)
  assert.equal((await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json().token.label, 'Gmail Token Valid')
})

test('Test & Confirm (IMAP): a stored secret Microsoft refuses fails at once, naming AADSTS7000215, though the cached token is still fresh', { skip: dovecotAvailable() ? false : 'Dovecot is not installed: run .ci/install-peers.sh' }, async (t) => {
  const room = await startMailroom()
  t.after(room.close)
  const server = await room.confirmedServer()
  await room.mb.services.settings.update({ microsoft_outlook_client_secret: 'the-secret-id-not-its-value' })
  const res = (await room.mb.api('POST', `/api/v1/incoming-servers/${server.id}/test`)).json()
  assert.equal(res.ok, false)
  assert.match(res.message, /AADSTS7000215/)
  assert.match(res.message, new RegExp(ALICE))
})

test('settings: an expired Client Secret (AADSTS7000222) gets 422 saying to create a new one, and is not saved', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  w.ms.registerApp({ clientId: CLIENT_ID, clientSecret: NEW_SECRET, secretExpiresAt: new Date(Date.now() - 86_400_000), redirectUris: [w.mb.services.connect.redirectUri({ route: 'microsoft_outlook' } as never)] })
  const res = await w.mb.api('PATCH', '/api/v1/settings', { microsoft_outlook_client_secret: NEW_SECRET })
  assert.equal(res.statusCode, 422)
  assert.equal(res.json().error.code, 'client_secret_refused')
  assert.match(res.json().error.message, /AADSTS7000222/)
  assert.match(res.json().error.message, /new (client )?secret/i, res.json().error.message)
  assert.equal((await w.mb.services.settings.secret('microsoft_outlook_client_secret'))?.reveal(), CLIENT_SECRET)
})
