import assert from 'node:assert/strict'
import { test } from 'node:test'
import { adminClient } from '../support/admin-client.ts'
import { ALICE, runQueue, startWorld } from '../support/world.ts'

const BOB = 'bob@contoso.com'

test('mail queue: filters by state, server and text page by page; a mail\'s page has its addresses, headers, every attempt with the reply, and Retry back to it', async (t) => {
  const w = await startWorld({
    env: { MAILBRIDGE_RETRY_BASE_S: '0', MAILBRIDGE_RETRY_MAX_ATTEMPTS: '2' },
    smtp: { rejectRcpt: (a) => (a === 'busy@fabrikam.com' ? { code: 451, message: '4.3.2 Try again later' } : undefined) },
  })
  t.after(w.close)
  const admin = await adminClient(w.mb.app, w.mb.services)
  const alice = await w.outgoingServer({ body: { name: 'Alice out' } })
  await w.connect(alice.id)
  const bob = await w.outgoingServer({ username: BOB, body: { name: 'Bob out' } })
  await w.connect(bob.id, { user: BOB })
  const post = async (from: string, to: string, subject: string, extra = {}) => (await w.mb.api('POST', '/api/v1/mail', { from, to: [to], subject, text: 't', ...extra })).json().id as string
  for (let i = 0; i < 55; i++) await post(ALICE, `reader${i}@fabrikam.com`, `Newsletter ${i}`)
  const invoice = await post(BOB, 'billing@fabrikam.com', 'Invoice 100%_done', { headers: { 'X-Order': 'A-42' }, attachments: [{ filename: 'invoice.pdf', content_type: 'application/pdf', content_base64: Buffer.from('%PDF-1.4 tiny').toString('base64') }] })
  const busy = await post(BOB, 'busy@fabrikam.com', 'Try later', {})
  await runQueue(w)

  const all = await admin.get('/admin/mail')
  assert.equal((all.body.match(/<tr><td data-label="Queued"/g) ?? []).length, 50, 'a page holds 50 mails')
  const older = /href="(\/admin\/mail\?cursor=[0-9a-f]+)">Older mails/.exec(all.body)?.[1]
  assert.ok(older)
  const second = await admin.get(older.replace(/&amp;/g, '&'))
  assert.equal((second.body.match(/<tr><td data-label="Queued"/g) ?? []).length, 7)
  assert.match(second.body, />Newest mails</)

  const byServer = await admin.get(`/admin/mail?server=${bob.id}`)
  assert.equal((byServer.body.match(/<tr><td data-label="Queued"/g) ?? []).length, 2)
  assert.match(byServer.body, new RegExp(`<option value="${bob.id}" selected>Bob out \\(bob@contoso\\.com\\)</option>`))
  // The text is taken literally: % and _ are not wildcards, and case does not matter.
  const byText = await admin.get(`/admin/mail?q=${encodeURIComponent('100%_DONE')}`)
  assert.equal((byText.body.match(/<tr><td data-label="Queued"/g) ?? []).length, 1)
  assert.match(byText.body, /Invoice 100%_done/)
  assert.equal(((await admin.get('/admin/mail?q=%25')).body.match(/<tr><td data-label="Queued"/g) ?? []).length, 1, 'a % finds only the subject that has one')
  assert.match((await admin.get('/admin/mail?q=reader5%40fabrikam')).body, /Newsletter 5</, 'a recipient is found too')
  assert.match((await admin.get(`/admin/mail?state=exception&server=${bob.id}`)).body, /Try later/)
  assert.equal((await admin.get('/admin/mail?cursor=not-hex')).statusCode, 400)

  const page = await admin.get(`/admin/mail/${invoice}`)
  assert.equal(page.statusCode, 200)
  assert.match(page.body, /<th scope="row">From<\/th><td>bob@contoso\.com<\/td>/)
  assert.match(page.body, /<th scope="row">To<\/th><td>billing@fabrikam\.com<\/td>/)
  assert.match(page.body, /<th scope="row">X-Order<\/th><td><span class="mono">A-42<\/span>/)
  assert.match(page.body, /invoice\.pdf <span class="muted">application\/pdf, 13 bytes<\/span>/)
  assert.match(page.body, /<span class="tag ok">Sent<\/span><\/td><td data-label="The server's reply" class="mono">250 /)

  const failed = await admin.get(`/admin/mail/${busy}`)
  assert.equal((failed.body.match(/<td data-label="Outcome">/g) ?? []).length, 2, 'every attempt, each with its reply')
  assert.match(failed.body, /<span class="tag warn">Retried later<\/span><\/td><td data-label="The server's reply" class="mono">451 4\.3\.2 Try again later/)
  assert.match(failed.body, /<span class="tag bad">Failed<\/span>/)
  const retried = await admin.post(`/admin/mail/${busy}/retry`, { back: 'mail' })
  assert.equal(retried.headers.location, `/admin/mail/${busy}?done=retried`)
  assert.match((await admin.get(retried.headers.location as string)).body, /class="banner ok" role="status">The mail is queued again/)
  assert.equal((await admin.get('/admin/mail/0123456789abcdef')).statusCode, 404)
})
