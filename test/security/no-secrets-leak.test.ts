import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import nodemailer from 'nodemailer'
import { textCells } from '../support/db-scan.ts'
import { dovecotAvailable } from '../support/dovecot.ts'
import { API_TOKEN } from '../support/harness.ts'
import { rfc822, startMailroom } from '../support/mailroom.ts'
import { freePort, startNode, type Node } from '../support/process.ts'
import { ALICE, CLIENT_SECRET } from '../support/world.ts'

const skip = dovecotAvailable() ? false : 'Dovecot is not installed: run .ci/install-peers.sh'
const TLS = fileURLToPath(new URL('../support/tls/', import.meta.url))
const ADMIN_PASSWORD = 'shared-world-password' // world.nodeEnv()
const RELAY_PASSWORD = 'relay-user-password-0123456789'
const LOGIN_SERVER_PASSWORD = 'login-server-password-0123456789'
const WEBHOOK_SECRET = 'whsec_leak-test-0123456789abcdef'
const soon = () => new Date(Date.now() + 5 * 60_000).toISOString() // inside the 10-minute refresh margin

interface Recorded {
  what: string
  status: number
  headers: Record<string, string>
  body: string
}

async function startReceiver() {
  const bodies: string[] = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (d: string) => (body += d))
    req.on('end', () => {
      bodies.push(body)
      res.writeHead(200).end()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, bodies, close: () => new Promise<void>((r) => server.close(() => r())) }
}

/** Poll a condition the test cannot be told about (another process's queue), never a fixed sleep. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Which of the known secrets (name → value) occur in `text`. */
const leaks = (secrets: Map<string, string>, text: string): string[] => [...secrets].filter(([, v]) => text.includes(v)).map(([k]) => k)

test('secrets: a full scenario on a real process leaks no known secret into the database (file, WAL, text columns), any API or page response, or the log', { skip }, async (t) => {
  const room = await startMailroom({ shared: true })
  t.after(room.close)
  const receiver = await startReceiver()
  t.after(receiver.close)
  let relayPort = 0
  const node = await startNode(async () =>
    room.nodeEnv({
      MAILBRIDGE_LOG_LEVEL: 'debug',
      MAILBRIDGE_BASE_URL: 'http://localhost:8080',
      MAILBRIDGE_QUEUE_POLL_MS: '50',
      MAILBRIDGE_WEBHOOK_POLL_MS: '50',
      MAILBRIDGE_RETRY_BASE_S: '0',
      MAILBRIDGE_RELAY_PORT: String((relayPort = await freePort())),
      MAILBRIDGE_RELAY_TLS_CERT: join(TLS, 'cert.pem'),
      MAILBRIDGE_RELAY_TLS_KEY: join(TLS, 'key.pem'),
    }),
  )
  t.after(() => node.child.kill('SIGKILL'))
  const db = room.mb.services.database.db
  const responses: Recorded[] = []
  const states: string[] = []
  let session = ''

  const send = async (what: string, path: string, init: RequestInit & { json?: unknown } = {}): Promise<Recorded> => {
    const headers: Record<string, string> = { authorization: `Bearer ${API_TOKEN}`, ...(init.json !== undefined ? { 'content-type': 'application/json' } : {}), ...(init.headers as Record<string, string>) }
    const res = await fetch(`${node.url}${path}`, { ...init, headers, body: init.json !== undefined ? JSON.stringify(init.json) : init.body, redirect: 'manual' })
    const r = { what, status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() }
    responses.push(r)
    return r
  }
  const api = (method: string, path: string, json?: unknown) => send(`${method} ${path}`, path, { method, json })
  const ok = (r: Recorded, status = 200) => {
    assert.equal(r.status, status, `${r.what}: ${r.body}`)
    return JSON.parse(r.body)
  }
  /** Connect → the emulator's consent page ("Yes") → the callback on the node. */
  const connect = async (kind: 'outgoing' | 'incoming', id: string) => {
    const { authorize_url } = ok(await api('POST', `/api/v1/${kind}-servers/${id}/connect`))
    states.push(new URL(authorize_url).searchParams.get('state')!)
    const back = await room.ms.consent(authorize_url, { user: ALICE })
    assert.equal((await send(`GET confirm (${kind})`, back.pathname + back.search)).status, 302)
    return back
  }
  const sent = async (id: string) => until(`mail ${id} sent`, async () => ok(await api('GET', `/api/v1/mail/${id}`)).state === 'sent')

  // Settings, an Outlook server connected and tested, a password server, a webhook, a relay user.
  ok(await api('PATCH', '/api/v1/settings', { microsoft_outlook_client_secret: CLIENT_SECRET }))
  const server = ok(await api('POST', '/api/v1/outgoing-servers', { name: 'Outlook', authentication: 'outlook', username: ALICE, host: room.smtp.host, port: room.smtp.port }), 201)
  const back = await connect('outgoing', server.id)
  assert.equal(ok(await api('POST', `/api/v1/outgoing-servers/${server.id}/test`)).ok, true)
  ok(await api('PATCH', `/api/v1/outgoing-servers/${server.id}`, { max_per_minute: null }))
  ok(await api('POST', '/api/v1/outgoing-servers', { name: 'Legacy', authentication: 'login', host: '127.0.0.1', port: 2525, encryption: 'none', username: 'legacy', password: LOGIN_SERVER_PASSWORD, sequence: 99 }), 201)
  const hook = ok(await api('POST', '/api/v1/webhooks', { url: receiver.url, events: ['mail.sent', 'message.received', 'token.invalid'], secret: WEBHOOK_SECRET }), 201)
  assert.equal(hook.secret, undefined, 'a secret the caller chose is not echoed')
  ok(await api('POST', '/api/v1/relay-users', { username: 'erp', password: RELAY_PASSWORD }), 201)
  // An application's API token: shown in its 201 only (left out of the response search below), then used and revoked.
  const appToken = ok(await api('POST', '/api/v1/api-tokens', { name: 'billing', scopes: ['mail:read'] }), 201).token as string
  assert.equal((await send('GET /api/v1/mail (application token)', '/api/v1/mail', { headers: { authorization: `Bearer ${appToken}` } })).status, 200)
  assert.equal((await api('DELETE', `/api/v1/api-tokens/${ok(await api('GET', '/api/v1/api-tokens')).items.find((i: { name: string }) => i.name === 'billing').id}`)).status, 204)

  // Send: through the API, through the relay, with a refresh, and after Exchange refuses a token (535 → refresh → retry).
  await sent(ok(await api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 'one', text: 'x' }), 202).id)
  const relay = nodemailer.createTransport({ host: '127.0.0.1', port: relayPort, requireTLS: true, tls: { servername: 'localhost', ca: readFileSync(join(TLS, 'ca.pem')) }, auth: { user: 'erp', pass: RELAY_PASSWORD } })
  await relay.sendMail({ from: ALICE, to: 'bob@fabrikam.com', subject: 'relayed', text: 'x' })
  await db.updateTable('credentials').set({ access_expires_at: soon() }).execute()
  await sent(ok(await api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 'after a refresh', text: 'x' }), 202).id)
  room.ms.expireAccessTokens(ALICE)
  await sent(ok(await api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 'after a 535', text: 'x' }), 202).id)
  ok(await api('GET', '/api/v1/mail'))

  // Fetch: an incoming server on Dovecot, connected, Test & Confirm, Fetch Now, the messages.
  const inbox = ok(await api('POST', '/api/v1/incoming-servers', { name: 'Inbox', authentication: 'outlook', username: ALICE, host: room.dovecot.host, port: room.dovecot.imapsPort }), 201)
  await connect('incoming', inbox.id)
  assert.equal(ok(await api('POST', `/api/v1/incoming-servers/${inbox.id}/test`)).ok, true)
  await room.dovecot.seed(ALICE, rfc822({ subject: 'hello from a customer' }))
  ok(await api('POST', `/api/v1/incoming-servers/${inbox.id}/fetch`))
  for (const path of ['/api/v1/messages', '/api/v1/settings', '/api/v1/outgoing-servers', '/api/v1/incoming-servers', '/api/v1/webhooks', `/api/v1/webhooks/${hook.id}/deliveries`, '/api/v1/relay-users', '/api/v1/parameters', '/metrics', '/openapi.json']) {
    assert.equal((await api('GET', path)).status, 200, path)
  }

  // The admin UI: sign in, and every page that shows a secret's presence.
  const login = await send('GET /admin/login', '/admin/login')
  const csrf = /name="_csrf" value="([^"]+)"/.exec(login.body)![1]!
  const loginCookie = login.headers['set-cookie']!.split(';')[0]!
  const signedIn = await send('POST /admin/login', '/admin/login', { method: 'POST', headers: { cookie: loginCookie, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: csrf, username: 'admin', password: ADMIN_PASSWORD, next: '/admin/settings' }).toString() })
  assert.equal(signedIn.status, 303, signedIn.body)
  session = /mb_session=([^;]+)/.exec(signedIn.headers['set-cookie']!)![1]!
  for (const page of ['/admin/settings', `/admin/outgoing-servers/${server.id}`, `/admin/incoming-servers/${inbox.id}`, '/admin/relay-users', '/admin/mail', '/admin/parameters']) {
    await send(`GET ${page}`, page, { headers: { cookie: `mb_session=${session}` } })
  }

  // Errors: a replayed and a forged callback, a wrong password, a malformed mail, a wrong auth scheme, a revoked grant.
  assert.equal((await send('GET confirm (replayed)', back.pathname + back.search)).status, 400)
  assert.equal((await send('GET confirm (forged)', '/microsoft_outlook/confirm?code=x&state=forged')).status, 400)
  const csrf2 = /name="_csrf" value="([^"]+)"/.exec((await send('GET /admin/login', '/admin/login')).body)![1]!
  await send('POST /admin/login (wrong password)', '/admin/login', { method: 'POST', headers: { cookie: loginCookie, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: csrf2, username: 'admin', password: `${ADMIN_PASSWORD}-typo` }).toString() })
  assert.equal((await api('POST', '/api/v1/mail', { to: ['not an address'], subject: 'x', text: 'x' })).status, 400)
  assert.equal((await send('GET /api/v1/settings (wrong scheme)', '/api/v1/settings', { headers: { authorization: `Token ${API_TOKEN}` } })).status, 401)
  room.ms.revokeUser(ALICE)
  await db.updateTable('credentials').set({ access_expires_at: soon() }).execute()
  const stuck = ok(await api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 'after a revocation', text: 'x' }), 202)
  await until('the revoked grant is noticed', async () => ok(await api('GET', `/api/v1/outgoing-servers/${server.id}`)).token.status === 'invalid')
  ok(await api('GET', `/api/v1/mail/${stuck.id}`))
  await until('every webhook delivery made', async () => {
    const states = await db.selectFrom('webhook_deliveries').select('state').execute()
    return states.length >= 5 && states.every((d) => d.state === 'delivered') && receiver.bodies.length === states.length
  })

  // The known secrets, gathered last: everything the emulator issued or saw (codes, refresh and access tokens,
  // PKCE verifiers), the XOAUTH2 strings built from the access tokens, the OAuth states, and ours.
  const secrets = new Map<string, string>([
    ['client secret', CLIENT_SECRET],
    ['API token', API_TOKEN],
    ['application API token', appToken],
    ['admin password', ADMIN_PASSWORD],
    ['relay user password', RELAY_PASSWORD],
    ['outgoing server password', LOGIN_SERVER_PASSWORD],
    ['webhook secret', WEBHOOK_SECRET],
    ['admin session cookie', session],
  ])
  for (const [i, v] of room.ms.issuedSecrets().entries()) {
    secrets.set(`emulator secret #${i}`, v)
    secrets.set(`XOAUTH2 of emulator secret #${i}`, Buffer.from(`user=${ALICE}\x01auth=Bearer ${v}\x01\x01`).toString('base64'))
  }
  assert.ok(room.ms.issuedSecrets().length >= 8, 'codes, refresh and access tokens, verifiers')
  const withStates = new Map([...secrets, ...states.map((s, i) => [`OAuth state #${i}`, s] as [string, string])])

  // The database: every text column, and on SQLite the bytes of the file and its WAL.
  const cells = await textCells(room.mb.services.database)
  assert.ok(cells.length > 100)
  for (const c of cells) assert.deepEqual(leaks(withStates, c.value), [], `${c.table}.${c.column}`)
  const files: string[] = []
  if (room.mb.config.databaseUrl.startsWith('sqlite:')) {
    const path = room.mb.config.databaseUrl.slice('sqlite:'.length)
    files.push(path, `${path}-wal`)
    assert.ok(existsSync(`${path}-wal`), 'the WAL is there to search')
  }
  const searchFiles = () => {
    for (const f of files.filter(existsSync)) assert.deepEqual(leaks(withStates, readFileSync(f).toString('latin1')), [], f)
  }
  searchFiles()

  // Every response: body and headers (the session cookie is set once, by the sign-in; states go out in authorize URLs).
  assert.ok(responses.length > 40)
  for (const r of responses.filter((x) => x.what !== 'POST /api/v1/api-tokens')) {
    const headers = Object.entries(r.headers).filter(([k]) => !(r.what === 'POST /admin/login' && k === 'set-cookie')).map(([k, v]) => `${k}: ${v}`).join('\n')
    assert.deepEqual(leaks(secrets, `${headers}\n${r.body}`), [], r.what)
  }
  for (const [i, body] of receiver.bodies.entries()) assert.deepEqual(leaks(withStates, body), [], `webhook delivery #${i}`)

  // The logs: the real process's output (debug level) after a graceful stop, and the in-process set-up's.
  node.child.kill('SIGTERM')
  assert.equal(await node.exited, 0, node.output())
  const output = node.output()
  assert.match(output, /access token refreshed/, 'the log covers the refresh')
  assert.match(output, /\/microsoft_outlook\/confirm\?code=\[redacted\]&state=\[redacted\]/, 'and the callback, masked')
  assert.match(output, /AADSTS50173|revoked/i, 'and the revoked grant')
  assert.deepEqual(leaks(withStates, output), [], 'the process log')
  assert.deepEqual(leaks(withStates, room.mb.logs.join('')), [], 'the set-up log')
  searchFiles()
})
