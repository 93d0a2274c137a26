import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ALICE, startUiWorld } from '../support/ui-world.ts'

const RLO = '\u202E'

/**
 * Issue 21 item 11: a right-to-left override in a sender's text must not reorder the page around it, and an
 * attachment named `invoice<RLO>fdp.exe` (shown by a plain renderer as "invoiceexe.pdf") must show what it is.
 */
test('browser: untrusted text is isolated (<bdi>, unicode-bidi: isolate) and control characters in attachment names show as \\u202E', async (t) => {
  const w = await startUiWorld()
  t.after(w.close)
  const { db } = w.mb.services.database
  const server = await w.mb.api('POST', '/api/v1/incoming-servers', { name: 'Inbox', authentication: 'outlook', username: ALICE, host: '127.0.0.1', port: 993 })
  assert.equal(server.statusCode, 201, server.body)
  const at = new Date().toISOString()
  await db
    .insertInto('messages')
    .values({
      id: 'msg-bidi', server_id: server.json().id, folder: 'INBOX', uidvalidity: '1', uid: 1, message_id: '<bidi@fabrikam.com>', thread_id: 'msg-bidi',
      in_reply_to: null, references: '[]', in_reply_to_mail_id: null, from_addr: `Mallory ${RLO}moc.rekcah <mallory@fabrikam.com>`, to_addrs: JSON.stringify([ALICE]), cc_addrs: '[]',
      subject: `Your invoice ${RLO}fdp.exe`, date: at, text_body: 'see attached', html_body: null, size: 100, parse_error: null, received_at: at, seq: 1,
    })
    .execute()
  await db.insertInto('message_attachments').values({ id: 'att-bidi', message_id: 'msg-bidi', position: 0, filename: `invoice${RLO}fdp.exe`, content_type: 'application/octet-stream', size: 10 }).execute()
  await w.signIn()
  await w.page.goto(`${w.url}/admin/messages/msg-bidi`)
  const from = w.page.locator('tr', { hasText: 'From' }).locator('td bdi')
  assert.equal(await from.count(), 1, 'the sender is in a <bdi>')
  assert.equal(await from.evaluate((e) => getComputedStyle(e).unicodeBidi), 'isolate')
  assert.equal(await w.page.locator('h1 bdi').textContent(), `Your invoice ${RLO}fdp.exe`)
  const attachment = w.page.locator('tr', { hasText: 'Attachments' }).locator('td div')
  assert.match(await attachment.innerText(), /^invoice\\u202Efdp\.exe application\/octet-stream, 10 bytes$/)
  assert.equal(await attachment.locator('bdi').count(), 1)
})
