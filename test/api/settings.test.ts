import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startMailbridge } from '../support/harness.ts'

test('api: every /api/v1 route refuses a missing or wrong bearer token with a 401 JSON error', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  for (const headers of [{}, { authorization: 'Bearer nope-nope-nope-nope-nope' }, { authorization: 'Basic abc' }]) {
    const res = await mb.app.inject({ method: 'GET', url: '/api/v1/settings', headers })
    assert.equal(res.statusCode, 401)
    assert.equal(res.json().error.code, 'unauthorized')
  }
  assert.equal((await mb.api('GET', '/api/v1/settings')).statusCode, 200)
})

test('api tokens: stored hashed, never in clear in the database', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const rows = await mb.services.database.db.selectFrom('api_tokens').selectAll().execute()
  assert.equal(rows.length, 1)
  assert.notEqual(rows[0]!.token_hash, 'test-api-token-0123456789abcdef')
  assert.match(rows[0]!.token_hash, /^[0-9a-f]{64}$/)
})

test('settings: the client secret is write-only and sealed at rest', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const secret = 'Xy8Q~super.secret-value-from-azure'
  const res = await mb.api('PATCH', '/api/v1/settings', {
    external_email_servers: true,
    microsoft_outlook_client_id: '3fa85f64-5717-4562-b3fc-2c963f66afa6',
    microsoft_outlook_client_secret: secret,
    microsoft_outlook_client_secret_expires_at: '2028-11-27',
  })
  assert.equal(res.statusCode, 200)
  const body = res.json()
  assert.equal(body.microsoft_outlook_client_secret_set, true)
  assert.equal(body.external_email_servers, true)
  assert.equal(body.microsoft_outlook_client_secret_expires_at, '2028-11-27T00:00:00.000Z')
  assert.equal(body.redirect_uris.outlook, 'http://localhost:8080/microsoft_outlook/confirm')
  assert.ok(!res.body.includes(secret))
  const get = await mb.api('GET', '/api/v1/settings')
  assert.ok(!get.body.includes(secret))
  const stored = await mb.services.database.db.selectFrom('settings').selectAll().execute()
  assert.ok(stored.every((r) => !r.value.includes(secret)), 'the secret is not stored in clear')
  assert.equal((await mb.services.settings.secret('microsoft_outlook_client_secret'))?.reveal(), secret)
  assert.ok(!mb.logs.join('').includes(secret), 'the secret is never logged')
})

test('settings: bad input gets a 400 that names the field, and changes nothing', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const cases: Array<[unknown, string]> = [
    [{ microsoft_outlook_client_secret: 'line1\nline2' }, 'microsoft_outlook_client_secret'],
    [{ microsoft_outlook_client_secret_expires_at: 'soon' }, 'microsoft_outlook_client_secret_expires_at'],
    [{ external_email_servers: 'maybe' }, 'external_email_servers'],
    [{ unknown_field: 1 }, 'unknown_field'],
  ]
  for (const [body, field] of cases) {
    const res = await mb.api('PATCH', '/api/v1/settings', body)
    assert.equal(res.statusCode, 400, JSON.stringify(body))
    assert.equal(res.json().error.field, field)
    assert.ok(res.json().error.message.length > 10)
  }
  assert.equal((await mb.api('GET', '/api/v1/settings')).json().microsoft_outlook_client_secret_set, false)
})

test('parameters: defaults, put, list, delete, and checks for the known keys', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  assert.equal((await mb.api('GET', '/api/v1/parameters/microsoft_outlook.endpoint')).json().value, 'https://login.microsoftonline.com/common/oauth2/v2.0/')
  let res = await mb.api('PUT', '/api/v1/parameters/microsoft_outlook.endpoint', { value: 'https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0' })
  assert.equal(res.statusCode, 200)
  assert.equal(res.json().value, 'https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/', 'a trailing slash is added')
  res = await mb.api('PUT', '/api/v1/parameters/microsoft_outlook.endpoint', { value: 'http://insecure.example/' })
  assert.equal(res.statusCode, 400)
  res = await mb.api('PUT', '/api/v1/parameters/mail.force.smtp.from', { value: 'not an address' })
  assert.equal(res.statusCode, 400)
  assert.match(res.json().error.message, /mail\.force\.smtp\.from/)
  res = await mb.api('PUT', '/api/v1/parameters/mail.force.smtp.from', { value: 'alice@contoso.com' })
  assert.equal(res.statusCode, 200)
  const list = (await mb.api('GET', '/api/v1/parameters')).json()
  assert.deepEqual(list.items.map((i: { key: string }) => i.key), ['mail.force.smtp.from', 'microsoft_outlook.endpoint'])
  assert.equal(list.next_cursor, null)
  assert.equal((await mb.api('DELETE', '/api/v1/parameters/mail.force.smtp.from')).statusCode, 204)
  assert.equal((await mb.api('DELETE', '/api/v1/parameters/mail.force.smtp.from')).statusCode, 404)
  assert.equal((await mb.api('PUT', '/api/v1/parameters/bad%20key', { value: 'x' })).statusCode, 400)
})

test('healthz, openapi.json and docs answer without a token', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  assert.deepEqual((await mb.app.inject('/healthz')).json(), { status: 'ok' })
  const doc = (await mb.app.inject('/openapi.json')).json()
  assert.equal(doc.openapi, '3.1.0')
  assert.ok(doc.paths['/api/v1/outgoing-servers/{id}/connect'], 'routes are documented from their schemas')
  assert.ok(doc.paths['/api/v1/settings'].patch)
  const docs = await mb.app.inject('/docs/')
  assert.equal(docs.statusCode, 200)
})

test('api: unknown routes and malformed JSON get the error envelope', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const missing = await mb.api('GET', '/api/v1/nothing-here')
  assert.equal(missing.statusCode, 404)
  assert.equal(missing.json().error.code, 'not_found')
  const bad = await mb.app.inject({ method: 'PATCH', url: '/api/v1/settings', headers: { authorization: 'Bearer test-api-token-0123456789abcdef', 'content-type': 'application/json' }, payload: '{oops' })
  assert.equal(bad.statusCode, 400)
  assert.equal(bad.json().error.code, 'bad_request')
})
