import assert from 'node:assert/strict'
import { test } from 'node:test'
import { hashPassword } from '../../src/crypto/passwords.ts'
import { ConfigError, loadConfig } from '../../src/config.ts'
import { LOGIN_FAILURES_ALLOWED } from '../../src/access/admin-sessions.ts'
import { signInForm } from '../support/admin-client.ts'
import { startMailbridge } from '../support/harness.ts'

const PROXY = '10.0.0.5'

test('trusted proxy: two clients behind it are throttled separately, and the log names the client, not the proxy', async (t) => {
  const mb = await startMailbridge({ env: { MAILBRIDGE_TRUST_PROXY: `${PROXY}, fd00::/8` } })
  t.after(mb.close)
  await mb.services.settings.set('admin_password_hash', await hashPassword('right-password'))
  for (let i = 0; i < LOGIN_FAILURES_ALLOWED; i++) {
    assert.equal((await signInForm(mb.app, { password: `wrong-${i}`, ip: PROXY, forwardedFor: '203.0.113.7' })).statusCode, 401)
  }
  assert.equal((await signInForm(mb.app, { password: 'right-password', ip: PROXY, forwardedFor: '203.0.113.7' })).statusCode, 429)
  assert.equal((await signInForm(mb.app, { password: 'right-password', ip: PROXY, forwardedFor: '198.51.100.2' })).statusCode, 303, 'the other admin behind the proxy still signs in')
  assert.ok(mb.logs.some((l) => l.includes('too many failed attempts') && l.includes('203.0.113.7')), 'the throttle log names the client')
  assert.ok(mb.logs.some((l) => l.includes('"remoteAddress":"198.51.100.2"')), 'the request log names the client')
})

test('untrusted peer: its X-Forwarded-For is ignored, so a new made-up address per attempt does not escape the throttle', async (t) => {
  for (const env of [{}, { MAILBRIDGE_TRUST_PROXY: PROXY }] as Array<Record<string, string>>) {
    const mb = await startMailbridge({ env })
    t.after(mb.close)
    await mb.services.settings.set('admin_password_hash', await hashPassword('right-password'))
    for (let i = 0; i < LOGIN_FAILURES_ALLOWED; i++) await signInForm(mb.app, { password: `wrong-${i}`, ip: '192.0.2.9', forwardedFor: `198.51.100.${i + 1}` })
    assert.equal((await signInForm(mb.app, { password: 'right-password', ip: '192.0.2.9', forwardedFor: '198.51.100.200' })).statusCode, 429, JSON.stringify(env))
  }
})

test('MAILBRIDGE_TRUST_PROXY: an entry that is not an address or range stops the start, naming it', () => {
  assert.throws(() => loadConfig({ MAILBRIDGE_TRUST_PROXY: '10.0.0.5, proxy.local' }), (e: Error) => e instanceof ConfigError && /MAILBRIDGE_TRUST_PROXY: "proxy\.local" is not an IP address or CIDR range/.test(e.message))
  assert.deepEqual(loadConfig({}).trustProxy, [])
})
