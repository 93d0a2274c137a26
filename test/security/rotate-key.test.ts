import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { countUnderOldKeys, readBatch, resealBatch, rotateKeys } from '../../src/crypto/rotate.ts'
import { SEALED_COLUMNS } from '../../src/crypto/sealed-columns.ts'
import { keyId, SecretBox } from '../../src/crypto/secret-box.ts'
import { Secret } from '../../src/crypto/secret.ts'
import { CredentialService } from '../../src/oauth/credentials.ts'
import { outlook } from '../../src/oauth/providers.ts'
import { SIGNATURE_HEADER, verify } from '../../src/webhooks/signer.ts'
import { SEALED_VALUE, textCells } from '../support/db-scan.ts'
import { API_TOKEN } from '../support/harness.ts'
import { startNode, type Node } from '../support/process.ts'
import { ALICE, CLIENT_SECRET, startWorld, type World } from '../support/world.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const refreshToken = SEALED_COLUMNS.find((c) => c.table === 'credentials' && c.column === 'refresh_token')!
const soon = () => new Date(Date.now() + 5 * 60_000).toISOString() // inside the 10-minute refresh margin
const WEBHOOK_SECRET = 'whsec_rotation-test-0123456789abcdef'
const RELAY_LOGIN_PASSWORD = 'legacy-smtp-password-0123456789'

test('rotate-key: a refresh that lands between the read and the write of a batch is kept, not overwritten by the old token', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  const s = w.mb.services
  const keyB = randomBytes(32)
  const boxB = new SecretBox([keyB, w.mb.key])
  const batch = await readBatch(s.database.db, refreshToken, boxB.currentKeyId, null, 10)
  assert.equal(batch.length, 1, 'the refresh token is under the old key')

  // Another node (keyring B, A) refreshes the token: Microsoft rotates the refresh token.
  const node = new CredentialService({ db: s.database.db, box: boxB, settings: s.settings, log: s.log, refreshMarginSeconds: 600, trustedHosts: s.settings.trustedHosts })
  await s.database.db.updateTable('credentials').set({ access_expires_at: soon() }).execute()
  await node.accessToken(outlook, ALICE)

  const r = await resealBatch(s.database.db, boxB, refreshToken, batch)
  assert.deepEqual(r, { resealed: 0, changed: 1, unreadable: 0 })
  const row = await s.database.db.selectFrom('credentials').select('refresh_token').executeTakeFirstOrThrow()
  assert.equal(boxB.open(row.refresh_token!, 'credentials.refresh_token').reveal(), w.ms.latestRefreshToken(ALICE), 'the rotated refresh token survived')
  // And without the compare-and-set the stale batch would have won: writing it plainly is what the CAS refuses.
  assert.notEqual(boxB.open(batch[0]!.sealed, 'credentials.refresh_token').reveal(), w.ms.latestRefreshToken(ALICE))
})

test('rotate-key: without the old key nothing is touched and everything is counted as left; with it, everything moves, and a second run does nothing', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  await w.connect((await w.outgoingServer()).id)
  const db = w.mb.services.database.db
  const keyB = randomBytes(32)
  const before = await db.selectFrom('credentials').select(['refresh_token', 'access_token']).executeTakeFirstOrThrow()
  const blind = await rotateKeys(db, new SecretBox([keyB]), { batchSize: 1 })
  assert.equal(blind.columns['credentials.refresh_token']!.unreadable, 1)
  assert.equal(blind.remainingTotal, 4, 'client secret, refresh and access token, the used state')
  assert.deepEqual(await db.selectFrom('credentials').select(['refresh_token', 'access_token']).executeTakeFirstOrThrow(), before, 'nothing was touched')
  const done = await rotateKeys(db, new SecretBox([keyB, w.mb.key]), { batchSize: 1 })
  assert.equal(done.remainingTotal, 0)
  assert.equal(Object.values(done.columns).reduce((n, c) => n + c.resealed, 0), 4)
  const again = await rotateKeys(db, new SecretBox([keyB, w.mb.key]))
  assert.equal(Object.values(again.columns).reduce((n, c) => n + c.resealed, 0), 0, 'idempotent')
})

/** `mailbridge rotate-key` as a real process: exit code and output. */
function rotateKey(env: Record<string, string>, args: string[] = []): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'rotate-key', ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    child.once('error', reject)
    child.once('exit', (code) => resolve({ code, out }))
  })
}

async function startReceiver() {
  const requests: Array<{ headers: http.IncomingHttpHeaders; body: string }> = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (d: string) => (body += d))
    req.on('end', () => {
      requests.push({ headers: req.headers, body })
      res.writeHead(200).end()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, requests, close: () => new Promise<void>((r) => server.close(() => r())) }
}

const call = async (node: Node, method: string, path: string, body?: unknown) => {
  const res = await fetch(`${node.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${API_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  })
  return { status: res.status, json: (await res.json()) as Record<string, any> }
}

/** Send one mail through a node after making its token due for refresh, and wait until it is sent. */
async function sendWithRefresh(w: World, node: Node, serverId: string, subject: string): Promise<void> {
  await w.mb.services.database.db.updateTable('credentials').set({ access_expires_at: soon() }).execute()
  const { status, json } = await call(node, 'POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject, text: 'x', server_id: serverId })
  assert.equal(status, 202, JSON.stringify(json))
  const deadline = Date.now() + 30_000
  for (;;) {
    const mail = (await call(node, 'GET', `/api/v1/mail/${json.id}`)).json
    if (mail.state === 'sent') return
    assert.ok(mail.state === 'outgoing' || mail.state === 'sending', `${subject}: ${mail.state} ${mail.failure_reason}`)
    assert.ok(Date.now() < deadline, `${subject}: still ${mail.state} after 30 s (${mail.failure_reason})`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

test('rotate-key: secrets under key A are re-sealed under B while a node keeps sending and refreshing; afterwards B alone does everything', async (t) => {
  const w = await startWorld({ shared: true, env: { MAILBRIDGE_QUEUE_POLL_MS: '50' } })
  t.after(w.close)
  const receiver = await startReceiver()
  t.after(receiver.close)
  const keyA = w.mb.key
  const keyB = randomBytes(32)
  const db = w.mb.services.database.db

  // Under A: the client secret (world), a connected mailbox, a webhook, a password server, pending consents.
  const server = await w.outgoingServer()
  await w.connect(server.id)
  await w.mb.api('PATCH', `/api/v1/outgoing-servers/${server.id}`, { max_per_minute: null })
  const hook = await w.mb.api('POST', '/api/v1/webhooks', { url: receiver.url, events: ['mail.sent'], secret: WEBHOOK_SECRET })
  assert.equal(hook.statusCode, 201, hook.body)
  const login = await w.mb.api('POST', '/api/v1/outgoing-servers', { name: 'Legacy', authentication: 'login', host: '127.0.0.1', port: 2525, encryption: 'none', username: 'legacy', password: RELAY_LOGIN_PASSWORD, sequence: 99 })
  assert.equal(login.statusCode, 201, login.body)
  const second = await w.outgoingServer({ body: { name: 'Second' } })
  const pending: string[] = []
  for (let i = 0; i < 40; i++) pending.push((await w.mb.api('POST', `/api/v1/outgoing-servers/${second.id}/connect`)).json().authorize_url)
  const underA = await countUnderOldKeys(db, keyId(keyB))
  assert.deepEqual(underA, { 'settings.microsoft_outlook_client_secret|google_gmail_client_secret': 1, 'credentials.refresh_token': 1, 'credentials.access_token': 1, 'outgoing_servers.password': 1, 'webhooks.secret': 1, 'oauth_states.code_verifier': 41, 'sign_ins.device_code': 0 }, 'the used state of the first consent is still stored')

  // Every node already runs with the keyring "B, A" (step 2 of the README); rotate while one keeps working.
  const ring = `${keyB.toString('base64')},${keyA.toString('base64')}`
  const node1 = await startNode(w.nodeEnv({ MAILBRIDGE_SECRET_KEY: ring, MAILBRIDGE_BASE_URL: 'http://localhost:8080', MAILBRIDGE_QUEUE_POLL_MS: '50', MAILBRIDGE_WEBHOOK_POLL_MS: '50' }))
  t.after(() => node1.child.kill('SIGKILL'))
  let rotating = true
  let sent = 0
  const refreshesBefore = w.ms.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length
  const traffic = (async () => {
    // Keep going until the rotation is over, then three more: sends and refreshes around and during it.
    for (let after = 0; after < 3; after += rotating ? 0 : 1) await sendWithRefresh(w, node1, server.id, `during ${sent++}`)
  })()
  const rotation = await rotateKey(w.nodeEnv({ MAILBRIDGE_SECRET_KEY: ring }), ['--batch', '3'])
  rotating = false
  const refreshesDuring = w.ms.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length - refreshesBefore
  t.diagnostic(`from the start of traffic to rotate-key's exit: ${sent} mails sent, ${refreshesDuring} tokens refreshed`)
  await traffic
  assert.equal(rotation.code, 0, rotation.out)
  assert.match(rotation.out, /oauth_states\.code_verifier: 3 re-sealed/, 'progress is printed per batch')
  assert.match(rotation.out, /\n0 values still under old keys\n/)
  assert.ok(refreshesDuring > 0, 'tokens were refreshed meanwhile')

  // Every sealed value anywhere in the database is under B, and only in the columns rotate-key knows.
  const known = new Set(SEALED_COLUMNS.map((c) => `${c.table}.${c.column}`))
  const sealed = (await textCells(w.mb.services.database)).filter((c) => SEALED_VALUE.test(c.value))
  assert.ok(sealed.length >= 45)
  for (const c of sealed) {
    assert.ok(known.has(`${c.table}.${c.column}`), `${c.table}.${c.column} holds sealed values: add it to SEALED_COLUMNS`)
    assert.equal(SEALED_VALUE.exec(c.value)![1], keyId(keyB), `${c.table}.${c.column} is under B`)
  }
  const again = await rotateKey(w.nodeEnv({ MAILBRIDGE_SECRET_KEY: ring }))
  assert.equal(again.code, 0, again.out)
  assert.match(again.out, /settings\.microsoft_outlook_client_secret\|google_gmail_client_secret: 0 re-sealed, 0 changed meanwhile, 0 under an unknown key, 0 still under old keys/, 'a second run is harmless')

  // Step 4: every node drops A. B alone sends, refreshes, signs webhooks and finishes a consent started under A.
  node1.child.kill('SIGTERM')
  assert.equal(await node1.exited, 0, node1.output())
  const node2 = await startNode(w.nodeEnv({ MAILBRIDGE_SECRET_KEY: keyB.toString('base64'), MAILBRIDGE_BASE_URL: 'http://localhost:8080', MAILBRIDGE_QUEUE_POLL_MS: '50', MAILBRIDGE_WEBHOOK_POLL_MS: '50' }))
  t.after(() => node2.child.kill('SIGKILL'))
  for (let i = 0; i < 3; i++) await sendWithRefresh(w, node2, server.id, `after ${i}`)
  sent += 3
  const back = await w.ms.consent(pending[17]!, { user: ALICE })
  const confirm = await fetch(`${node2.url}${back.pathname}${back.search}`, { redirect: 'manual' })
  assert.equal(confirm.status, 302, await confirm.text())

  const mails = await db.selectFrom('mails').select('state').execute()
  assert.equal(mails.length, sent)
  assert.ok(mails.every((m) => m.state === 'sent'), 'nothing was lost')
  assert.equal(w.smtp.messages.length, sent)
  const boxB = new SecretBox([keyB])
  const cred = await db.selectFrom('credentials').selectAll().executeTakeFirstOrThrow()
  assert.equal(boxB.open(cred.refresh_token!, 'credentials.refresh_token').reveal(), w.ms.latestRefreshToken(ALICE), 'the newest refresh token is the one stored')
  const secret = await db.selectFrom('settings').select('value').where('key', '=', 'microsoft_outlook_client_secret').executeTakeFirstOrThrow()
  assert.equal(boxB.open(secret.value, 'settings.microsoft_outlook_client_secret').reveal(), CLIENT_SECRET)
  const password = await db.selectFrom('outgoing_servers').select('password').where('id', '=', login.json().id).executeTakeFirstOrThrow()
  assert.equal(boxB.open(password.password!, 'outgoing_servers.password').reveal(), RELAY_LOGIN_PASSWORD)
  for (const deadline = Date.now() + 30_000; ; ) {
    const delivered = await db.selectFrom('webhook_deliveries').select('state').where('state', '=', 'delivered').execute()
    if (delivered.length === sent) break
    assert.ok(Date.now() < deadline, `${delivered.length} of ${sent} webhook deliveries after 30 s`)
    await new Promise((r) => setTimeout(r, 50))
  }
  assert.equal(receiver.requests.length, sent)
  for (const r of receiver.requests) assert.ok(verify(new Secret(WEBHOOK_SECRET), r.headers[SIGNATURE_HEADER] as string, r.body), 'every delivery is signed with the same secret')
  node2.child.kill('SIGTERM')
  assert.equal(await node2.exited, 0, node2.output())
})
