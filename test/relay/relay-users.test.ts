import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Secret } from '../../src/crypto/secret.ts'
import { startMailbridge } from '../support/harness.ts'

const PASSWORD = 'correct horse battery staple'

test('relay users api: create → 201 without the password, list shows last use, delete → 204 then 404', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const created = await mb.api('POST', '/api/v1/relay-users', { username: 'printer@contoso.com', password: PASSWORD, allowed_from: ['Printer@Contoso.com', 'fabrikam.com'] })
  assert.equal(created.statusCode, 201)
  const user = created.json()
  assert.deepEqual(Object.keys(user).sort(), ['allowed_from', 'created_at', 'id', 'last_used_at', 'last_used_from', 'username'])
  assert.deepEqual(user.allowed_from, ['printer@contoso.com', 'fabrikam.com'])
  assert.equal(user.last_used_at, null)
  const row = await mb.services.database.db.selectFrom('relay_users').selectAll().executeTakeFirstOrThrow()
  assert.match(row.password_hash, /^scrypt:/)
  assert.ok(!JSON.stringify(row).includes(PASSWORD), 'only a hash is stored')

  assert.deepEqual(await mb.services.relayUsers.authenticate('printer@contoso.com', new Secret('wrong password!'), '10.0.0.7'), { refused: 'wrong' })
  assert.equal((await mb.services.relayUsers.authenticate('printer@contoso.com', new Secret(PASSWORD), '10.0.0.7')).user?.username, 'printer@contoso.com')
  const list = await mb.api('GET', '/api/v1/relay-users')
  assert.equal(list.statusCode, 200)
  assert.equal(list.json().items.length, 1)
  assert.equal(list.json().items[0].last_used_from, '10.0.0.7')
  assert.ok(Date.parse(list.json().items[0].last_used_at) > 0)
  assert.ok(!list.body.includes(PASSWORD) && !list.body.includes('scrypt'), 'neither the password nor its hash leaves the server')
  assert.ok(!mb.logs.join('').includes(PASSWORD), 'the password is never logged')

  assert.equal((await mb.api('DELETE', `/api/v1/relay-users/${user.id}`)).statusCode, 204)
  const gone = await mb.api('DELETE', `/api/v1/relay-users/${user.id}`)
  assert.equal(gone.statusCode, 404)
  assert.match(gone.json().error.message, /Relay user .* does not exist/)
  assert.deepEqual(await mb.services.relayUsers.authenticate('printer@contoso.com', new Secret(PASSWORD), '10.0.0.7'), { refused: 'wrong' }, 'a deleted user cannot log in')
})

test('relay users api: bad input gets a 4xx that names the field and says what to fix', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const post = (body: unknown) => mb.api('POST', '/api/v1/relay-users', body)
  const cases: Array<[unknown, number, string, RegExp]> = [
    [{ username: 'scanner', password: 'short' }, 400, 'password', /at least 10 characters/],
    [{ username: 'scanner' }, 400, 'password', /required/],
    [{ username: 'two words', password: PASSWORD }, 400, 'username', /spaces/],
    [{ username: 'scanner', password: PASSWORD, allowed_from: ['contoso.com', 'not an address'] }, 400, 'allowed_from[1]', /address .* or a domain/],
    [{ username: 'scanner', password: PASSWORD, admin: true }, 400, 'admin', /not a known field/],
    [{ username: 'scanner', password: 'line\r\nbreak in it' }, 400, 'password', /line breaks/],
  ]
  for (const [body, status, field, message] of cases) {
    const res = await post(body)
    assert.equal(res.statusCode, status, `${JSON.stringify(body)} → ${res.body}`)
    assert.equal(res.json().error.field, field)
    assert.match(res.json().error.message, message)
  }
  assert.equal((await post({ username: 'scanner', password: PASSWORD })).statusCode, 201)
  const twice = await post({ username: 'scanner', password: PASSWORD })
  assert.equal(twice.statusCode, 409)
  assert.equal(twice.json().error.field, 'username')
  const anonymous = await mb.app.inject({ method: 'GET', url: '/api/v1/relay-users' })
  assert.equal(anonymous.statusCode, 401)
})
