import assert from 'node:assert/strict'
import { test } from 'node:test'
import { hashToken } from '../../src/crypto/passwords.ts'
import { isoIn } from '../../src/db/index.ts'
import { API_TOKEN } from '../support/harness.ts'
import { startNode } from '../support/process.ts'
import { ALICE, startWorld, type World } from '../support/world.ts'
import { generateCases, type Case, type OpenApi } from './cases.ts'

const MAX_MAIL_BYTES = 200_000
const TABLES = ['mails', 'outgoing_servers', 'incoming_servers', 'webhooks', 'webhook_deliveries', 'relay_users', 'parameters', 'settings', 'credentials', 'messages', 'oauth_states'] as const

/** Every row of the tables a request could write to, in a stable order, to compare before and after. */
async function snapshot(w: World): Promise<Record<string, unknown[]>> {
  const db = w.mb.services.database.db
  const out: Record<string, unknown[]> = {}
  for (const t of TABLES) {
    const rows = (await db.selectFrom(t).selectAll().execute()) as Array<Record<string, unknown>>
    // A state is consumed by the callback cases (used_at is set): that is the point of them, so compare the rest.
    out[t] = rows.map((r) => JSON.stringify(t === 'oauth_states' ? { ...r, used_at: undefined } : r)).sort()
  }
  return out
}

async function send(url: string, c: Case, path: string): Promise<Response> {
  const headers: Record<string, string> = {}
  if (c.authorization !== null) headers.authorization = c.authorization ?? `Bearer ${API_TOKEN}`
  let body: string | undefined
  if (c.body !== undefined) {
    body = typeof c.body === 'string' ? c.body : JSON.stringify(c.body)
    headers['content-type'] = c.contentType ?? 'application/json'
  }
  return fetch(url + path, { method: c.method, headers, body, redirect: 'manual' })
}

/** What is wrong with an answer, or undefined when it is a clear refusal. */
async function judge(res: Response, c: Case): Promise<string | undefined> {
  const text = await res.text()
  const status = res.status
  if (status < 400 || status >= 500) return `status ${status}: ${text.slice(0, 300)}`
  if (c.status !== undefined && status !== c.status) return `status ${status}, expected ${c.status}: ${text.slice(0, 300)}`
  const type = res.headers.get('content-type') ?? ''
  if (c.html) {
    if (!type.startsWith('text/html')) return `a ${type} answer where a browser needs a page: ${text.slice(0, 300)}`
    const alert = /role="alert">([\s\S]*?)<\/div>/.exec(text)?.[1]
    if (!alert) return `the page has no alert saying what went wrong: ${text.slice(0, 300)}`
    if (!c.cause.test(alert)) return `the page says ${JSON.stringify(alert.slice(0, 300))}, which does not match ${c.cause}`
    if (/<script>alert/.test(text)) return 'the page echoes markup unescaped'
    return undefined
  }
  if (!type.startsWith('application/json')) return `a ${type} answer: ${text.slice(0, 300)}`
  let body: { error?: { code?: unknown; message?: unknown; field?: unknown } }
  try {
    body = JSON.parse(text)
  } catch {
    return `not JSON: ${text.slice(0, 300)}`
  }
  const message = body.error?.message
  if (typeof body.error?.code !== 'string' || typeof message !== 'string') return `not the error envelope: ${text.slice(0, 300)}`
  if (/^(Bad Request|Unsupported Media Type|Something went wrong)/i.test(message)) return `a vague message: ${message}`
  if (!c.cause.test(message)) return `the message ${JSON.stringify(message.slice(0, 300))} does not match ${c.cause}`
  return undefined
}

test('bad-input corpus: every generated case against a real `mailbridge serve` gets a 4xx that says what to fix, stores nothing, and the process stays up', async (t) => {
  const w = await startWorld({ shared: true })
  t.after(w.close)
  const outgoing = await w.outgoingServer()
  assert.equal((await w.connect(outgoing.id)).statusCode, 302)
  const incoming = (await w.mb.api('POST', '/api/v1/incoming-servers', { name: 'Inbox', username: ALICE })).json()
  const webhook = (await w.mb.api('POST', '/api/v1/webhooks', { url: 'https://app.example.com/hook', events: ['mail.sent'] })).json()
  const relayUser = (await w.mb.api('POST', '/api/v1/relay-users', { username: 'erp', password: 'erp-password-123' })).json()
  const mail = (await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 'Kept', text: 'Queued before the corpus' })).json()
  const cancelled = (await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 'Cancelled', text: 'x' })).json()
  assert.equal((await w.mb.api('POST', `/api/v1/mail/${cancelled.id}/cancel`)).statusCode, 200)

  // The redirect URI registered at the emulator is the harness's base URL: the process uses the same one.
  const node = await startNode(
    w.nodeEnv({ MAILBRIDGE_BASE_URL: 'http://localhost:8080', MAILBRIDGE_MAX_MAIL_BYTES: String(MAX_MAIL_BYTES), NODE_EXTRA_CA_CERTS: 'test/support/tls/ca.pem' }),
    ['serve', '--role', 'web'],
  )
  t.after(() => node.child.kill('SIGKILL'))
  const api = (method: string, path: string) => fetch(node.url + path, { method, headers: { authorization: `Bearer ${API_TOKEN}` } })
  const authorizeUrl = async () => {
    const res = await api('POST', `/api/v1/outgoing-servers/${outgoing.id}/connect`)
    assert.equal(res.status, 200)
    return ((await res.json()) as { authorize_url: string }).authorize_url
  }
  const freshState = async () => new URL(await authorizeUrl()).searchParams.get('state')!

  // A state used by a real, successful callback through the process; then one whose 10 minutes are over.
  const consented = await w.ms.consent(await authorizeUrl(), { user: ALICE })
  const usedState = consented.searchParams.get('state')!
  const ok = await fetch(node.url + consented.pathname + consented.search, { redirect: 'manual' })
  assert.equal(ok.status, 302, await ok.text())
  const expiredState = await freshState()
  await w.mb.services.database.db.updateTable('oauth_states').set({ expires_at: isoIn(-60_000) }).where('state_hash', '=', hashToken(expiredState)).execute()
  const refused = await w.ms.consent(await authorizeUrl(), { user: ALICE, approve: false })
  assert.equal(refused.searchParams.get('error'), 'access_denied')

  const openapi = (await (await fetch(`${node.url}/openapi.json`)).json()) as OpenApi
  const cases = generateCases(openapi, {
    outgoingId: outgoing.id,
    incomingId: incoming.id,
    webhookId: webhook.id,
    relayUserId: relayUser.id,
    mailId: mail.id,
    cancelledMailId: cancelled.id,
    maxMailBytes: MAX_MAIL_BYTES,
    freshState,
    usedState,
    expiredState,
    refusedQuery: refused.search.slice(1),
  })
  console.log(`bad-input corpus: ${cases.length} generated cases`)
  assert.ok(cases.length >= 200, `only ${cases.length} cases`)

  // Paths that need a fresh state are made first: a case must not depend on what an earlier one did.
  const paths: string[] = []
  for (const c of cases) paths.push(typeof c.path === 'string' ? c.path : await c.path())
  const before = await snapshot(w)
  const failures: string[] = []
  for (const [i, c] of cases.entries()) {
    const path = paths[i]!
    try {
      const why = await judge(await send(node.url, c, path), c)
      if (why) failures.push(`${c.name}\n    ${why}`)
    } catch (e) {
      failures.push(`${c.name}\n    the request failed: ${(e as Error).message}`)
    }
  }
  assert.deepEqual(failures, [], `${failures.length} of ${cases.length} cases were not clear refusals:\n${failures.join('\n')}`)

  assert.equal(node.child.exitCode, null, 'the process is still running')
  assert.equal((await fetch(`${node.url}/healthz`)).status, 200)
  assert.doesNotMatch(node.output(), /request failed/, 'no request ended in a 5xx')
  assert.deepEqual(await snapshot(w), before, 'bad input stored nothing and changed nothing')
})
