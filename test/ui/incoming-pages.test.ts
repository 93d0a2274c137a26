import assert from 'node:assert/strict'
import { test } from 'node:test'
import { dovecotAvailable } from '../support/dovecot.ts'
import { adminClient } from '../support/admin-client.ts'
import { startMailroom } from '../support/mailroom.ts'
import { ALICE } from '../support/world.ts'

const rfc822 = (subject: string, messageId: string, inReplyTo?: string) =>
  [`From: Bob <bob@fabrikam.com>`, `To: ${ALICE}`, `Subject: ${subject}`, `Message-ID: ${messageId}`, ...(inReplyTo ? [`In-Reply-To: ${inReplyTo}`] : []), 'Date: Fri, 27 Nov 2026 10:00:00 +0000', '', `Body of ${subject}`, ''].join('\r\n')

test('incoming pages: the settings link appears, a server is created, connected, tested & confirmed, fetched; messages show by thread', { skip: !dovecotAvailable() && 'Dovecot is not installed' }, async (t) => {
  const room = await startMailroom()
  t.after(room.close)
  const admin = await adminClient(room.mb.app, room.mb.services)
  assert.match((await admin.get('/admin/settings')).body, /<a href="\/admin\/incoming-servers">Incoming Email Servers<\/a>/)
  const created = await admin.post('/admin/incoming-servers', { name: 'Support inbox', username: ALICE, host: room.dovecot.host, port: String(room.dovecot.imapsPort), encryption: 'ssl', folder: '', poll_interval_s: '', mark_seen: '1', then: 'save' })
  assert.equal(created.statusCode, 303)
  const url = created.headers.location as string
  assert.match(url, /^\/admin\/incoming-servers\/[0-9a-f]+\?saved=1$/)
  const id = url.split('/').pop()!.split('?')[0]!
  const page = await admin.get(url)
  assert.match(page.body, /Connect your Outlook account/)
  assert.match(page.body, /Not Confirmed/)
  // Connect from the UI: the form saves and sends the browser to Microsoft; the callback lands back on this page.
  const connect = await admin.post(`/admin/incoming-servers/${id}`, { name: 'Support inbox', username: ALICE, host: room.dovecot.host, port: String(room.dovecot.imapsPort), encryption: 'ssl', mark_seen: '1', then: 'connect' })
  assert.equal(connect.statusCode, 303)
  const back = await room.ms.consent(connect.headers.location as string, { user: ALICE })
  const confirm = await room.mb.app.inject({ url: back.pathname + back.search, headers: { cookie: admin.cookie } })
  assert.equal(confirm.headers.location, `/admin/incoming-servers/${id}?connected=1`)
  assert.match((await admin.get(confirm.headers.location as string)).body, /Outlook Token Valid/)
  const tested = await admin.post(`/admin/incoming-servers/${id}/test`)
  assert.match(tested.body, /Confirmed/)
  assert.doesNotMatch(tested.body, /Not Confirmed/)
  await room.dovecot.seed(ALICE, rfc822('Order 42', '<order-42@fabrikam.com>'))
  await room.dovecot.seed(ALICE, rfc822('Re: Order 42', '<order-42-re@fabrikam.com>', '<order-42@fabrikam.com>'))
  const fetched = await admin.post(`/admin/incoming-servers/${id}/fetch`)
  assert.match(fetched.body, /Fetch Now: 2 fetched, 2 stored, 0 duplicates, 0 failed/)
  const list = await admin.get('/admin/messages')
  assert.match(list.body, /Order 42 <span class="muted">2 messages<\/span>/, 'the reply is in the same thread')
  const [first] = (await room.mb.services.messages.list({})).items
  const one = await admin.get(`/admin/messages/${first!.id}`)
  assert.match(one.body, /Body of Order 42/)
  assert.match(one.body, /&lt;order-42@fabrikam\.com&gt;/)
  assert.match((await admin.get('/admin/incoming-servers')).body, /Support inbox/)
})
