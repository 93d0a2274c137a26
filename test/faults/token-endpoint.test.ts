/**
 * Fault suite — the token endpoint (issue 7 §1). Down for a long time, answering 503, or too slow: mails wait in
 * the queue, none becomes `exception`, and all go out once the endpoint is back. Time is made short with the
 * configuration (retry base 0, a 1 s token timeout, no token wait), not by waiting.
 *
 * Already covered elsewhere: the credential records a failed refresh and retries on the next call
 * (test/api/token-refresh.test.ts); a dead grant (AADSTS50173) keeps mails queued until Reconnect (test/api/mail.test.ts).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { subscribe } from '../support/webhook-receiver.ts'
import { runQueue, startWorld, type World } from '../support/world.ts'

const ENV = {
  MAILBRIDGE_RETRY_BASE_S: '0',
  MAILBRIDGE_RETRY_MAX_S: '0',
  // A budget the outage alone would use up many times over: an unreachable endpoint must not spend it.
  MAILBRIDGE_RETRY_MAX_ATTEMPTS: '3',
  // Mails of a dead token fail after this; an unreachable endpoint is not a dead token.
  MAILBRIDGE_TOKEN_WAIT_S: '0',
  MAILBRIDGE_TOKEN_TIMEOUT_S: '1',
}

async function ready() {
  const w = await startWorld({ env: ENV })
  const server = await w.outgoingServer()
  await w.connect(server.id)
  return { w, server }
}

/** The stored access token is inside the refresh margin: the next send needs the token endpoint. */
const needRefresh = (w: World) =>
  w.mb.services.database.db.updateTable('credentials').set({ access_expires_at: new Date(Date.now() + 60_000).toISOString() }).execute()

const refreshes = (w: World) => w.ms.tokenRequests.filter((r) => r.grant_type === 'refresh_token')

async function queue(w: World, n: number): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const res = await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: `wait ${i}`, text: 't' })
    assert.equal(res.statusCode, 202)
    ids.push(res.json().id)
  }
  return ids
}

const mails = async (w: World) => (await w.mb.api('GET', '/api/v1/mail?limit=500')).json().items as Array<{ id: string; state: string; attempts: number; failure_reason: string | null }>

/** Worker passes until `done()` holds; every pass is a real claim, refresh attempt and outcome. */
async function passesUntil(w: World, done: () => boolean, max = 200): Promise<number> {
  const worker = w.mb.services.mailWorker
  for (let i = 1; i <= max; i++) {
    await worker.tick()
    await worker.idle()
    if (done()) return i
  }
  throw new Error(`condition not reached after ${max} worker passes`)
}

test('token endpoint down, then 503, for many retry rounds: mails wait (none fails), then all go out with one refresh', async (t) => {
  const { w, server } = await ready()
  t.after(w.close)
  const ids = await queue(w, 5)
  await needRefresh(w)

  // The connection is cut (what an unreachable login.microsoftonline.com looks like), then Microsoft answers
  // 503 AADSTS90033 temporarily_unavailable: each for far more rounds than the retry budget allows.
  const app = await subscribe(w.mb, ['token.invalid', 'mail.sent'])
  t.after(app.close)
  w.ms.setTokenEndpoint({ down: true })
  await passesUntil(w, () => refreshes(w).filter((r) => r.error === 'down').length >= 10)
  w.ms.setTokenEndpoint({ status503: true })
  await passesUntil(w, () => refreshes(w).filter((r) => r.error === 'temporarily_unavailable').length >= 10)

  for (const m of await mails(w)) {
    assert.equal(m.state, 'outgoing', `mail ${m.id} waits`)
    assert.match(m.failure_reason ?? '', /token endpoint|temporary|transient/i, 'the reason names the token endpoint')
  }
  assert.equal(w.smtp.messages.length, 0)
  assert.ok(w.mb.logs.some((l) => l.includes('mail waits for a valid token')))
  // Nobody has to Reconnect: the tag stays green (with the cause beside it) and token.invalid is not announced.
  const during = (await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json().token
  assert.equal(during.valid, true, during.label)
  assert.match(during.label, /^Outlook Token Valid \(the last refresh could not reach Outlook/)
  assert.match(during.last_error, /AADSTS90033|temporarily/)
  await app.deliver()
  assert.deepEqual(app.data('token.invalid'), [], 'no token.invalid reaches the application')

  w.ms.setTokenEndpoint({})
  // The first SMTP answer after the outage is a 451: the mail still has its whole retry budget for it.
  let data = 0
  w.smtp.behave({ dataReply: () => (++data === 1 ? { code: 451, message: '4.7.500 Server busy. Please try again later.' } : undefined) })
  await runQueue(w)
  const after = await mails(w)
  assert.deepEqual(after.map((m) => m.state), ['sent', 'sent', 'sent', 'sent', 'sent'])
  assert.equal(w.smtp.messages.length, ids.length)
  assert.equal(refreshes(w).filter((r) => !r.error).length, 1, 'one refresh once the endpoint is back')
  assert.equal((await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json().token.valid, true)
  // The same subscription hears the mails go out, and still no token.invalid: its silence above was not deafness.
  await app.deliver()
  assert.equal(app.data('mail.sent').length, ids.length)
  assert.deepEqual(app.data('token.invalid'), [])
})

test('token endpoint slower than MAILBRIDGE_TOKEN_TIMEOUT_S: the request is cut, the cause named, the worker free; the mail goes out later', { timeout: 60_000 }, async (t) => {
  const { w } = await ready()
  t.after(w.close)
  const [id] = await queue(w, 1)
  await needRefresh(w)
  w.ms.setTokenEndpoint({ delayMs: 5000 })
  // One pass ends (idle() resolves) although the endpoint has not answered: the request was timed out.
  await w.mb.services.mailWorker.tick()
  await w.mb.services.mailWorker.idle()
  const waiting = (await w.mb.api('GET', `/api/v1/mail/${id}`)).json()
  assert.equal(waiting.state, 'outgoing')
  assert.match(waiting.failure_reason, /token endpoint 127\.0\.0\.1:\d+ did not answer within 1 s/)
  assert.ok(w.mb.logs.some((l) => l.includes('token refresh failed') && l.includes('did not answer within 1 s')), 'the log names the cause')
  const server = (await w.mb.api('GET', '/api/v1/outgoing-servers')).json().items[0]
  assert.match(server.token.last_error, /did not answer within 1 s/)

  w.ms.setTokenEndpoint({})
  await runQueue(w)
  assert.equal((await w.mb.api('GET', `/api/v1/mail/${id}`)).json().state, 'sent')
  assert.equal(w.smtp.messages.length, 1)
})
