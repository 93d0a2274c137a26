import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startMailbridge } from '../support/harness.ts'

test('outgoing servers: an Outlook server gets Microsoft\'s host, port, STARTTLS, a from_filter and the 30/min limit', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const res = await mb.api('POST', '/api/v1/outgoing-servers', { name: 'Outlook', authentication: 'outlook', username: 'Alice@Contoso.com' })
  assert.equal(res.statusCode, 201)
  const s = res.json()
  assert.equal(s.host, 'smtp.office365.com')
  assert.equal(s.port, 587)
  assert.equal(s.encryption, 'starttls')
  assert.equal(s.from_filter, 'alice@contoso.com')
  assert.equal(s.max_per_minute, 30)
  assert.equal(s.token.status, 'missing')
  assert.equal(s.token.valid, false)
  assert.equal((await mb.api('GET', `/api/v1/outgoing-servers/${s.id}`)).json().name, 'Outlook')
  assert.equal((await mb.api('GET', '/api/v1/outgoing-servers')).json().items.length, 1)
})

test('outgoing servers: Outlook\'s rules refuse bad input with a 4xx that names the field', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ name: 'x', authentication: 'outlook' }, 'username'],
    [{ name: 'x', authentication: 'outlook', username: 'alice' }, 'username'],
    [{ name: 'x', authentication: 'outlook', username: 'alice@contoso.com', password: 'hunter2' }, 'password'],
    [{ name: 'x', authentication: 'outlook', username: 'alice@contoso.com', encryption: 'ssl' }, 'encryption'],
    [{ name: 'x', authentication: 'outlook', username: 'alice@contoso.com', from_filter: 'not a filter!' }, 'from_filter'],
    [{ name: '', authentication: 'outlook', username: 'alice@contoso.com' }, 'name'],
    [{ name: 'x', authentication: 'kerberos', username: 'alice@contoso.com' }, 'authentication'],
    [{ name: 'x', authentication: 'outlook', username: 'alice@contoso.com', port: 70000 }, 'port'],
    [{ name: 'x', authentication: 'login', host: 'smtp.example.com', username: 'alice@contoso.com' }, 'password'],
    [{ name: 'x', authentication: 'login', username: 'alice@contoso.com', password: 'p' }, 'host'],
    [{ name: 'x', authentication: 'outlook', username: 'alice@contoso.com', surprise: true }, 'surprise'],
  ]
  for (const [body, field] of cases) {
    const res = await mb.api('POST', '/api/v1/outgoing-servers', body)
    assert.equal(res.statusCode, 400, JSON.stringify(body))
    assert.equal(res.json().error.field, field, JSON.stringify(res.json()))
  }
  assert.equal((await mb.api('GET', '/api/v1/outgoing-servers')).json().items.length, 0, 'nothing was stored')
})

test('outgoing servers: patch keeps what is not given, delete removes, unknown ids are 404', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const s = (await mb.api('POST', '/api/v1/outgoing-servers', { name: 'A', authentication: 'outlook', username: 'alice@contoso.com', host: '127.0.0.1', port: 2525 })).json()
  const patched = await mb.api('PATCH', `/api/v1/outgoing-servers/${s.id}`, { name: 'B', sequence: 5 })
  assert.equal(patched.statusCode, 200)
  assert.equal(patched.json().name, 'B')
  assert.equal(patched.json().host, '127.0.0.1')
  assert.equal(patched.json().port, 2525)
  assert.equal(patched.json().sequence, 5)
  assert.equal((await mb.api('PATCH', `/api/v1/outgoing-servers/${s.id}`, { username: 'bob' })).statusCode, 400)
  assert.equal((await mb.api('DELETE', `/api/v1/outgoing-servers/${s.id}`)).statusCode, 204)
  const gone = await mb.api('GET', `/api/v1/outgoing-servers/${s.id}`)
  assert.equal(gone.statusCode, 404)
  assert.match(gone.json().error.message, /does not exist/)
})

test('outgoing servers: a password server keeps its password write-only and sealed', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const res = await mb.api('POST', '/api/v1/outgoing-servers', { name: 'Relay', authentication: 'login', host: 'smtp.example.com', port: 587, encryption: 'starttls', username: 'app', password: 'pa55-w0rd-xyz' })
  assert.equal(res.statusCode, 201)
  assert.equal(res.json().password_set, true)
  assert.ok(!res.body.includes('pa55-w0rd-xyz'))
  const row = await mb.services.database.db.selectFrom('outgoing_servers').select('password').executeTakeFirstOrThrow()
  assert.match(row.password!, /^v1:/)
})

test('connect: refused with a clear message while the Outlook Credentials are missing', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const s = (await mb.api('POST', '/api/v1/outgoing-servers', { name: 'A', authentication: 'outlook', username: 'alice@contoso.com' })).json()
  const res = await mb.api('POST', `/api/v1/outgoing-servers/${s.id}/connect`)
  assert.equal(res.statusCode, 409)
  assert.equal(res.json().error.code, 'credentials_missing')
  assert.match(res.json().error.message, /Outlook Credentials/)
})
