import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { newId } from '../../src/db/index.ts'
import { adminClient, signInForm } from '../support/admin-client.ts'
import { startMailbridge, type Harness } from '../support/harness.ts'
import { CLIENT_ID, CLIENT_SECRET, startWorld } from '../support/world.ts'

interface Entry {
  actor_type: string
  actor: string
  action: string
  target: string | null
  detail: Record<string, string | string[]> | null
  client: string | null
}

async function start(t: TestContext, env?: Record<string, string>): Promise<Harness> {
  const mb = await startMailbridge({ env })
  t.after(mb.close)
  return mb
}

/** The whole log, oldest first, as GET /api/v1/audit pages it. */
async function auditLog(mb: Harness): Promise<Entry[]> {
  const all: Entry[] = []
  let cursor: string | null = null
  do {
    const r = await mb.api('GET', `/api/v1/audit?limit=3${cursor ? `&cursor=${cursor}` : ''}`)
    assert.equal(r.statusCode, 200, r.body)
    all.push(...r.json().items)
    cursor = r.json().next_cursor
  } while (cursor)
  return all.reverse()
}

const brief = (e: Entry) => [e.actor_type, e.actor, e.action, e.target]

test('audit: the admin actions of the API are recorded with the token\'s name, the target and the fields named; reads, sends and refusals are not; no secret is kept', async (t) => {
  const mb = await start(t)
  const ok = async (method: 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, body?: unknown) => {
    const r = await mb.api(method, url, body)
    assert.ok(r.statusCode < 300, `${method} ${url}: ${r.statusCode} ${r.body}`)
    return r.body ? r.json() : undefined
  }
  await ok('PATCH', '/api/v1/settings', { microsoft_outlook_client_id: CLIENT_ID, microsoft_outlook_client_secret: CLIENT_SECRET })
  const server = await ok('POST', '/api/v1/outgoing-servers', { name: 'Sales', authentication: 'outlook', username: 'sales@contoso.com' })
  await ok('PATCH', `/api/v1/outgoing-servers/${server.id}`, { name: 'Sales team', sequence: 2 })
  await ok('POST', `/api/v1/outgoing-servers/${server.id}/connect`)
  await ok('PUT', '/api/v1/parameters/mail.force.smtp.from', { value: 'noreply@contoso.com' })
  const token = await ok('POST', '/api/v1/api-tokens', { name: 'billing', scopes: ['mail:send'] })
  await ok('DELETE', `/api/v1/api-tokens/${token.id}`)
  const hook = await ok('POST', '/api/v1/webhooks', { url: 'https://app.example.com/hook', events: ['mail.sent'], secret: 'whsec_audit-0123456789abcdef' })
  await ok('DELETE', `/api/v1/webhooks/${hook.id}`)
  await ok('DELETE', `/api/v1/outgoing-servers/${server.id}`)
  // Not recorded: reads, a mail sent, a refused change.
  assert.equal((await mb.api('GET', '/api/v1/outgoing-servers')).statusCode, 200)
  assert.equal((await mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 'x', text: 'x' })).statusCode, 409)
  assert.equal((await mb.api('PATCH', '/api/v1/outgoing-servers/0123456789abcdef', { name: 'x' })).statusCode, 404)
  assert.equal((await mb.api('POST', '/api/v1/api-tokens', { name: 'x', scopes: [] })).statusCode, 400)

  const log = await auditLog(mb)
  assert.deepEqual(log.map(brief), [
    ['api_token', 'tests', 'settings.updated', null],
    ['api_token', 'tests', 'outgoing_server.created', server.id],
    ['api_token', 'tests', 'outgoing_server.updated', server.id],
    ['api_token', 'tests', 'outgoing_server.connect', server.id],
    ['api_token', 'tests', 'parameter.updated', 'mail.force.smtp.from'],
    ['api_token', 'tests', 'api_token.created', token.id],
    ['api_token', 'tests', 'api_token.revoked', token.id],
    ['api_token', 'tests', 'webhook.created', hook.id],
    ['api_token', 'tests', 'webhook.deleted', hook.id],
    ['api_token', 'tests', 'outgoing_server.deleted', server.id],
  ])
  assert.deepEqual(log[0]!.detail, { fields: ['microsoft_outlook_client_id', 'microsoft_outlook_client_secret'] })
  assert.deepEqual(log[2]!.detail, { fields: ['name', 'sequence'] })
  assert.deepEqual(log[5]!.detail, { name: 'billing', scopes: ['mail:send'] })
  assert.deepEqual(log[6]!.detail, { name: 'billing' })
  assert.equal(log[0]!.client, '127.0.0.1')

  const stored = JSON.stringify(await mb.services.database.db.selectFrom('audit_log').selectAll().execute())
  for (const secret of [CLIENT_SECRET, token.token, 'whsec_audit-0123456789abcdef', 'noreply@contoso.com']) assert.ok(!stored.includes(secret), 'the log keeps names, never values')
})

test('audit: the admin UI\'s sign-ins, forms and sign-out are recorded as the admin; a failed sign-in as the form, without the typed username', async (t) => {
  const mb = await start(t)
  const admin = await adminClient(mb.app, mb.services)
  assert.equal((await signInForm(mb.app, { username: 'hunter2-typed-here', password: 'wrong password' })).statusCode, 401)
  assert.equal((await admin.post('/admin/parameters', { key: 'audit.example', value: 'x' })).statusCode, 303)
  assert.equal((await admin.post('/admin/parameters', { key: '', value: 'x' })).statusCode, 400, 'refused: not recorded')
  assert.equal((await admin.post('/admin/parameters/audit.example/delete')).statusCode, 303)
  assert.equal((await mb.app.inject({ method: 'POST', url: '/admin/parameters', payload: 'key=a&value=b', headers: { 'content-type': 'application/x-www-form-urlencoded' } })).statusCode, 303, 'signed out: sent to the sign-in')
  assert.equal((await admin.post('/admin/logout')).statusCode, 303)

  const log = await auditLog(mb)
  assert.deepEqual(log.map(brief), [
    ['admin', 'admin', 'admin.signed_in', null],
    ['anonymous', 'sign-in form', 'admin.sign_in_failed', null],
    ['admin', 'admin', 'parameter.created', 'audit.example'],
    ['admin', 'admin', 'parameter.deleted', 'audit.example'],
    ['admin', 'admin', 'admin.signed_out', null],
  ])
  assert.ok(!JSON.stringify(log).includes('hunter2'))
})

test('audit: GET /api/v1/audit needs the admin scope and pages newest first', async (t) => {
  const mb = await start(t)
  for (const key of ['a.one', 'a.two', 'a.three']) assert.equal((await mb.api('PUT', `/api/v1/parameters/${key}`, { value: 'x' })).statusCode, 200)
  const first = (await mb.api('GET', '/api/v1/audit?limit=2')).json()
  assert.deepEqual(first.items.map((e: Entry) => e.target), ['a.three', 'a.two'])
  const second = (await mb.api('GET', `/api/v1/audit?limit=2&cursor=${first.next_cursor}`)).json()
  assert.deepEqual([second.items.map((e: Entry) => e.target), second.next_cursor], [['a.one'], null])
  const reader = (await mb.api('POST', '/api/v1/api-tokens', { name: 'reader', scopes: ['mail:read', 'messages:read', 'mail:send'] })).json()
  const refused = await mb.app.inject({ url: '/api/v1/audit', headers: { authorization: `Bearer ${reader.token}` } })
  assert.equal(refused.statusCode, 403)
  assert.match(refused.json().error.message, /lacks the scope admin/)
})

test('audit: entries older than MAILBRIDGE_AUDIT_DAYS are not listed and are deleted', async (t) => {
  const mb = await start(t, { MAILBRIDGE_AUDIT_DAYS: '7' })
  const db = mb.services.database.db
  const at = (days: number) => new Date(Date.now() - days * 86_400_000).toISOString()
  for (const [days, target] of [[8, 'too old'], [6, 'kept']] as const) {
    await db.insertInto('audit_log').values({ id: newId(), at: at(days), actor_type: 'admin', actor: 'admin', actor_id: null, action: 'parameter.updated', target, detail: null, client: null }).execute()
  }
  assert.deepEqual((await auditLog(mb)).map((e) => e.target), ['kept'])
  assert.equal((await mb.api('PUT', '/api/v1/parameters/a.b', { value: 'x' })).statusCode, 200)
  assert.deepEqual((await db.selectFrom('audit_log').select('target').orderBy('id').execute()).map((r) => r.target), ['kept', 'a.b'])
})

test('audit: a finished Connect (the OAuth callback) is recorded for its server, by the consent link when no admin session came with it', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  assert.equal((await w.connect(server.id)).statusCode, 302)
  const log = await auditLog(w.mb)
  assert.deepEqual(log.slice(-2).map(brief), [
    ['api_token', 'tests', 'outgoing_server.connect', server.id],
    ['anonymous', 'consent link', 'outgoing_server.connected', server.id],
  ])
})
