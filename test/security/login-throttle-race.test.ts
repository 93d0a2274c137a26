import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import nodemailer from 'nodemailer'
import { LOGIN_FAILURES_ALLOWED } from '../../src/access/admin-sessions.ts'
import { hashPassword } from '../../src/crypto/passwords.ts'
import { startRelay } from '../../src/relay/server.ts'
import { AUTH_FAILURES_ALLOWED } from '../../src/relay/users.ts'
import { signInForm } from '../support/admin-client.ts'
import { startMailbridge } from '../support/harness.ts'
import { ALICE, startWorld } from '../support/world.ts'

const TLS = fileURLToPath(new URL('../support/tls/', import.meta.url))
const PARALLEL = 100

const count = (codes: number[]) => codes.reduce<Record<number, number>>((m, c) => ({ ...m, [c]: (m[c] ?? 0) + 1 }), {})

test('sign-in throttle: 100 wrong passwords at once from one address get at most the limit checked, the rest 429', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  await mb.services.settings.set('admin_password_hash', await hashPassword('right-password-0123'))
  const codes = await Promise.all(Array.from({ length: PARALLEL }, (_, i) => signInForm(mb.app, { password: `wrong-${i}`, ip: '203.0.113.9' }).then((r) => r.statusCode)))
  const by = count(codes)
  assert.equal((by[401] ?? 0) + (by[429] ?? 0), PARALLEL, JSON.stringify(by))
  assert.ok((by[401] ?? 0) <= LOGIN_FAILURES_ALLOWED, `${by[401]} passwords were checked; the limit is ${LOGIN_FAILURES_ALLOWED}`)
})

test('relay AUTH throttle: 100 wrong passwords at once from one address get at most the limit checked, the rest 454', async (t) => {
  const w = await startWorld({
    // Room for the 100 connections of one address: the per-address connection cap is not what this test is about.
    env: { MAILBRIDGE_RELAY_TLS_CERT: join(TLS, 'cert.pem'), MAILBRIDGE_RELAY_TLS_KEY: join(TLS, 'key.pem'), MAILBRIDGE_RELAY_MAX_CONNECTIONS_PER_ADDRESS: '200' },
  })
  const relay = await startRelay(w.mb.services, { port: 0 })
  t.after(async () => {
    await relay.close()
    await w.close()
  })
  assert.equal((await w.mb.api('POST', '/api/v1/relay-users', { username: 'erp', password: 'relay-password-0123456789', allowed_from: [ALICE] })).statusCode, 201)
  const codes = await Promise.all(
    Array.from({ length: PARALLEL }, async (_, i) => {
      const client = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port, requireTLS: true, tls: { servername: 'localhost' }, auth: { user: 'erp', pass: `wrong-${i}` } })
      try {
        await client.verify()
        return 235
      } catch (e) {
        return (e as { responseCode?: number }).responseCode ?? 0
      }
    }),
  )
  const by = count(codes)
  assert.equal((by[535] ?? 0) + (by[454] ?? 0), PARALLEL, JSON.stringify(by))
  assert.ok((by[535] ?? 0) <= AUTH_FAILURES_ALLOWED, `${by[535]} passwords were checked; the limit is ${AUTH_FAILURES_ALLOWED}`)
})
