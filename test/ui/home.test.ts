import assert from 'node:assert/strict'
import { test } from 'node:test'
import { adminClient } from '../support/admin-client.ts'
import { startMailbridge } from '../support/harness.ts'
import { ALICE, runQueue, startWorld } from '../support/world.ts'

const BOB = 'bob@contoso.com'

test('home: one row per mailbox with its servers together, the token and its Reconnect, a pause and its Resume, the counts and the chart', async (t) => {
  const w = await startWorld({
    env: { MAILBRIDGE_RETRY_BASE_S: '0' },
    smtp: { rejectRcpt: (a) => (a === 'ghost@fabrikam.com' ? { code: 550, message: '5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found' } : undefined) },
  })
  t.after(w.close)
  const admin = await adminClient(w.mb.app, w.mb.services)
  const { db } = w.mb.services.database
  const alice = await w.outgoingServer({ body: { name: 'Alice out' } })
  await w.connect(alice.id)
  const aliceIn = (await w.mb.api('POST', '/api/v1/incoming-servers', { name: 'Alice in', authentication: 'outlook', username: ALICE, host: '127.0.0.1', port: 993 })).json()
  const bob = await w.outgoingServer({ username: BOB, body: { name: 'Bob out' } })
  await w.connect(bob.id, { user: BOB })
  await w.mb.api('POST', '/api/v1/mail', { from: ALICE, to: ['carol@fabrikam.com'], subject: 'Sent one', text: 't' })
  await w.mb.api('POST', '/api/v1/mail', { from: ALICE, to: ['ghost@fabrikam.com'], subject: 'To a ghost', text: 't' })
  await runQueue(w)
  // Bob's mailbox loses its consent, and his server is paused (as an Exchange lock-out pauses it) with a mail waiting.
  w.ms.revokeUser(BOB)
  w.ms.expireAccessTokens(BOB)
  assert.equal((await w.mb.api('POST', `/api/v1/outgoing-servers/${bob.id}/test`)).json().ok, false)
  const until = new Date(Date.now() + 3_600_000).toISOString()
  await db.updateTable('outgoing_servers').set({ paused_until: until, pause_reason: '554 5.2.252 SendAsDenied; sending is paused' }).where('id', '=', bob.id).execute()
  const waiting = (await w.mb.api('POST', '/api/v1/mail', { from: BOB, to: ['carol@fabrikam.com'], subject: 'Held back', text: 't' })).json().id
  await db.updateTable('mails').set({ next_attempt_at: until }).where('id', '=', waiting).execute()
  await db.updateTable('incoming_servers').set({ sync_progress: '120 of 500 new messages stored' }).where('id', '=', aliceIn.id).execute()

  const home = await admin.get('/admin')
  assert.equal(home.statusCode, 200)
  const rows = home.body.split('<tr>').filter((r) => r.includes('data-label="Mailbox"'))
  assert.equal(rows.length, 2, 'one row per mailbox: Alice\'s outgoing and incoming servers share one')
  const aliceRow = rows.find((r) => r.includes('>alice@contoso.com<'))!
  const bobRow = rows.find((r) => r.includes('>bob@contoso.com<'))!
  assert.match(aliceRow, /Alice out<\/a> <span class="muted">\(outgoing\)<\/span>, <a href="\/admin\/incoming-servers\/[0-9a-f]+">Alice in<\/a>/)
  assert.match(aliceRow, /<span class="tag ok">Outlook Token Valid<\/span>/)
  assert.match(aliceRow, /Last sent <time datetime="[^"]+" title="[^"]+ UTC">just now<\/time>/)
  assert.match(aliceRow, /Last fetched <span class="muted">never<\/span>/)
  assert.match(aliceRow, /<progress id="sync-[0-9a-f]+" data-sync="[0-9a-f]+" max="500" value="120"/)
  assert.match(aliceRow, />1 failed</)
  assert.match(aliceRow, /data-label="Failures \(24 h\)" class="bad-text">1</)
  assert.match(bobRow, /data-label="Failures \(24 h\)">0</)
  assert.match(bobRow, /<span class="tag bad">Token (invalid|expired)<\/span><div class="reason">(<bdi>)?Outlook Token (Invalid|Expired): /)
  assert.match(bobRow, new RegExp(`action="/admin/outgoing-servers/${bob.id}/connect"`))
  assert.match(bobRow, /<span class="tag warn">Paused until [^<]+ UTC<\/span><div class="reason">554 5\.2\.252 SendAsDenied/)
  assert.match(bobRow, />1 waiting</)
  assert.match(home.body, /<figcaption id="all-caption"><strong>Last 24 hours, all mailboxes<\/strong>: 1 sent, 1 failed, 0 received<\/figcaption>/)
  assert.match(home.body, /<rect class="sent" [^>]+><title>\d\d:00 UTC: 1 sent<\/title><\/rect>/)

  assert.deepEqual((await admin.get('/admin/sync-progress')).json(), { servers: [{ id: aliceIn.id, done: 120, total: 500 }] })

  const reconnect = await admin.post(`/admin/outgoing-servers/${bob.id}/connect`)
  assert.equal(reconnect.statusCode, 303)
  assert.ok((reconnect.headers.location as string).startsWith(w.ms.endpoint() + 'authorize?'), 'Reconnect sends the browser to Microsoft')

  const forged = await w.mb.app.inject({ method: 'POST', url: `/admin/outgoing-servers/${bob.id}/resume`, headers: { cookie: admin.cookie, 'content-type': 'application/x-www-form-urlencoded' }, payload: '_csrf=nope' })
  assert.equal(forged.statusCode, 403)
  assert.equal((await w.mb.services.outgoingServers.get(bob.id)).paused_until, until, 'a forged Resume changes nothing')
  const resumed = await admin.post(`/admin/outgoing-servers/${bob.id}/resume`)
  assert.equal(resumed.headers.location, '/admin?done=resumed')
  assert.equal((await w.mb.services.outgoingServers.get(bob.id)).paused_until, null)
  assert.ok(Date.parse((await db.selectFrom('mails').select('next_attempt_at').where('id', '=', waiting).executeTakeFirstOrThrow()).next_attempt_at) <= Date.now(), 'the held-back mail is due now')
  assert.match((await admin.get('/admin?done=resumed')).body, /class="banner ok" role="status">Resumed/)
  const audit = await db.selectFrom('audit_log').selectAll().where('action', '=', 'outgoing_server.resume').execute()
  assert.deepEqual(audit.map((a) => [a.actor, a.target]), [['admin', bob.id]])

  const page = await admin.get(`/admin/mailboxes/${encodeURIComponent(ALICE)}`)
  assert.equal(page.statusCode, 200)
  assert.match(page.body, /<strong>Last 24 hours of alice@contoso\.com<\/strong>: 1 sent, 1 failed, 0 received/)
  assert.match(page.body, new RegExp(`href="/admin/mail\\?server=${alice.id}">Mail queue of Alice out`))
  assert.equal((await admin.get('/admin/mailboxes/nobody%40contoso.com')).statusCode, 404)
})

test('home: an empty install says the next step, first the credentials, then a server', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const admin = await adminClient(mb.app, mb.services)
  assert.match((await admin.get('/admin')).body, /Next step: open <a href="\/admin\/settings">General Settings<\/a>, tick <strong>External Email Servers<\/strong>/)
  await mb.services.settings.update({ external_email_servers: true, microsoft_outlook_client_id: '6731de76-14a6-49ae-97bc-6eba6914391e' })
  assert.match((await admin.get('/admin')).body, /Next step: <a href="\/admin\/outgoing-servers\/new">create an outgoing server<\/a>/)
})
