import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startMailbridge } from '../support/harness.ts'
import { ALICE, runQueue, startWorld } from '../support/world.ts'

type Line = { level: number; msg: string; reqId?: string; req?: { method: string; url: string; remoteAddress?: string }; status?: number; ms?: number; cause?: string }
const lines = (logs: string[]): Line[] => logs.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line)

test('logs: one line per HTTP request, with method, masked URL, status, time and client', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const before = mb.logs.length
  assert.equal((await mb.api('GET', '/api/v1/mail?limit=5')).statusCode, 200)
  await mb.app.inject({ url: '/microsoft_outlook/confirm?code=0.AXo-secret-code&state=s3cr3t-state' })
  const http = lines(mb.logs.slice(before)).filter((l) => l.reqId)
  assert.deepEqual(http.map((l) => l.msg), ['request', 'request'], 'no "incoming request" / "request completed" pair')
  const [api, callback] = http
  assert.deepEqual([api!.req!.method, api!.req!.url, api!.status, api!.req!.remoteAddress], ['GET', '/api/v1/mail?limit=5', 200, '127.0.0.1'])
  assert.equal(typeof api!.ms, 'number')
  assert.equal(callback!.req!.url, '/microsoft_outlook/confirm?code=[redacted]&state=[redacted]')
  assert.ok(!mb.logs.join('').includes('secret-code') && !mb.logs.join('').includes('s3cr3t-state'), 'the OAuth code and state are never logged')
})

test('logs: /healthz and /metrics answered well are logged at debug only; a failing one at info', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const before = mb.logs.length
  await mb.app.inject({ url: '/healthz' })
  await mb.app.inject({ url: '/metrics' })
  await mb.app.inject({ url: '/no-such-page' })
  const http = lines(mb.logs.slice(before)).filter((l) => l.msg === 'request')
  assert.deepEqual(http.map((l) => [l.req!.url, l.level]), [['/healthz', 20], ['/metrics', 20], ['/no-such-page', 30]])
})

test('logs: a mail waiting for a token logs its reason when the reason changes, not at every retry', async (t) => {
  const w = await startWorld({ env: { MAILBRIDGE_RETRY_BASE_S: '0' } })
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  const db = w.mb.services.database.db
  const retryNow = () => db.updateTable('mails').set({ next_attempt_at: new Date(Date.now() - 1000).toISOString() }).execute()
  const before = w.mb.logs.length
  w.ms.expireAccessTokens(ALICE)
  await db.updateTable('credentials').set({ access_expires_at: new Date(Date.now() + 60_000).toISOString() }).execute()
  w.ms.setTokenEndpoint({ status503: true })
  await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 's', text: 't' })
  for (let i = 0; i < 3; i++) {
    await runQueue(w)
    await retryNow()
  }
  w.ms.setTokenEndpoint({})
  w.ms.revokeUser(ALICE)
  for (let i = 0; i < 3; i++) {
    await runQueue(w)
    await retryNow()
  }
  const waits = lines(w.mb.logs.slice(before)).filter((l) => l.msg === 'mail waits for a valid token')
  assert.equal(waits.length, 6, 'every retry is still logged at debug')
  // Logged (warn) exactly when the reason differs from the previous one; the same reason again goes to debug.
  for (const [i, l] of waits.entries()) assert.equal(l.level >= 40, i === 0 || l.cause !== waits[i - 1]!.cause, JSON.stringify(waits.map((w) => [w.level, w.cause])))
  assert.match(waits[0]!.cause!, /AADSTS90033|transient/, 'the unreachable endpoint, first')
  assert.match(waits.at(-1)!.cause!, /AADSTS50173/, 'then the revoked consent')
  assert.equal(waits.at(-1)!.level, 20)
})
