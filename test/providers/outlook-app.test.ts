import assert from 'node:assert/strict'
import { test } from 'node:test'
import { outlookApp } from '../../src/oauth/providers.ts'
import { dovecotAvailable, startDovecot } from '../support/dovecot.ts'
import { rfc822 } from '../support/mailroom.ts'
import { CLIENT_ID, startWorld, type World } from '../support/world.ts'
import { runQueue } from '../support/world.ts'

const skip = dovecotAvailable() ? false : 'Dovecot is not installed: run .ci/install-peers.sh'
const TENANT = '8f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b'
const SHARED = 'sales@contoso.com'
const account = { mailbox: SHARED, tenant: TENANT }


const appTokenRequests = (w: World) => w.ms.tokenRequests.filter((r) => r.grant_type === 'client_credentials')

/** A world where an admin granted the app SMTP.SendAsApp + IMAP.AccessAsApp in TENANT and gave it the shared mailbox. */
async function appWorld() {
  const w = await startWorld({ env: { MAILBRIDGE_RETRY_BASE_S: '0' } })
  w.ms.grantAppAccess({ clientId: CLIENT_ID, tenant: TENANT, roles: ['SMTP.SendAsApp', 'IMAP.AccessAsApp'], mailboxes: [SHARED] })
  return w
}

const appServer = async (w: World, body: Record<string, unknown> = {}) => {
  const res = await w.mb.api('POST', '/api/v1/outgoing-servers', {
    name: 'Sales (app-only)', authentication: 'outlook_app', username: SHARED, tenant_id: TENANT, host: w.smtp.host, port: w.smtp.port, ...body,
  })
  assert.equal(res.statusCode, 201, res.body)
  return res.json()
}

test('app-only: no Connect; Test Connection gets a client-credentials token in the tenant with the .default scope, and mail goes out without anyone\'s consent', async (t) => {
  const w = await appWorld()
  t.after(w.close)
  const server = await appServer(w)
  assert.deepEqual([server.tenant_id, server.max_per_minute, server.from_filter], [TENANT, 30, SHARED])
  assert.equal(server.token.label, 'Outlook (app-only) Token Missing: click Test Connection to request one')
  const connect = await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/connect`)
  assert.equal(connect.statusCode, 409)
  assert.match(connect.json().error.message, /needs no consent/)

  const tested = await w.mb.api('POST', `/api/v1/outgoing-servers/${server.id}/test`)
  assert.deepEqual(tested.json(), { ok: true, message: 'Connection Test Successful!' })
  assert.equal(appTokenRequests(w).length, 1)
  assert.equal(appTokenRequests(w)[0]!.error, undefined)
  const cred = await w.mb.services.credentials.find(outlookApp, SHARED)
  assert.deepEqual([cred?.tenant_id, cred?.refresh_token, cred?.scopes], [TENANT, null, 'https://outlook.office365.com/.default'])
  assert.equal((await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json().token.label, 'Outlook (app-only) Token Valid')

  const sent = await w.mb.api('POST', '/api/v1/mail', { from: SHARED, to: ['bob@fabrikam.com'], subject: 'From the shared mailbox', text: 'Hi' })
  await runQueue(w)
  const mail = (await w.mb.api('GET', `/api/v1/mail/${sent.json().id}`)).json()
  assert.equal(mail.state, 'sent', mail.failure_reason)
  assert.equal(w.smtp.messages.at(-1)?.user, SHARED)
  assert.equal(appTokenRequests(w).length, 1, 'the token is reused while fresh')
  assert.equal(w.ms.tokenRequests.filter((r) => r.grant_type !== 'client_credentials').length, 0, 'no consent, no refresh token')
})

test('app-only: an expired token is replaced by a new client-credentials request, one at a time across two services', async (t) => {
  const w = await appWorld()
  t.after(w.close)
  await appServer(w)
  const first = await w.mb.services.credentials.accessToken(outlookApp, account)
  const { CredentialService } = await import('../../src/oauth/credentials.ts')
  const s = w.mb.services
  const other = new CredentialService({ db: s.database.db, box: s.box, settings: s.settings, log: s.log, refreshMarginSeconds: 600, trustedHosts: s.settings.trustedHosts })
  await s.database.db.updateTable('credentials').set({ access_expires_at: new Date(Date.now() + 60_000).toISOString() }).execute()
  w.ms.setTokenEndpoint({ delayMs: 300 })
  const tokens = await Promise.all([...Array.from({ length: 5 }, () => s.credentials.accessToken(outlookApp, account)), other.accessToken(outlookApp, account)])
  assert.equal(new Set(tokens.map((x) => x.reveal())).size, 1)
  assert.notEqual(tokens[0]!.reveal(), first.reveal())
  assert.equal(appTokenRequests(w).length, 2, 'one request for the first token, one for its replacement')
})

test('app-only: an unreachable token endpoint keeps the tag valid (retried), not Invalid, until the next token comes', async (t) => {
  const w = await appWorld()
  t.after(w.close)
  const server = await appServer(w)
  await w.mb.services.credentials.accessToken(outlookApp, account)
  await w.mb.services.database.db.updateTable('credentials').set({ access_expires_at: new Date(Date.now() + 60_000).toISOString() }).execute()
  const label = async () => (await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json().token.label as string

  w.ms.setTokenEndpoint({ down: true })
  await assert.rejects(w.mb.services.credentials.accessToken(outlookApp, account))
  assert.match(await label(), /^Outlook \(app-only\) Token Valid \(the last token request could not reach Outlook \(app-only\); it is retried\)$/)

  w.ms.setTokenEndpoint({})
  await w.mb.services.credentials.accessToken(outlookApp, account)
  assert.equal(await label(), 'Outlook (app-only) Token Valid')
})

test('app-only: a tenant where the app was never admin-consented gets AADSTS700016; a mailbox the app was not given gets 535 naming Add-MailboxPermission', async (t) => {
  const w = await appWorld()
  t.after(w.close)
  const stranger = await appServer(w, { tenant_id: '11111111-2222-4333-8444-555555555555' })
  const refused = (await w.mb.api('POST', `/api/v1/outgoing-servers/${stranger.id}/test`)).json()
  assert.equal(refused.ok, false)
  assert.match(refused.message, /AADSTS700016/)
  assert.match((await w.mb.api('GET', `/api/v1/outgoing-servers/${stranger.id}`)).json().token.label, /^Outlook \(app-only\) Token Invalid: .*AADSTS700016/)
  const other = await appServer(w, { username: 'ceo@contoso.com' })
  const denied = (await w.mb.api('POST', `/api/v1/outgoing-servers/${other.id}/test`)).json()
  assert.equal(denied.ok, false)
  assert.match(denied.message, /535 5\.7\.3/)
  assert.match(denied.message, /SMTP\.SendAsApp.*Add-MailboxPermission -Identity ceo@contoso\.com/)
  // A role missing from the admin consent: the token comes without it and Exchange refuses it too.
  w.ms.grantAppAccess({ clientId: CLIENT_ID, tenant: '22222222-2222-4333-8444-555555555555', mailboxes: [SHARED] })
  const noRole = await appServer(w, { tenant_id: '22222222-2222-4333-8444-555555555555' })
  assert.equal((await w.mb.api('POST', `/api/v1/outgoing-servers/${noRole.id}/test`)).json().ok, false)
})

test('app-only: the API refuses a missing or generic tenant_id, and a tenant_id on a server that does not use app-only access', async (t) => {
  const w = await appWorld()
  t.after(w.close)
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ authentication: 'outlook_app', username: SHARED }, /needs its tenant_id/],
    [{ authentication: 'outlook_app', username: SHARED, tenant_id: 'common' }, /AADSTS9001023/],
    [{ authentication: 'outlook_app', username: SHARED, tenant_id: 'not a tenant' }, /pattern|neither a tenant id/],
    [{ authentication: 'outlook', username: SHARED, tenant_id: TENANT }, /only for authentication "outlook_app"/],
  ]
  for (const [body, message] of cases) {
    const res = await w.mb.api('POST', '/api/v1/outgoing-servers', { name: 'x', ...body })
    assert.equal(res.statusCode, 400, res.body)
    assert.match(res.json().error.message, message)
    if (!/pattern/.test(res.json().error.message)) assert.equal(res.json().error.field, 'tenant_id')
  }
  // Switching an app-only server to delegated access drops its tenant.
  const app = (await w.mb.api('POST', '/api/v1/outgoing-servers', { name: 'app', authentication: 'outlook_app', username: SHARED, tenant_id: TENANT })).json()
  const switched = await w.mb.api('PATCH', `/api/v1/outgoing-servers/${app.id}`, { authentication: 'outlook' })
  assert.equal(switched.statusCode, 200, switched.body)
  assert.equal(switched.json().tenant_id, null)
  const incoming = await w.mb.api('POST', '/api/v1/incoming-servers', { name: 'x', authentication: 'outlook_app', username: SHARED })
  assert.equal(incoming.statusCode, 400)
  assert.equal(incoming.json().error.field, 'tenant_id')
  const openapi = (await w.mb.app.inject({ method: 'GET', url: '/openapi.json' })).json()
  const text = JSON.stringify(openapi)
  for (const value of ['"outlook_app"', '"gmail"', '"tenant_id"', '"usgov"', '"google_gmail_client_secret"']) assert.ok(text.includes(value), `OpenAPI shows ${value}`)
})

test('app-only: Test & Confirm and a fetch read the shared mailbox from Dovecot with an app token', { skip }, async (t) => {
  const w = await appWorld()
  const dovecot = await startDovecot({ introspectUrl: w.ms.introspectUrl, appRole: 'IMAP.AccessAsApp' })
  t.after(async () => {
    await w.mb.services.scheduler.stop()
    await w.close()
    await dovecot.stop()
  })
  const created = await w.mb.api('POST', '/api/v1/incoming-servers', {
    name: 'Sales inbox', authentication: 'outlook_app', username: SHARED, tenant_id: TENANT, host: dovecot.host, port: dovecot.imapsPort,
  })
  assert.equal(created.statusCode, 201, created.body)
  const server = created.json()
  const tested = await w.mb.api('POST', `/api/v1/incoming-servers/${server.id}/test`)
  assert.equal(tested.json().ok, true, tested.body)
  await dovecot.seed(SHARED, rfc822({ subject: 'To the shared mailbox', to: SHARED }))
  const fetched = await w.mb.api('POST', `/api/v1/incoming-servers/${server.id}/fetch`)
  assert.equal(fetched.json().stored, 1, fetched.body)
  // The same app, a mailbox it was not given: Dovecot refuses the login.
  const other = (await w.mb.api('POST', '/api/v1/incoming-servers', {
    name: 'CEO', authentication: 'outlook_app', username: 'ceo@contoso.com', tenant_id: TENANT, host: dovecot.host, port: dovecot.imapsPort,
  })).json()
  const refused = (await w.mb.api('POST', `/api/v1/incoming-servers/${other.id}/test`)).json()
  assert.equal(refused.ok, false)
  assert.match(refused.message, /IMAP\.AccessAsApp/)
})
