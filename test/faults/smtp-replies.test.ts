/**
 * Fault suite — what Exchange answers (issue 7 §1; research B7, B8). Transient replies (421, 432 4.3.2, 4.7.x)
 * back off and deliver in the end; permanent ones (5xx, the 5.2.25x lock-outs) fail or pause, and the number of
 * DATA commands the SMTP peer sees stays bounded: never a retry storm against a mailbox Exchange is throttling.
 * A connection cut mid-DATA, or after the data with the 250 lost, is retried; duplicates stay within what was cut.
 *
 * Already covered elsewhere: 451 4.7.500 retried then sent, a refused recipient (5.1.10) failed at once, a 5.2.252
 * lock-out pausing the server, 535 → one refresh (test/api/mail.test.ts); SIGKILL mid-batch and SIGTERM drain
 * (test/process/crash-and-drain.test.ts).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { SmtpReply } from '../support/smtp-peer.ts'
import { runQueue, startWorld, type World } from '../support/world.ts'

async function ready(env: Record<string, string> = {}) {
  const w = await startWorld({ env: { MAILBRIDGE_SERVER_PAUSE_S: '600', ...env } })
  const server = await w.outgoingServer()
  await w.connect(server.id)
  await w.mb.api('PATCH', `/api/v1/outgoing-servers/${server.id}`, { max_per_minute: null })
  return { w, server }
}

async function queue(w: World, n: number, extra: Record<string, unknown> = {}): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const res = await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: `m${i}`, text: 't', ...extra })
    assert.equal(res.statusCode, 202, res.body)
    ids.push(res.json().id)
  }
  return ids
}

type ApiMail = { id: string; state: string; attempts: number; next_attempt_at: string | null; failure_type: string | null; failure_reason: string | null; smtp_response: string | null }
const mail = async (w: World, id: string): Promise<ApiMail> => (await w.mb.api('GET', `/api/v1/mail/${id}`)).json()
const all = async (w: World): Promise<ApiMail[]> => (await w.mb.api('GET', '/api/v1/mail?limit=500')).json().items

/** The clock moves on: every mail waiting for its next attempt is due now. */
const timePasses = (w: World) => w.mb.services.database.db.updateTable('mails').set({ next_attempt_at: new Date().toISOString() }).where('state', '=', 'outgoing').execute()

const TRANSIENT: Array<[string, SmtpReply]> = [
  // RFC 5321 §3.8: the server closes the channel after 421 (the peer does).
  ['421 (closing the channel)', { code: 421, message: '4.3.2 Service not available, closing transmission channel' }],
  // Exchange's concurrency limit, answered to DATA (research B8).
  ['432 4.3.2', { code: 432, message: '4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded' }],
  // A documented Exchange Online transient 4.7.x.
  ['451 4.7.0', { code: 451, message: '4.7.0 Temporary server error. Please try again later. PRX4' }],
]

for (const [name, reply] of TRANSIENT) {
  test(`smtp ${name}: backoff — the attempt is recorded, the next one is later, and the mail is delivered in the end`, async (t) => {
    const { w } = await ready({ MAILBRIDGE_RETRY_BASE_S: '30' })
    t.after(w.close)
    w.smtp.behave({ dataReply: (n) => (n <= 2 ? reply : undefined) })
    const [id] = await queue(w, 1)
    for (let attempt = 1; attempt <= 2; attempt++) {
      const before = Date.now()
      await runQueue(w)
      const m = await mail(w, id!)
      assert.equal(m.state, 'outgoing')
      assert.equal(m.attempts, attempt)
      assert.equal(m.smtp_response, `${reply.code} ${reply.message}`)
      assert.match(m.failure_reason!, new RegExp(`${reply.code} ${reply.message.slice(0, 5).replace(/\./g, '\\.')}`))
      // 30 s × 2^(attempt−1) ± 20 %: not due before that.
      const wait = Date.parse(m.next_attempt_at!) - before
      assert.ok(wait >= 0.8 * 30_000 * 2 ** (attempt - 1) - 1000, `attempt ${attempt} waits (${wait} ms)`)
      assert.equal(await w.mb.services.mailWorker.tick(), 0, 'nothing is due before the backoff passes')
      await timePasses(w)
    }
    await runQueue(w)
    const sent = await mail(w, id!)
    assert.equal(sent.state, 'sent')
    assert.equal(sent.attempts, 3)
    assert.equal(w.smtp.dataCommands(), 3)
    assert.equal(w.smtp.messages.length, 1)
  })
}

test('smtp 432 4.3.2 on AUTH (other clients of the mailbox hold its connections): the refused mails back off, none fails, the server is not paused, all go out once connections free up', async (t) => {
  const { w, server } = await ready({ MAILBRIDGE_RETRY_BASE_S: '30' })
  t.after(w.close)
  // Exchange counts every client of the mailbox: only one more connection is allowed for Mailbridge's three.
  w.smtp.behave({ maxConnections: 1 })
  const ids = await queue(w, 12)
  await w.mb.services.mailWorker.tick()
  await w.mb.services.mailWorker.idle()
  assert.ok(w.smtp.authAttempts.some((a) => !a.ok), 'connections were refused with 432')
  const round = await all(w)
  const sent = round.filter((m) => m.state === 'sent')
  const waiting = round.filter((m) => m.state === 'outgoing')
  assert.ok(sent.length > 0, 'the connection that was accepted delivered')
  assert.equal(sent.length + waiting.length, ids.length, 'none failed')
  for (const m of waiting) {
    assert.equal(m.attempts, 1)
    assert.match(m.failure_reason!, /432 4\.3\.2/)
    assert.ok(Date.parse(m.next_attempt_at!) > Date.now(), 'the next attempt is later')
  }
  const s = (await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json()
  assert.equal(s.paused_until, null, '432 is a limit, not a lock-out')
  assert.equal(s.token.valid, true, '432 says nothing against the token')
  // The other clients disconnect; time passes.
  w.smtp.behave({ maxConnections: Number.POSITIVE_INFINITY })
  await timePasses(w)
  await runQueue(w)
  assert.deepEqual(new Set((await all(w)).map((m) => m.state)), new Set(['sent']))
  assert.equal(w.smtp.messages.length, ids.length)
})

test('smtp 554 5.2.0 SendAsDenied on every mail: each fails once (mail_from_invalid) and is never retried; the peer sees one DATA per mail', async (t) => {
  const { w } = await ready({ MAILBRIDGE_RETRY_BASE_S: '0' })
  t.after(w.close)
  w.smtp.behave({ dataReply: () => ({ code: 554, message: '5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception' }) })
  const ids = await queue(w, 10)
  await runQueue(w)
  await timePasses(w)
  await runQueue(w)
  for (const m of await all(w)) {
    assert.equal(m.state, 'exception')
    assert.equal(m.attempts, 1)
    assert.equal(m.failure_type, 'mail_from_invalid')
  }
  assert.equal(w.smtp.dataCommands(), ids.length, 'one DATA per mail, no retry')
})

test('smtp 550 5.2.255 lock-out on every mail: the server pauses; the peer sees at most one DATA per connection after the first lock-out, and nothing more while paused', async (t) => {
  const { w, server } = await ready({ MAILBRIDGE_RETRY_BASE_S: '0' })
  t.after(w.close)
  w.smtp.behave({ dataReply: () => ({ code: 550, message: '5.2.255 SmtpClientSubmission; Your mailbox has been throttled due to continuous invalid recipients errors' }) })
  const ids = await queue(w, 40)
  await runQueue(w)
  const seen = w.smtp.dataCommands()
  // Each of the (at most 3) connections may have had a message on the wire when the first lock-out came back.
  assert.ok(seen >= 1 && seen <= 3, `DATA commands after the lock-out stay within the connections (${seen})`)
  const s = (await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json()
  assert.ok(Date.parse(s.paused_until) > Date.now())
  assert.match(s.pause_reason, /5\.2\.255/)
  const mails = await all(w)
  assert.equal(mails.filter((m) => m.state === 'exception').length, seen, 'the mails Exchange refused fail, with their reason')
  const waiting = mails.filter((m) => m.state === 'outgoing')
  assert.equal(waiting.length, ids.length - seen, 'the rest wait for the pause, unattempted')
  assert.ok(waiting.every((m) => m.attempts === 0))
  // More passes while paused: nothing reaches Exchange.
  await timePasses(w)
  await runQueue(w)
  assert.equal(w.smtp.dataCommands(), seen)
})

test('connection reset mid-DATA: retried and delivered once each (nothing reached the server)', async (t) => {
  const { w } = await ready({ MAILBRIDGE_RETRY_BASE_S: '0' })
  t.after(w.close)
  // A large attachment, so the cut falls inside the message, after its first chunk.
  const attachment = { filename: 'big.bin', content_type: 'application/octet-stream', content_base64: Buffer.alloc(300_000, 7).toString('base64') }
  w.smtp.behave({ dropDuringData: (n) => n <= 3 })
  const ids = await queue(w, 6, { attachments: [attachment] })
  await runQueue(w)
  const mails = await all(w)
  assert.deepEqual(new Set(mails.map((m) => m.state)), new Set(['sent']))
  assert.equal(w.smtp.dataCommands(), ids.length + 3, 'three cut attempts, then one each')
  assert.equal(w.smtp.messages.length, ids.length)
  assert.equal(new Set(w.smtp.messages.map((m) => /^Message-ID: (.*)$/im.exec(m.raw.toString())?.[1])).size, ids.length)
})

test('connection cut after the data, the 250 lost: retried; the duplicates are exactly the cut replies, and keep the Message-ID', async (t) => {
  const { w } = await ready({ MAILBRIDGE_RETRY_BASE_S: '0' })
  t.after(w.close)
  w.smtp.behave({ dropBeforeReply: (n) => n === 2 || n === 5 })
  const ids = await queue(w, 8)
  await runQueue(w)
  assert.deepEqual(new Set((await all(w)).map((m) => m.state)), new Set(['sent']))
  const messageIds = w.smtp.messages.map((m) => /^Message-ID: (.*)$/im.exec(m.raw.toString())?.[1])
  assert.equal(new Set(messageIds).size, ids.length, 'every mail arrived')
  assert.equal(w.smtp.messages.length, ids.length + 2, 'one duplicate per lost reply, no more')
})

test('smtp 535 5.7.139 (SMTP AUTH disabled for the mailbox): the server pauses saying how to enable it; no refresh, the token stays valid, the mails wait and go out once it is enabled', async (t) => {
  const { w, server } = await ready()
  t.after(w.close)
  const announced: unknown[] = []
  w.mb.services.mailWorker.events.on('token.invalid', (e) => announced.push(e))
  w.smtp.behave({ authDisabled: true })
  const ids = await queue(w, 5)
  await runQueue(w)
  const s = (await w.mb.api('GET', `/api/v1/outgoing-servers/${server.id}`)).json()
  assert.ok(Date.parse(s.paused_until) > Date.now(), 'the server is paused')
  assert.match(s.pause_reason, /SMTP AUTH is disabled for alice@contoso\.com/)
  assert.match(s.pause_reason, /Set-CASMailbox -Identity alice@contoso\.com -SmtpClientAuthenticationDisabled \$false/)
  assert.match(s.pause_reason, /535 5\.7\.139/)
  assert.equal(s.token.valid, true, 'no red badge: the token is fine, SMTP AUTH is off')
  assert.equal(s.token.label, 'Outlook Token Valid')
  assert.deepEqual(announced, [], 'no token.invalid')
  assert.equal(w.ms.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length, 0, 'no refresh: no token cures 5.7.139')
  assert.ok(w.smtp.authAttempts.length <= 3, `at most one AUTH per connection before the pause, saw ${w.smtp.authAttempts.length}`)
  for (const m of await Promise.all(ids.map((id) => mail(w, id)))) {
    assert.equal(m.state, 'outgoing', 'the mails wait: none reached the mailbox')
    assert.equal(m.attempts, 0)
  }
  assert.equal(w.smtp.dataCommands(), 0)
  // The admin enables SMTP AUTH; once the pause is over the mails go out.
  w.smtp.behave({ authDisabled: false })
  await w.mb.services.database.db.updateTable('outgoing_servers').set({ paused_until: new Date(Date.now() - 1000).toISOString() }).execute()
  await timePasses(w)
  await runQueue(w)
  assert.deepEqual((await all(w)).map((m) => m.state), ids.map(() => 'sent'))
  assert.equal(w.smtp.messages.length, 5)
})
