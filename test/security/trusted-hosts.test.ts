import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ROGUE_HOST, startRogueImap, startRogueSmtp, startRogueTokenEndpoint } from '../support/rogue-peers.ts'
import { startSmtpPeer } from '../support/smtp-peer.ts'
import { ALICE, CLIENT_SECRET, runQueue, startWorld, type World } from '../support/world.ts'

/**
 * Issue 21 items 1 and 2 (design.md §10 "Trusted hosts"): secrets and tokens go only to the provider's hosts or
 * to MAILBRIDGE_TRUSTED_HOSTS (127.0.0.1 in the tests). The rogues on 127.0.0.2 accept anything and record it.
 */

const secretsIn = (w: World, received: string[]) => {
  const text = received.join('\n')
  return [CLIENT_SECRET, ...w.ms.issuedSecrets()].filter((s) => s && text.includes(s))
}

test('trusted hosts: an endpoint parameter on another host is refused with 400 naming the provider\'s hosts', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const put = (key: string, value: string) => w.mb.api('PUT', `/api/v1/parameters/${key}`, { value })
  const evil = await put('microsoft_outlook.endpoint', 'https://login.evil.example/common/oauth2/v2.0/')
  assert.equal(evil.statusCode, 400)
  assert.match(evil.json().error.message, /login\.microsoftonline\.com/)
  assert.match(evil.json().error.message, /MAILBRIDGE_TRUSTED_HOSTS/)
  // Another cloud's login host is not this cloud's.
  assert.equal((await put('microsoft_outlook.endpoint', 'https://login.microsoftonline.us/common/oauth2/v2.0/')).statusCode, 400)
  const google = await put('google_gmail.token_endpoint', `https://${ROGUE_HOST}:443/token`)
  assert.equal(google.statusCode, 400)
  assert.match(google.json().error.message, /oauth2\.googleapis\.com/)
  assert.equal((await put('google_gmail.auth_endpoint', 'https://accounts.google.com.evil.example/o/oauth2/v2/auth')).statusCode, 400)
  // The provider's own hosts, with a tenant of your choice, and the trusted emulator still work.
  assert.equal((await put('microsoft_outlook.endpoint', 'https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/')).statusCode, 200)
  assert.equal((await put('google_gmail.token_endpoint', 'https://oauth2.googleapis.com/token')).statusCode, 200)
  assert.equal((await put('microsoft_outlook.endpoint', w.ms.endpoint())).statusCode, 200)
  await w.mb.api('PATCH', '/api/v1/settings', { microsoft_outlook_cloud: 'usgov' })
  assert.equal((await put('microsoft_outlook.endpoint', 'https://login.microsoftonline.us/common/oauth2/v2.0/')).statusCode, 200)
})

test('trusted hosts: a rogue token endpoint stored before the rule receives neither the client secret nor a refresh token', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const rogue = await startRogueTokenEndpoint()
  t.after(rogue.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  // As an older version let an API token store it.
  await w.mb.services.settings.putParameter('microsoft_outlook.endpoint', `${rogue.url}common/oauth2/v2.0/`)
  const res = (await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/test`)).json()
  assert.equal(res.ok, false)
  assert.match(res.message, /login\.microsoftonline\.com/)
  assert.deepEqual(rogue.received, [], 'nothing reached the rogue token endpoint')
})

test('trusted hosts: an Outlook server on a host that is not Microsoft\'s is refused with 400, outgoing and incoming', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const out = await w.mb.api('POST', '/api/v1/outgoing-servers', { name: 'x', authentication: 'outlook', username: ALICE, host: ROGUE_HOST, port: 587 })
  assert.equal(out.statusCode, 400)
  assert.equal(out.json().error.field, 'host')
  assert.match(out.json().error.message, /smtp\.office365\.com/)
  const inc = await w.mb.api('POST', '/api/v1/incoming-servers', { name: 'x', authentication: 'outlook', username: ALICE, host: 'imap.evil.example', port: 993 })
  assert.equal(inc.statusCode, 400)
  assert.match(inc.json().error.message, /outlook\.office365\.com/)
  const gmail = await w.mb.api('POST', '/api/v1/outgoing-servers', { name: 'g', authentication: 'gmail', username: 'ann@gmail.com', host: 'smtp.office365.com' })
  assert.equal(gmail.statusCode, 400)
  assert.match(gmail.json().error.message, /smtp\.gmail\.com/)
  // Moving a saved server there is refused the same way.
  const server = await w.outgoingServer()
  assert.equal((await w.mb.api('PATCH', `/api/v1/outgoing-servers/${server.id}`, { host: ROGUE_HOST })).statusCode, 400)
  // The provider's hosts are the defaults and pass.
  assert.equal((await w.mb.api('POST', '/api/v1/outgoing-servers', { name: 'real', authentication: 'outlook', username: ALICE })).statusCode, 201)
})

test('trusted hosts: a rogue SMTP server saved before the rule gets no token, from Test Connection or from a send', async (t) => {
  const w = await startWorld({ env: { MAILBRIDGE_RETRY_BASE_S: '0' } })
  t.after(w.close)
  const rogue = await startRogueSmtp()
  t.after(rogue.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  await w.mb.services.database.db.updateTable('outgoing_servers').set({ host: ROGUE_HOST, port: rogue.port }).where('id', '=', server.id).execute()
  const res = (await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/test`)).json()
  assert.equal(res.ok, false)
  assert.match(res.message, /127\.0\.0\.2 is not one of Microsoft's mail hosts/)
  const mail = (await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 's', text: 't' })).json()
  await runQueue(w)
  const after = (await w.mb.api('GET', `/api/v1/mail/${mail.id}`)).json()
  assert.notEqual(after.state, 'sent')
  assert.deepEqual(secretsIn(w, rogue.received), [])
  assert.deepEqual(rogue.received, [], 'nothing connected to the rogue SMTP server')
})

test('trusted hosts: a rogue IMAP server saved before the rule gets no token, from Test & Confirm or from a fetch', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const rogue = await startRogueImap()
  t.after(rogue.close)
  const res = await w.mb.api('POST', '/api/v1/incoming-servers', { name: 'Inbox', authentication: 'outlook', username: ALICE, host: '127.0.0.1', port: 993 })
  assert.equal(res.statusCode, 201, res.body)
  const server = res.json()
  await w.connect(server.id, { kind: 'incoming' })
  await w.mb.services.database.db.updateTable('incoming_servers').set({ host: ROGUE_HOST, port: rogue.port, state: 'confirmed' }).where('id', '=', server.id).execute()
  const test1 = (await w.mb.api('POST', `/api/v1/incoming-servers/${server.id}/test`)).json()
  assert.equal(test1.ok, false)
  assert.match(test1.message, /not one of Microsoft's mail hosts/)
  const fetched = await w.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)
  assert.notEqual(fetched.statusCode, 200)
  assert.deepEqual(rogue.received, [], 'nothing connected to the rogue IMAP server')
})

test('trusted hosts: a failed Test Connection against a wrong host leaves the mailbox\'s shared credential green', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const good = await w.outgoingServer()
  await w.connect(good.id)
  // A trusted host that refuses every token (it wants a scope we never get), as a wrong server would.
  const strict = await startSmtpPeer({ introspectUrl: w.ms.introspectUrl, requiredScope: 'https://outlook.office.com/POP.AccessAsUser.All' })
  t.after(strict.close)
  const wrong = await w.outgoingServer({ body: { name: 'Wrong', port: strict.port } })
  const res = (await w.mb.api('POST', `/api/v1/outgoing-servers/${wrong.id}/test`)).json()
  assert.equal(res.ok, false)
  assert.match(res.message, /535 5\.7\.3/)
  assert.equal((await w.mb.api('GET', `/api/v1/outgoing-servers/${good.id}`)).json().token.valid, true, 'the other server of the mailbox stays green')
  assert.equal((await w.mb.api('POST', `/api/v1/outgoing-servers/${good.id}/test`)).json().ok, true)
})

test('trusted hosts: a use failure recorded elsewhere (another node, the fetcher) is cleared by the next successful send', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  const { outlook } = await import('../../src/oauth/providers.ts')
  await w.mb.services.credentials.recordUseFailure(outlook, ALICE, 'outlook.office365.com:993 refused the token')
  assert.equal((await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json().token.valid, false)
  await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 's', text: 't' })
  await runQueue(w)
  assert.equal(w.smtp.messages.length, 1)
  assert.equal((await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json().token.valid, true, 'the send proved the token')
})
