/**
 * Contract tests of the Graph emulator: each follows the Microsoft page named in its title or first line, so the
 * emulator stays honest to Microsoft's documents (the short names are those in graph-emulator.ts).
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { OUTLOOK_SMTP_SEND, type Emulator } from './identity-emulator.ts'
import { startGraphWorld, MAX_REQUEST_BYTES, type GraphEmulator } from './graph-emulator.ts'

const ALICE = 'alice@contoso.example'
const BOB = 'bob@contoso.example'
const SEND = 'https://graph.microsoft.com/Mail.Send'
const RW = 'https://graph.microsoft.com/Mail.ReadWrite'
const TENANT = '9a8b7c6d-5e4f-4321-8765-0123456789ab'

interface World { id: Emulator; g: GraphEmulator; token: string }

async function world(t: TestContext): Promise<World> {
  const { id, g, close } = await startGraphWorld([ALICE, BOB])
  t.after(close)
  return { id, g, token: id.mintAccessToken({ user: ALICE, scope: `${SEND} ${RW}` }) }
}

async function call(g: GraphEmulator, path: string, o: { method?: string; token?: string; json?: unknown; mime?: Buffer | string; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...o.headers }
  if (o.token) headers.authorization = `Bearer ${o.token}`
  let body: string | undefined
  if (o.json !== undefined) {
    headers['content-type'] = 'application/json'
    body = JSON.stringify(o.json)
  } else if (o.mime !== undefined) {
    headers['content-type'] = 'text/plain'
    body = Buffer.from(o.mime).toString('base64')
  }
  const res = await fetch(path.startsWith('https://') ? path : `${g.url}/v1.0${path}`, { method: o.method ?? (body === undefined ? 'GET' : 'POST'), headers, body })
  const text = await res.text()
  let json: Record<string, any> = {}
  try {
    json = text ? JSON.parse(text) : {}
  } catch { /* $value answers MIME */ }
  return { status: res.status, headers: res.headers, json, text }
}

const mime = (o: { from?: string; to?: string; subject?: string; id?: string } = {}) =>
  `From: ${o.from ?? ALICE}\r\nTo: ${o.to ?? 'carol@fabrikam.example'}\r\nSubject: ${o.subject ?? 'Hello'}\r\nMessage-ID: <${o.id ?? randomBytes(6).toString('hex')}@contoso.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHi there.\r\n`

test('ERRORS + InvalidAuthenticationToken: no token, an unknown or expired one, and an Outlook-audience token get 401 in Graph\'s error shape', async (t) => {
  const { id, g } = await world(t)
  const noToken = await call(g, '/me/mailFolders/inbox', { headers: { 'client-request-id': 'c0ffee00-1111-2222-3333-444455556666' } })
  assert.equal(noToken.status, 401)
  assert.deepEqual(Object.keys(noToken.json.error).sort(), ['code', 'innerError', 'message'])
  assert.equal(noToken.json.error.code, 'InvalidAuthenticationToken')
  const inner = noToken.json.error.innerError
  assert.match(inner.date, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/)
  assert.match(inner['request-id'], /^[0-9a-f-]{36}$/)
  assert.equal(inner['client-request-id'], 'c0ffee00-1111-2222-3333-444455556666')
  assert.equal(noToken.headers.get('request-id'), inner['request-id'])
  assert.equal((await call(g, '/me/mailFolders/inbox', { token: 'nope' })).json.error.code, 'InvalidAuthenticationToken')
  const outlook = await call(g, '/me/sendMail', { token: id.mintAccessToken({ user: ALICE, scope: OUTLOOK_SMTP_SEND }), mime: mime() })
  assert.deepEqual([outlook.status, outlook.json.error.code, outlook.json.error.message], [401, 'InvalidAuthenticationToken', 'Access token validation failure. Invalid audience.'])
  const expired = id.mintAccessToken({ user: ALICE, scope: SEND, ttlSeconds: 60 })
  id.expireAccessTokens(ALICE)
  assert.match((await call(g, '/me/sendMail', { token: expired, mime: mime() })).json.error.message, /expired/)
  assert.equal(g.sent.length, 0)
})

test('PERMISSIONS: a Graph token without Mail.Send gets 403 ErrorAccessDenied on sendMail; another user\'s mailbox is refused too', async (t) => {
  const { id, g, token } = await world(t)
  const readOnly = id.mintAccessToken({ user: ALICE, scope: RW })
  const res = await call(g, '/me/sendMail', { token: readOnly, mime: mime() })
  assert.deepEqual([res.status, res.json.error.code], [403, 'ErrorAccessDenied'])
  assert.equal((await call(g, `/users/${BOB}/sendMail`, { token, mime: mime({ from: BOB }) })).json.error.code, 'ErrorAccessDenied')
  assert.equal((await call(g, `/users/${ALICE}/sendMail`, { token, mime: mime() })).status, 202)
})

test('SENDMAIL + MIME: base64 MIME with Content-Type text/plain → 202, Graph keeps the MIME as sent, a copy goes to Sent Items; bad base64 → 400', async (t) => {
  const { g, token } = await world(t)
  const raw = mime({ subject: 'MIME path', id: 'mime-1' })
  const res = await call(g, '/me/sendMail', { token, mime: raw })
  assert.equal(res.status, 202)
  assert.equal(res.text, '')
  assert.equal(g.sent.length, 1)
  assert.equal(g.sent[0]!.mime.toString(), raw)
  assert.deepEqual([g.sent[0]!.via, g.sent[0]!.recipients], ['mime', ['carol@fabrikam.example']])
  const [copy] = g.folderMessages(ALICE, 'sentitems')
  assert.equal(g.message(ALICE, copy!)?.mime.toString(), raw)
  const bad = await fetch(`${g.url}/v1.0/me/sendMail`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' }, body: 'not base64 at all!' })
  const err = (await bad.json()) as { error: { code: string; message: string } }
  assert.deepEqual([bad.status, err.error.code, err.error.message], [400, 'ErrorMimeContentInvalidBase64String', 'Invalid base64 string for MIME content.'])
})

test('SENDMAIL in JSON: the message resource is composed into MIME; saveToSentItems false keeps Sent Items empty', async (t) => {
  const { g, token } = await world(t)
  const res = await call(g, '/me/sendMail', {
    token,
    json: { message: { subject: 'JSON path', body: { contentType: 'Text', content: 'Lunch?' }, toRecipients: [{ emailAddress: { address: 'carol@fabrikam.example' } }], bccRecipients: [{ emailAddress: { address: 'dan@fabrikam.example' } }] }, saveToSentItems: false },
  })
  assert.equal(res.status, 202)
  assert.deepEqual(g.sent[0]!.recipients, ['carol@fabrikam.example', 'dan@fabrikam.example'])
  assert.match(g.sent[0]!.mime.toString(), /^Subject: JSON path$/m)
  assert.match(g.sent[0]!.mime.toString(), /^From: alice <alice@contoso\.example>$/m)
  assert.equal(g.folderMessages(ALICE, 'sentitems').length, 0)
})

test('request size (4 MB, 413) and Exchange\'s checks: ErrorInvalidRecipients, ErrorSendAsDenied for a From the user may not use', async (t) => {
  const { id, g, token } = await world(t)
  const big = `${mime()}${'x'.repeat(MAX_REQUEST_BYTES)}`
  const tooLarge = await call(g, '/me/sendMail', { token, mime: big })
  assert.equal(tooLarge.status, 413)
  const none = await call(g, '/me/sendMail', { token, mime: mime().replace(/^To: .*\r\n/m, '') })
  assert.deepEqual([none.status, none.json.error.code], [400, 'ErrorInvalidRecipients'])
  assert.match(none.json.error.message, /contains no recipients/)
  const bad = await call(g, '/me/sendMail', { token, mime: mime({ to: 'not-an-address' }) })
  assert.deepEqual([bad.status, bad.json.error.code], [400, 'ErrorInvalidRecipients'])
  const other = await call(g, '/me/sendMail', { token, mime: mime({ from: 'ceo@contoso.example' }) })
  assert.deepEqual([other.status, other.json.error.code], [403, 'ErrorSendAsDenied'])
  g.addMailbox('dora@contoso.example', { sendAs: ['sales@contoso.example'] })
  const dora = id.mintAccessToken({ user: 'dora@contoso.example', scope: SEND })
  assert.equal((await call(g, '/me/sendMail', { token: dora, mime: mime({ from: 'sales@contoso.example' }) })).status, 202)
  assert.equal(g.sent.length, 1)
})

test('CREATE + ATTACH + UPLOAD + LARGE + SEND: a draft from MIME gets a small attachment and a large one through an upload session, then goes out with both', async (t) => {
  const { g, token } = await world(t)
  const draft = await call(g, '/me/messages', { token, mime: mime({ subject: 'Big one', id: 'big-1' }) })
  assert.equal(draft.status, 201)
  assert.deepEqual([draft.json.isDraft, draft.json.subject, draft.json.internetMessageId], [true, 'Big one', '<big-1@contoso.example>'])
  const msgId = String(draft.json.id)
  assert.deepEqual(g.folderMessages(ALICE, 'drafts'), [msgId])
  const small = await call(g, `/me/messages/${msgId}/attachments`, { token, json: { '@odata.type': '#microsoft.graph.fileAttachment', name: 'note.txt', contentType: 'text/plain', contentBytes: Buffer.from('small').toString('base64') } })
  assert.equal(small.status, 201)

  const file = randomBytes(9 * 1024 * 1024 + 123)
  const session = await call(g, `/me/messages/${msgId}/attachments/createUploadSession`, { token, json: { AttachmentItem: { attachmentType: 'file', name: 'big.bin', size: file.length } } })
  assert.equal(session.status, 201)
  assert.deepEqual(session.json.nextExpectedRanges, ['0-'])
  const uploadUrl = String(session.json.uploadUrl)
  const put = (start: number, end: number, headers: Record<string, string> = {}) =>
    fetch(uploadUrl, { method: 'PUT', headers: { 'content-range': `bytes ${start}-${end}/${file.length}`, ...headers }, body: file.subarray(start, end + 1) })
  // "Don't specify an Authorization request header" (LARGE, step 2).
  assert.equal((await put(0, 1023, { authorization: `Bearer ${token}` })).status, 401)
  assert.equal((await put(1024, 2047)).status, 416, 'ranges go in order')
  assert.equal((await put(0, MAX_REQUEST_BYTES)).status, 413, 'at most 4 MB a PUT')
  const chunk = 3 * 1024 * 1024 + 768 * 1024 // 12 × 320 KiB
  for (let start = 0; start < file.length; start += chunk) {
    const end = Math.min(start + chunk, file.length) - 1
    const res = await put(start, end)
    if (end + 1 < file.length) {
      assert.equal(res.status, 200)
      assert.deepEqual(((await res.json()) as { nextExpectedRanges: string[] }).nextExpectedRanges, [String(end + 1)])
    } else {
      assert.equal(res.status, 201)
      assert.match(res.headers.get('location') ?? '', /attachments\('/)
    }
  }
  assert.equal((await call(g, `/me/messages/${msgId}/send`, { token, method: 'POST' })).status, 202)
  assert.equal(g.sent.length, 1)
  assert.equal(g.sent[0]!.via, 'draft')
  const out = g.sent[0]!.mime.toString('latin1')
  assert.match(out, /^Message-ID: <big-1@contoso\.example>$/m)
  assert.ok(out.includes(file.toString('base64').slice(0, 76)))
  assert.match(out, /filename="note\.txt"/)
  assert.deepEqual(g.folderMessages(ALICE, 'drafts'), [])
  assert.equal(g.folderMessages(ALICE, 'sentitems').length, 1)
})

test('DELTA: pages follow Prefer odata.maxpagesize with @odata.nextLink, the round ends with @odata.deltaLink, the next round has only the changes', async (t) => {
  const { g, token } = await world(t)
  const ids = [1, 2, 3, 4, 5].map((n) => g.deliver(ALICE, mime({ subject: `m${n}` })))
  const pages: Array<Record<string, any>> = []
  let link: string | undefined = `${g.url}/v1.0/me/mailFolders/inbox/messages/delta?$select=subject,isRead`
  while (link) {
    const res = await call(g, link, { token, headers: { prefer: 'odata.maxpagesize=2' } })
    assert.equal(res.status, 200)
    pages.push(res.json)
    link = res.json['@odata.nextLink']
  }
  assert.deepEqual(pages.map((p) => p.value.length), [2, 2, 1])
  assert.deepEqual(pages.flatMap((p) => p.value.map((v: { id: string }) => v.id)), ids)
  assert.deepEqual(Object.keys(pages[0]!.value[0]).sort(), ['@odata.etag', '@odata.type', 'id', 'isRead', 'subject'])
  const deltaLink = String(pages.at(-1)!['@odata.deltaLink'])
  assert.match(deltaLink, /\$deltatoken=/)

  const added = g.deliver(ALICE, mime({ subject: 'm6' }))
  assert.equal((await call(g, `/me/messages/${ids[0]}`, { token, method: 'PATCH', json: { isRead: true } })).json.isRead, true)
  g.remove(ALICE, ids[1]!)
  const next = await call(g, deltaLink, { token })
  assert.deepEqual(next.json.value.map((v: Record<string, unknown>) => [v.id, v.subject ?? null, v['@removed'] ?? null]), [
    [added, 'm6', null], [ids[0], 'm1', null], [ids[1], null, { reason: 'deleted' }],
  ])
  const nothing = await call(g, String(next.json['@odata.deltaLink']), { token })
  assert.deepEqual(nothing.json.value, [])
})

test('DELTA_OVERVIEW synchronization reset: an expired delta token answers 410 Gone (syncStateNotFound); a new round starts over', async (t) => {
  const { g, token } = await world(t)
  g.deliver(ALICE, mime())
  const first = await call(g, '/me/mailFolders/inbox/messages/delta', { token })
  g.expireDeltaTokens()
  const gone = await call(g, String(first.json['@odata.deltaLink']), { token })
  assert.deepEqual([gone.status, gone.json.error.code], [410, 'syncStateNotFound'])
  const again = await call(g, '/me/mailFolders/inbox/messages/delta', { token })
  assert.equal(again.json.value.length, 1)
})

test('VALUE + UPDATE: /messages/{id}/$value answers the MIME; PATCH {isRead: true} marks it read', async (t) => {
  const { g, token } = await world(t)
  const raw = mime({ subject: 'Raw' })
  const id = g.deliver(ALICE, raw)
  const value = await call(g, `/me/messages/${id}/$value`, { token })
  assert.deepEqual([value.status, value.text], [200, raw])
  const patched = await call(g, `/me/messages/${id}`, { token, method: 'PATCH', json: { isRead: true } })
  assert.deepEqual([patched.status, patched.json.isRead, g.message(ALICE, id)?.isRead], [200, true, true])
  assert.equal((await call(g, '/me/messages/AAMkAnothere/$value', { token })).json.error.code, 'ErrorItemNotFound')
})

test('FOLDERS: a folder found by displayName with $filter, its child folders, and well-known names such as inbox', async (t) => {
  const { g, token } = await world(t)
  const orders = g.addFolder(ALICE, "Orders 'EU'")
  const paid = g.addFolder(ALICE, 'Paid', orders)
  const inbox = await call(g, '/me/mailFolders/inbox', { token })
  assert.equal(inbox.json.displayName, 'Inbox')
  const found = await call(g, `/me/mailFolders?$filter=${encodeURIComponent("displayName eq 'Orders ''EU'''")}`, { token })
  assert.deepEqual(found.json.value.map((f: { id: string }) => f.id), [orders])
  const child = await call(g, `/me/mailFolders/${orders}/childFolders?$filter=${encodeURIComponent("displayName eq 'Paid'")}`, { token })
  assert.deepEqual(child.json.value.map((f: { id: string }) => f.id), [paid])
  assert.equal((await call(g, '/me/mailFolders/nosuch', { token })).status, 404)
})

test('THROTTLING: an injected 429 carries Retry-After; five requests at once on one mailbox get one 429 ApplicationThrottled', async (t) => {
  const { g, token } = await world(t)
  g.inject({ path: /\/sendMail$/, status: 429, retryAfter: 7 })
  const throttled = await call(g, '/me/sendMail', { token, mime: mime() })
  assert.deepEqual([throttled.status, throttled.headers.get('retry-after'), throttled.json.error.code], [429, '7', 'TooManyRequests'])
  assert.equal((await call(g, '/me/sendMail', { token, mime: mime() })).status, 202)

  g.inject({ path: /\/mailFolders\/inbox$/, delayMs: 300, times: 5 })
  const five = await Promise.all([1, 2, 3, 4, 5].map(() => call(g, '/me/mailFolders/inbox', { token })))
  const refused = five.filter((r) => r.status === 429)
  assert.equal(refused.length, 1)
  assert.equal(refused[0]!.json.error.code, 'ApplicationThrottled')
  assert.equal(refused[0]!.json.error.message, 'Application is over its MailboxConcurrency limit.')
  assert.equal(g.peakConcurrency(ALICE), 4)
})

test('app-only (client credentials, roles) and POLICY: /users/{id} works with Mail.Send, /me does not, and an application access policy limits the mailboxes', async (t) => {
  const { id, g } = await world(t)
  id.registerApp({ clientId: 'daemon', clientSecret: 's', redirectUris: [] })
  id.grantAppAccess({ clientId: 'daemon', tenant: TENANT, roles: ['Mail.Send', 'Mail.ReadWrite'] })
  const res = await fetch(new URL('token', id.endpoint(TENANT)), { method: 'POST', body: new URLSearchParams({ client_id: 'daemon', client_secret: 's', grant_type: 'client_credentials', scope: 'https://graph.microsoft.com/.default' }) })
  const app = String(((await res.json()) as { access_token: string }).access_token)
  assert.equal((await call(g, `/users/${BOB}/sendMail`, { token: app, mime: mime({ from: BOB }) })).status, 202)
  const me = await call(g, '/me/sendMail', { token: app, mime: mime() })
  assert.deepEqual([me.status, me.json.error.code], [400, 'BadRequest'])
  g.restrictApp('daemon', [ALICE])
  const blocked = await call(g, `/users/${BOB}/sendMail`, { token: app, mime: mime({ from: BOB }) })
  assert.deepEqual([blocked.status, blocked.json.error.code], [403, 'ErrorAccessDenied'])
  assert.match(blocked.json.error.message, /Access to OData is disabled/)
  assert.equal((await call(g, `/users/${ALICE}/sendMail`, { token: app, mime: mime() })).status, 202)
  assert.equal((await call(g, '/users/nobody@contoso.example/mailFolders/inbox', { token: app })).json.error.code, 'ErrorInvalidUser')
  id.grantAppAccess({ clientId: 'daemon', tenant: '11111111-2222-4333-8444-555555555555', roles: [] })
  const bare = await fetch(new URL('token', id.endpoint('11111111-2222-4333-8444-555555555555')), { method: 'POST', body: new URLSearchParams({ client_id: 'daemon', client_secret: 's', grant_type: 'client_credentials', scope: 'https://graph.microsoft.com/.default' }) })
  const noRoles = String(((await bare.json()) as { access_token: string }).access_token)
  assert.equal((await call(g, `/users/${ALICE}/sendMail`, { token: noRoles, mime: mime() })).json.error.code, 'ErrorAccessDenied')
})
