/**
 * Tokens per resource (issue 16, design.md §10): one consent per mailbox names the Outlook scopes and the Graph
 * permissions its servers need; each token request names one resource; the credential keeps a token per resource,
 * refreshed from the one refresh token; a consent without a Graph permission asks for Reconnect; app-only Graph.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CredentialService } from '../../src/oauth/credentials.ts'
import { outlook, outlookApp } from '../../src/oauth/providers.ts'
import { ALICE, CLIENT_ID, startWorld, type World } from '../support/world.ts'

const GRAPH_SEND = 'https://graph.microsoft.com/Mail.Send'
const GRAPH_RW = 'https://graph.microsoft.com/Mail.ReadWrite'
const TENANT = '8f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b'
const SHARED = 'sales@contoso.com'

const server = async (w: World, kind: 'outgoing' | 'incoming', body: Record<string, unknown>) => {
  const res = await w.mb.api('POST', `/api/v1/${kind}-servers`, { name: `${kind} ${body.transport ?? ''}`, authentication: 'outlook', username: ALICE, ...body })
  assert.equal(res.statusCode, 201, res.body)
  return res.json() as { id: string; token: { valid: boolean; status: string; label: string } }
}
const scopesOf = async (w: World, kind: 'outgoing' | 'incoming', id: string) =>
  new URL((await w.mb.api('POST', `/api/v1/${kind}-servers/${id}/connect`)).json().authorize_url).searchParams.get('scope')!.split(' ')
const get = async (w: World, kind: 'outgoing' | 'incoming', id: string) => (await w.mb.api('GET', `/api/v1/${kind}-servers/${id}`)).json()
const graphToken = (w: World, permission: 'Mail.Send' | 'Mail.ReadWrite' = 'Mail.Send') => w.mb.services.credentials.accessToken(outlook, ALICE, { resource: { graph: permission } })

test('connect: the authorize request names the Outlook scopes and the Graph permissions the mailbox\'s servers need, no more', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const smtp = await w.outgoingServer()
  const outlookScopes = ['openid', 'email', 'offline_access', 'https://outlook.office.com/SMTP.Send', 'https://outlook.office.com/IMAP.AccessAsUser.All']
  assert.deepEqual(await scopesOf(w, 'outgoing', smtp.id), outlookScopes)
  const send = await server(w, 'outgoing', { transport: 'graph' })
  assert.deepEqual(await scopesOf(w, 'outgoing', smtp.id), [...outlookScopes, GRAPH_SEND], 'every server of the mailbox asks for the same consent')
  await server(w, 'incoming', { transport: 'graph', username: ALICE.toUpperCase() })
  assert.deepEqual(await scopesOf(w, 'outgoing', send.id), [...outlookScopes, GRAPH_SEND, GRAPH_RW])
  await server(w, 'outgoing', { transport: 'graph', username: 'bob@contoso.com' })
  assert.deepEqual((await scopesOf(w, 'incoming', (await server(w, 'incoming', { username: 'carol@contoso.com' })).id)), outlookScopes, 'another mailbox\'s servers do not count')
})

test('tokens per resource: one consent serves an SMTP server and a Graph server; each token names one resource, both from the one rotating refresh token', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const smtp = await w.outgoingServer()
  const fetcher = await server(w, 'incoming', { transport: 'graph' })
  const back = await w.connect(fetcher.id, { kind: 'incoming' })
  assert.equal(back.statusCode, 302, back.body)
  assert.equal((await get(w, 'outgoing', smtp.id)).token.label, 'Outlook Token Valid')
  assert.equal((await get(w, 'incoming', fetcher.id)).token.label, 'Outlook Token Valid')
  const row = (await w.mb.services.credentials.find(outlook, ALICE))!
  assert.ok(row.graph_access_token && row.access_token, 'a token per resource, sealed')
  assert.ok(!w.ms.issuedSecrets().includes(row.graph_access_token), 'sealed, not the token itself')

  const mail = await w.mb.services.credentials.accessToken(outlook, ALICE)
  const graph = await graphToken(w, 'Mail.ReadWrite')
  assert.equal(w.ms.tokenInfo(mail.reveal())!.aud, 'https://outlook.office.com')
  const info = w.ms.tokenInfo(graph.reveal())!
  assert.equal(info.aud, 'https://graph.microsoft.com')
  assert.deepEqual(info.scp.map((s) => s.split('/').at(-1)), ['Mail.ReadWrite'])
  assert.ok(w.ms.tokenRequests.every((r) => r.aadsts !== 28000), 'no token request named two resources')

  // Both tokens run out; a second service (another node) asks at the same time: one refresh at a time, each from
  // the refresh token the previous one returned.
  await w.mb.services.database.db.updateTable('credentials').set({ access_expires_at: new Date(Date.now() + 1000).toISOString(), graph_access_expires_at: new Date(Date.now() + 1000).toISOString() }).execute()
  const s = w.mb.services
  const other = new CredentialService({ db: s.database.db, box: s.box, settings: s.settings, log: s.log, refreshMarginSeconds: 600, trustedHosts: s.settings.trustedHosts })
  const before = w.ms.tokenRequests.length
  w.ms.setTokenEndpoint({ delayMs: 100 })
  const tokens = await Promise.all([
    s.credentials.accessToken(outlook, ALICE), other.accessToken(outlook, ALICE),
    graphToken(w, 'Mail.ReadWrite'), other.accessToken(outlook, ALICE, { resource: { graph: 'Mail.ReadWrite' } }),
  ])
  w.ms.setTokenEndpoint({})
  const refreshes = w.ms.tokenRequests.slice(before)
  assert.equal(refreshes.length, 2, 'one refresh per resource')
  assert.ok(refreshes.every((r) => r.grant_type === 'refresh_token' && !r.error))
  assert.notEqual(refreshes[0]!.refreshGeneration, refreshes[1]!.refreshGeneration, 'the second refresh used the rotated refresh token')
  assert.deepEqual(tokens.map((x) => w.ms.tokenInfo(x.reveal())!.aud), ['https://outlook.office.com', 'https://outlook.office.com', 'https://graph.microsoft.com', 'https://graph.microsoft.com'])
  const stored = (await s.credentials.find(outlook, ALICE))!
  assert.equal(s.box.open(stored.refresh_token!, 'credentials.refresh_token').reveal(), w.ms.latestRefreshToken(ALICE), 'the rotated refresh token is saved')
})

test('a mailbox connected without Graph that gains a Graph server: its badge and its token request say Reconnect (AADSTS65001); its SMTP server keeps working; Reconnect fixes it', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const smtp = await w.outgoingServer()
  assert.equal((await w.connect(smtp.id)).statusCode, 302)
  const send = await server(w, 'outgoing', { transport: 'graph' })
  assert.equal(send.token.status, 'invalid')
  assert.match(send.token.label, /^Outlook Token Invalid: alice@contoso\.com was connected without the Microsoft Graph permission Mail\.Send .*AADSTS65001.*click Reconnect your Outlook account/)
  await assert.rejects(graphToken(w), (e: Error) => /connected without the Microsoft Graph permission Mail\.Send.*Reconnect/.test(e.message))
  const refused = w.ms.tokenRequests.at(-1)!
  assert.deepEqual([refused.error, refused.aadsts], ['invalid_grant', 65001], 'Microsoft was asked, and answered consent required')
  const row = (await w.mb.services.credentials.find(outlook, ALICE))!
  assert.equal(row.last_error, null, 'nothing recorded on the credential: the Outlook token is fine')
  assert.equal((await get(w, 'outgoing', smtp.id)).token.label, 'Outlook Token Valid')
  assert.equal(w.ms.tokenInfo((await w.mb.services.credentials.accessToken(outlook, ALICE, { renew: true })).reveal())!.aud, 'https://outlook.office.com')

  const page = await w.mb.api('GET', `/api/v1/outgoing-servers/${send.id}`)
  assert.equal(page.json().token.valid, false)
  assert.equal((await w.connect(send.id)).statusCode, 302)
  assert.equal((await get(w, 'outgoing', send.id)).token.label, 'Outlook Token Valid')
  assert.deepEqual(w.ms.tokenInfo((await graphToken(w)).reveal())!.scp.map((s) => s.split('/').at(-1)), ['Mail.Send'])
})

test('app-only Graph: client credentials with https://graph.microsoft.com/.default in the server\'s tenant, a token apart from the Exchange Online one', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  w.ms.grantAppAccess({ clientId: CLIENT_ID, tenant: TENANT, roles: ['Mail.Send', 'SMTP.SendAsApp'], mailboxes: [SHARED] })
  const res = await w.mb.api('POST', '/api/v1/outgoing-servers', { name: 'Sales', authentication: 'outlook_app', transport: 'graph', username: SHARED, tenant_id: TENANT })
  assert.equal(res.json().token.label, 'Outlook (app-only) Token Missing: click Test Connection to request one')
  const account = { mailbox: SHARED, tenant: TENANT }
  const graph = await w.mb.services.credentials.accessToken(outlookApp, account, { resource: { graph: 'Mail.Send' } })
  const info = w.ms.tokenInfo(graph.reveal())!
  assert.deepEqual([info.aud, info.tid, info.roles], ['https://graph.microsoft.com', TENANT, ['Mail.Send', 'SMTP.SendAsApp']])
  assert.equal((await w.mb.api('GET', `/api/v1/outgoing-servers/${res.json().id}`)).json().token.label, 'Outlook (app-only) Token Valid')
  const mail = await w.mb.services.credentials.accessToken(outlookApp, account)
  assert.equal(w.ms.tokenInfo(mail.reveal())!.aud, 'https://outlook.office365.com')
  assert.equal((await w.mb.services.credentials.accessToken(outlookApp, account, { resource: { graph: 'Mail.Send' } })).reveal(), graph.reveal(), 'each kept while fresh')
  const requests = w.ms.tokenRequests.filter((r) => r.grant_type === 'client_credentials')
  assert.equal(requests.length, 2)
  assert.ok(requests.every((r) => !r.error), 'one resource a request (two /.default would be AADSTS70011)')
  const row = (await w.mb.services.credentials.find(outlookApp, SHARED))!
  assert.deepEqual([row.scopes, row.graph_scopes], ['https://outlook.office365.com/.default', 'https://graph.microsoft.com/.default'])
})
