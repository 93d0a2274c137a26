import assert from 'node:assert/strict'
import { Secret } from '../../src/crypto/secret.ts'
import { test } from 'node:test'
import { adminClient } from '../support/admin-client.ts'
import { startMailbridge } from '../support/harness.ts'

test('relay users page: create with allowed senders, show the last use, refuse a short password beside its field, delete', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const admin = await adminClient(mb.app, mb.services)
  const created = await admin.post('/admin/relay-users', { username: 'scanner@contoso.com', password: 'long-enough-password', allowed_from: 'scanner@contoso.com, fabrikam.com' })
  assert.equal(created.statusCode, 303)
  assert.equal(created.headers.location, '/admin/relay-users?done=created')
  await mb.services.relayUsers.authenticate('scanner@contoso.com', new Secret('long-enough-password'), '192.0.2.10')
  const list = await admin.get('/admin/relay-users?done=created')
  assert.match(list.body, /Relay user created/)
  assert.match(list.body, /<code>scanner@contoso\.com<\/code>/)
  assert.match(list.body, /scanner@contoso\.com, fabrikam\.com/)
  assert.match(list.body, /from 192\.0\.2\.10/, 'the last use shows where it came from')
  assert.ok(!list.body.includes('long-enough-password'), 'the password is never shown')
  const bad = await admin.post('/admin/relay-users', { username: 'printer', password: 'short', allowed_from: '' })
  assert.equal(bad.statusCode, 400)
  assert.match(bad.body, /id="f-password-error">The password must have at least 10 characters/)
  assert.match(bad.body, /value="printer"/, 'the form keeps the username')
  const badSender = await admin.post('/admin/relay-users', { username: 'printer', password: 'long-enough-password', allowed_from: 'not a sender' })
  assert.match(badSender.body, /id="f-allowed_from-error">/)
  const [user] = await mb.services.relayUsers.list()
  assert.equal((await admin.post(`/admin/relay-users/${user!.id}/delete`)).statusCode, 303)
  assert.deepEqual(await mb.services.relayUsers.list(), [])
  assert.equal((await admin.post(`/admin/relay-users/${user!.id}/delete`)).statusCode, 404)
})
