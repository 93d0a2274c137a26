/**
 * bench/admin-pages: how fast the admin UI renders its pages for a signed-in admin (session lookup, CSRF token,
 * the queries behind the page, HTML), beside /healthz on the same app as the baseline: one small query and JSON.
 * In-process over loopback HTTP with keep-alive; the mail queue page lists 50 of `mails` queued mails. The home
 * page shows `mailboxes` mailboxes set up as bench/mailboxes sets them up (an outgoing and an incoming server each,
 * connected through the API and the emulator's consent), with attempts over the last 24 hours for its chart and
 * counts; every page is measured with them in the database.
 *   npm run bench:ui -- [requests per page=2000] [concurrency=8] [mails=500] [mailboxes=1000]
 */
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import { adminClient } from '../test/support/admin-client.ts'
import { freePort } from '../test/support/process.ts'
import { ALICE, startWorld } from '../test/support/world.ts'
import { groupsOf, newId } from '../src/db/index.ts'
import { load, percentile, table } from './lib.ts'

const N = Number(process.argv[2] ?? 2000)
const CONCURRENCY = Number(process.argv[3] ?? 8)
const MAILS = Number(process.argv[4] ?? 500)
const MAILBOXES = Number(process.argv[5] ?? 1000)

const users = Array.from({ length: MAILBOXES }, (_, i) => `box${String(i).padStart(4, '0')}@contoso.com`)
const w = await startWorld({ users: [ALICE, ...users] })
const server = await w.outgoingServer()
await w.connect(server.id)
for (let i = 0; i < MAILS; i++) await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: `Bench ${i}`, text: 'Hi' })
// The mailboxes as bench/mailboxes makes them: an incoming and an outgoing server each, one consent for both.
const servers: string[] = []
await load(MAILBOXES, 16, async (i) => {
  const user = users[i]!
  const incoming = (await w.mb.api('POST', '/api/v1/incoming-servers', { name: user, authentication: 'outlook', username: user, host: '127.0.0.1', port: 993, poll_interval_s: 60 })).json()
  const outgoing = await w.outgoingServer({ username: user, body: { name: user, from_filter: user } })
  const back = await w.connect(incoming.id, { kind: 'incoming', user })
  if (back.statusCode !== 302) throw new Error(`connect ${user}: ${back.statusCode} ${back.body}`)
  servers.push(outgoing.id)
})
// A day of attempts for the chart and the failure counts: ten per mailbox, one in ten failed.
const { db } = w.mb.services.database
const attempts = servers.flatMap((id, i) => Array.from({ length: 10 }, (_, j) => ({ id: newId(), mail_id: newId(), server_id: id, at: new Date(Date.now() - ((i * 10 + j) % 24) * 3_600_000).toISOString(), outcome: j === 0 ? ('failed' as const) : ('sent' as const), reply: '250 2.0.0 OK', reason: null })))
for (const group of groupsOf(attempts, 500)) await db.insertInto('mail_attempts').values(group).execute()
const admin = await adminClient(w.mb.app, w.mb.services)
const port = await freePort()
await w.mb.app.listen({ host: '127.0.0.1', port })
const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY })

const get = (path: string, cookie?: string) => () =>
  new Promise<void>((resolve, reject) => {
    http
      .get(`http://127.0.0.1:${port}${path}`, { agent, headers: cookie ? { cookie } : {} }, (res) => {
        res.resume()
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${path}: HTTP ${res.statusCode}`))))
      })
      .on('error', reject)
  })

const pages: Array<[string, () => Promise<void>]> = [
  ['/healthz (baseline)', get('/healthz')],
  ['/admin/settings', get('/admin/settings', admin.cookie)],
  [`/admin (home, ${MAILBOXES} mailboxes)`, get('/admin', admin.cookie)],
  ['/admin/outgoing-servers', get('/admin/outgoing-servers', admin.cookie)],
  [`/admin/outgoing-servers/:id`, get(`/admin/outgoing-servers/${server.id}`, admin.cookie)],
  ['/admin/parameters', get('/admin/parameters', admin.cookie)],
  [`/admin/mail (50 of ${MAILS})`, get('/admin/mail', admin.cookie)],
]
const rows = []
for (const [name, one] of pages) {
  await load(Math.min(200, N), CONCURRENCY, one) // warm up
  const t0 = performance.now()
  const lat = await load(N, CONCURRENCY, one)
  const s = (performance.now() - t0) / 1000
  rows.push({ page: name, 'req/s': Math.round(N / s), 'p50 ms': percentile(lat, 50), 'p99 ms': percentile(lat, 99) })
}
process.stdout.write(`${N} GETs per page, ${CONCURRENCY} at a time, signed in, ${MAILBOXES} mailboxes, ${w.mb.services.database.traits.dialect}\n${table(rows)}\n`)
agent.destroy()
await w.close()
