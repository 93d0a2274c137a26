import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import nodemailer from 'nodemailer'
import { hashPassword } from '../../src/crypto/passwords.ts'
import { startRelay } from '../../src/relay/server.ts'
import { AUTH_FAILURES_ALLOWED } from '../../src/relay/users.ts'
import { ALICE, startWorld } from '../support/world.ts'

const TLS = fileURLToPath(new URL('../support/tls/', import.meta.url))
const PASSWORD = 'relay-password-0123456789'

const auth = async (port: number, pass: string): Promise<{ responseCode?: number; response?: string }> => {
  const client = nodemailer.createTransport({ host: '127.0.0.1', port, requireTLS: true, tls: { servername: 'localhost' }, auth: { user: 'erp', pass } })
  try {
    await client.verify()
    return { responseCode: 235 }
  } catch (e) {
    return e as { responseCode?: number; response?: string }
  }
}

test('relay AUTH: after 10 failures from one address even the right password gets 454 4.7.0 for a while; the admin sign-in keeps its own count', async (t) => {
  const w = await startWorld({ env: { MAILBRIDGE_RELAY_TLS_CERT: join(TLS, 'cert.pem'), MAILBRIDGE_RELAY_TLS_KEY: join(TLS, 'key.pem') } })
  const relay = await startRelay(w.mb.services, { port: 0 })
  t.after(async () => {
    await relay.close()
    await w.close()
  })
  assert.equal((await w.mb.api('POST', '/api/v1/relay-users', { username: 'erp', password: PASSWORD, allowed_from: [ALICE] })).statusCode, 201)
  assert.equal((await auth(relay.port, PASSWORD)).responseCode, 235)
  for (let i = 0; i < AUTH_FAILURES_ALLOWED; i++) assert.equal((await auth(relay.port, `wrong-${i}`)).responseCode, 535, `failure ${i + 1}`)
  const limited = await auth(relay.port, PASSWORD)
  assert.equal(limited.responseCode, 454)
  assert.match(limited.response ?? '', /4\.7\.0 Too many failed AUTH attempts from .*127\.0\.0\.1: try again in 15 minutes/)

  await w.mb.services.settings.set('admin_password_hash', await hashPassword('admin-password-0123'))
  const admin = await w.mb.services.adminSessions.login('admin', 'admin-password-0123', '127.0.0.1')
  assert.equal(admin.ok, true, 'the relay failures do not lock the admin out')

  // The window passes (its failures age out): the right password works again and clears the count.
  await w.mb.services.database.db.updateTable('login_attempts').set({ window_started_at: new Date(Date.now() - 16 * 60_000).toISOString() }).execute()
  assert.equal((await auth(relay.port, PASSWORD)).responseCode, 235)
})
