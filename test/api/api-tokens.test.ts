import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { hashToken } from '../../src/crypto/passwords.ts'
import { newId, now } from '../../src/db/index.ts'
import { textCells } from '../support/db-scan.ts'
import { startMailbridge, type Harness } from '../support/harness.ts'

type Method = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE'

async function start(t: TestContext): Promise<Harness> {
  const mb = await startMailbridge()
  t.after(mb.close)
  return mb
}

/** A request with another token than the harness's. */
const as = (mb: Harness, token: string, method: Method, url: string, body?: unknown) =>
  mb.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    payload: body === undefined ? undefined : JSON.stringify(body),
  })

async function createToken(mb: Harness, body: Record<string, unknown>): Promise<{ id: string; token: string; [k: string]: unknown }> {
  const r = await mb.api('POST', '/api/v1/api-tokens', body)
  assert.equal(r.statusCode, 201, r.body)
  return r.json()
}

const outgoing = async (mb: Harness, name: string, address: string): Promise<string> => {
  const r = await mb.api('POST', '/api/v1/outgoing-servers', { name, authentication: 'none', host: '127.0.0.1', port: 2525, encryption: 'none', username: address, from_filter: address })
  assert.equal(r.statusCode, 201, r.body)
  return r.json().id
}

const incoming = async (mb: Harness, name: string, address: string): Promise<string> => {
  const r = await mb.api('POST', '/api/v1/incoming-servers', { name, username: address })
  assert.equal(r.statusCode, 201, r.body)
  return r.json().id
}

let seq = 0
/** A fetched message of an incoming server, as the fetcher stores it (raw form and parsed row). */
async function storedMessage(mb: Harness, serverId: string): Promise<string> {
  const id = newId()
  const db = mb.services.database.db
  seq += 1
  await db.insertInto('messages').values({ id, server_id: serverId, folder: 'INBOX', uidvalidity: '1', uid: seq, message_id: `<${id}@contoso.com>`, thread_id: `<${id}@contoso.com>`, in_reply_to: null, references: '[]', in_reply_to_mail_id: null, from_addr: 'bob@fabrikam.com', to_addrs: '[]', cc_addrs: '[]', subject: `Message ${seq}`, date: null, text_body: 'Hello', html_body: null, size: 5, parse_error: null, received_at: now(), seq }).execute()
  await db.insertInto('message_raws').values({ message_id: id, raw: Buffer.from(`Subject: Message ${seq}\r\n\r\nHello\r\n`) }).execute()
  return id
}

test('api tokens: POST shows the token once; GET lists it without the token; the database holds its hash only; the log never has it', async (t) => {
  const mb = await start(t)
  const created = await createToken(mb, { name: 'billing', scopes: ['mail:send', 'mail:read'] })
  assert.match(created.token, /^mb_[\w-]{40}$/)
  assert.deepEqual(Object.keys(created).sort(), ['created_at', 'id', 'last_used_at', 'name', 'scopes', 'server_ids', 'token'])
  assert.deepEqual([created.name, created.scopes, created.server_ids, created.last_used_at], ['billing', ['mail:send', 'mail:read'], null, null])
  assert.equal((await as(mb, created.token, 'GET', '/api/v1/mail')).statusCode, 200)

  const list = await mb.api('GET', '/api/v1/api-tokens')
  assert.equal(list.statusCode, 200)
  const billing = list.json().items.find((i: { id: string }) => i.id === created.id)
  assert.deepEqual(Object.keys(billing).sort(), ['created_at', 'id', 'last_used_at', 'name', 'scopes', 'server_ids'])
  assert.ok(billing.last_used_at, 'its use is recorded')
  assert.deepEqual(list.json().items.map((i: { name: string }) => i.name), ['tests', 'billing'])
  assert.ok(!list.body.includes(created.token) && !list.body.includes(hashToken(created.token)))

  const cells = await textCells(mb.services.database)
  assert.deepEqual(cells.filter((c) => c.value.includes(created.token)), [], 'never stored in clear')
  assert.ok(cells.some((c) => c.table === 'api_tokens' && c.column === 'token_hash' && c.value === hashToken(created.token)))
  assert.ok(!mb.logs.join('').includes(created.token), 'never logged')
})

test('api tokens: bad input is refused saying what to fix', async (t) => {
  const mb = await start(t)
  const inbox = await incoming(mb, 'Inbox', 'alice@contoso.com')
  const cases: Array<[unknown, number, RegExp]> = [
    [{ name: 'x', scopes: [] }, 400, /scopes/],
    [{ name: 'x', scopes: ['mail:write'] }, 400, /scopes/],
    [{ name: '  ', scopes: ['mail:send'] }, 400, /name/],
    [{ name: 'MAILBRIDGE_API_TOKEN', scopes: ['admin'] }, 400, /environment/],
    [{ name: 'x', scopes: ['admin'], server_ids: [inbox] }, 400, /admin token may change every server/],
    [{ name: 'x', scopes: ['messages:read'], server_ids: [inbox, 'nope'] }, 400, /No outgoing or incoming server has the id nope/],
    [{ name: 'tests', scopes: ['mail:send'] }, 409, /already exists/],
  ]
  for (const [body, status, message] of cases) {
    const r = await mb.api('POST', '/api/v1/api-tokens', body)
    assert.equal(r.statusCode, status, `${JSON.stringify(body)}: ${r.body}`)
    assert.match(r.json().error.message, message)
  }
  assert.equal((await mb.api('POST', '/api/v1/api-tokens', { name: 'x', scopes: ['messages:read'], server_ids: [inbox] })).json().error?.field, undefined)
  assert.equal((await mb.api('POST', '/api/v1/api-tokens', { name: 'y', scopes: ['messages:read'], server_ids: ['nope'] })).json().error.field, 'server_ids[0]')
})

test('api tokens: a revoked token gets 401 from its next request on, and leaves the list', async (t) => {
  const mb = await start(t)
  const { id, token } = await createToken(mb, { name: 'crm', scopes: ['messages:read'] })
  assert.equal((await as(mb, token, 'GET', '/api/v1/messages')).statusCode, 200)
  assert.equal((await mb.api('DELETE', `/api/v1/api-tokens/${id}`)).statusCode, 204)
  const after = await as(mb, token, 'GET', '/api/v1/messages')
  assert.equal(after.statusCode, 401)
  assert.equal(after.json().error.code, 'unauthorized')
  assert.equal((await mb.api('DELETE', `/api/v1/api-tokens/${id}`)).statusCode, 404, 'revoked once')
  assert.ok(!(await mb.api('GET', '/api/v1/api-tokens')).json().items.some((i: { id: string }) => i.id === id))
  const row = await mb.services.database.db.selectFrom('api_tokens').select('revoked_at').where('id', '=', id).executeTakeFirstOrThrow()
  assert.ok(row.revoked_at, 'the row stays, marked revoked')
})

test('api tokens: last_used_at is written at most once a minute per token', async (t) => {
  const mb = await start(t)
  const { id, token } = await createToken(mb, { name: 'erp', scopes: ['mail:read'] })
  const db = mb.services.database.db
  const lastUse = async () => (await db.selectFrom('api_tokens').select('last_used_at').where('id', '=', id).executeTakeFirstOrThrow()).last_used_at
  const recent = new Date(Date.now() - 30_000).toISOString()
  await db.updateTable('api_tokens').set({ last_used_at: recent }).where('id', '=', id).execute()
  assert.equal((await as(mb, token, 'GET', '/api/v1/mail')).statusCode, 200)
  assert.equal(await lastUse(), recent, 'a use within the minute writes nothing')
  const old = new Date(Date.now() - 120_000).toISOString()
  await db.updateTable('api_tokens').set({ last_used_at: old }).where('id', '=', id).execute()
  assert.equal((await as(mb, token, 'GET', '/api/v1/mail')).statusCode, 200)
  assert.ok((await lastUse())! > old, 'a use after the minute is recorded')
})

test('scopes: the OpenAPI document gives each route its scope as design.md §10 says', async (t) => {
  const mb = await start(t)
  const doc = (await mb.app.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, Record<string, { security?: Array<{ bearer: string[] }>; description?: string }>> }
  const scopeOf = (method: string, path: string) => doc.paths[path]?.[method]?.security?.[0]?.bearer
  assert.deepEqual(scopeOf('post', '/api/v1/mail'), ['mail:send'])
  assert.deepEqual(scopeOf('get', '/api/v1/mail'), ['mail:read'])
  assert.deepEqual(scopeOf('get', '/api/v1/mail/{id}'), ['mail:read'])
  assert.deepEqual(scopeOf('post', '/api/v1/mail/{id}/retry'), ['admin'])
  assert.deepEqual(scopeOf('get', '/api/v1/messages/{id}/raw'), ['messages:read'])
  assert.deepEqual(scopeOf('get', '/api/v1/outgoing-servers'), ['admin'])
  assert.deepEqual(scopeOf('post', '/api/v1/api-tokens'), ['admin'])
  assert.match(doc.paths['/api/v1/mail']!.post!.description!, /scope `mail:send`/)
  for (const [path, ops] of Object.entries(doc.paths)) {
    if (!path.startsWith('/api/v1/')) continue
    for (const [method, op] of Object.entries(ops)) assert.equal(op.security?.[0]?.bearer.length, 1, `${method} ${path} documents its scope`)
  }
})

test('scopes: every route of the OpenAPI document, with a token of each scope: refused with 403 naming the scope it lacks, let through with it', async (t) => {
  const mb = await start(t)
  const doc = (await mb.app.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, Record<string, { security: Array<{ bearer: string[] }> }>> }
  const tokens = new Map<string, string>()
  for (const scope of ['mail:send', 'mail:read', 'messages:read', 'admin']) tokens.set(scope, (await createToken(mb, { name: `only ${scope}`, scopes: [scope] })).token)
  let checked = 0
  for (const [path, ops] of Object.entries(doc.paths)) {
    if (!path.startsWith('/api/v1/')) continue
    // Ids nobody has: a request let through gets 404 or 400, never a change.
    const url = path.replace(/\{[^}]+\}/g, '0123456789abcdef')
    for (const [method, op] of Object.entries(ops)) {
      const needed = op.security[0]!.bearer[0]!
      for (const [scope, token] of tokens) {
        const r = await as(mb, token, method.toUpperCase() as Method, url, ['post', 'patch', 'put'].includes(method) ? {} : undefined)
        const what = `${method.toUpperCase()} ${url} with a ${scope} token`
        if (scope === needed || scope === 'admin') {
          assert.ok(r.statusCode !== 401 && r.statusCode !== 403, `${what}: ${r.statusCode} ${r.body}`)
        } else {
          assert.equal(r.statusCode, 403, `${what}: ${r.body}`)
          assert.equal(r.json().error.code, 'forbidden')
          assert.match(r.json().error.message, new RegExp(`lacks the scope ${needed}`), what)
        }
        checked += 1
      }
    }
  }
  assert.ok(checked >= 4 * 40, `every route was tried (${checked} requests)`)
})

test('server_ids: a token limited to servers sends only through its outgoing servers and reads only their mails and its incoming servers\' messages', async (t) => {
  const mb = await start(t)
  const [a, b] = [await outgoing(mb, 'Sales', 'sales@contoso.com'), await outgoing(mb, 'Support', 'support@contoso.com')]
  const [inboxA, inboxB] = [await incoming(mb, 'Sales inbox', 'sales@contoso.com'), await incoming(mb, 'Support inbox', 'support@contoso.com')]
  const { token } = await createToken(mb, { name: 'sales app', scopes: ['mail:send', 'mail:read', 'messages:read'], server_ids: [a, inboxA] })
  const mail = { to: ['bob@fabrikam.com'], subject: 'Hello', text: 'Hi' }

  // Sending: through its server, by from_filter or by id; never through the other one.
  const mine = await as(mb, token, 'POST', '/api/v1/mail', { ...mail, from: 'sales@contoso.com' })
  assert.equal(mine.statusCode, 202, mine.body)
  const viaId = await as(mb, token, 'POST', '/api/v1/mail', { ...mail, server_id: a })
  assert.equal(viaId.statusCode, 202, viaId.body)
  const other = await as(mb, token, 'POST', '/api/v1/mail', { ...mail, server_id: b })
  assert.equal(other.statusCode, 403)
  assert.match(other.json().error.message, new RegExp(`limited to the servers ${a}, ${inboxA}; server ${b} \\(server_id in the body\\)`))
  // A sender that Support's from_filter names still leaves through Sales: selection keeps to the token's servers.
  const picked = await as(mb, token, 'POST', '/api/v1/mail', { ...mail, from: 'support@contoso.com' })
  assert.equal(picked.statusCode, 202, picked.body)
  assert.equal((await mb.api('GET', `/api/v1/mail/${picked.json().id}`)).json().server_id, a)
  const theirs = (await mb.api('POST', '/api/v1/mail', { ...mail, from: 'support@contoso.com' })).json()
  assert.equal((await mb.api('GET', `/api/v1/mail/${theirs.id}`)).json().server_id, b, 'the admin token sends through Support')

  // Reading the queue: its server's mails only.
  const listed = await as(mb, token, 'GET', '/api/v1/mail')
  assert.deepEqual(new Set(listed.json().items.map((m: { server_id: string }) => m.server_id)), new Set([a]))
  assert.equal(listed.json().items.length, 3)
  assert.equal((await as(mb, token, 'GET', `/api/v1/mail/${mine.json().id}`)).statusCode, 200)
  const refused = await as(mb, token, 'GET', `/api/v1/mail/${theirs.id}`)
  assert.equal(refused.statusCode, 403)
  assert.match(refused.json().error.message, new RegExp(`mail ${theirs.id} belongs to server ${b}`))

  // Reading messages: its incoming server's only, in the list, by id, raw, and by server_id.
  const [msgA, msgB] = [await storedMessage(mb, inboxA), await storedMessage(mb, inboxB)]
  const messages = await as(mb, token, 'GET', '/api/v1/messages')
  assert.deepEqual(messages.json().items.map((m: { id: string }) => m.id), [msgA])
  assert.equal((await mb.api('GET', '/api/v1/messages')).json().items.length, 2, 'the admin token sees both')
  assert.equal((await as(mb, token, 'GET', `/api/v1/messages/${msgA}`)).statusCode, 200)
  assert.equal((await as(mb, token, 'GET', `/api/v1/messages/${msgA}/raw`)).statusCode, 200)
  for (const url of [`/api/v1/messages/${msgB}`, `/api/v1/messages/${msgB}/raw`, `/api/v1/messages/${msgB}/attachments/x`, `/api/v1/messages?server_id=${inboxB}`]) {
    const r = await as(mb, token, 'GET', url)
    assert.equal(r.statusCode, 403, `${url}: ${r.body}`)
    assert.match(r.json().error.message, new RegExp(`limited to the servers ${a}, ${inboxA}`))
  }
  assert.equal((await as(mb, token, 'GET', `/api/v1/messages?server_id=${inboxA}`)).json().items.length, 1)
})

test('server_ids: a token limited to incoming servers only may not send', async (t) => {
  const mb = await start(t)
  await outgoing(mb, 'Sales', 'sales@contoso.com')
  const inbox = await incoming(mb, 'Sales inbox', 'sales@contoso.com')
  const { token } = await createToken(mb, { name: 'reader', scopes: ['mail:send', 'messages:read'], server_ids: [inbox] })
  const r = await as(mb, token, 'POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 'x', text: 'x' })
  assert.equal(r.statusCode, 403)
  assert.match(r.json().error.message, /none of them is an outgoing server/)
  assert.equal(await mb.services.database.db.selectFrom('mails').select('id').executeTakeFirst(), undefined, 'nothing queued')
})
