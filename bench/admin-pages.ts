/**
 * bench/admin-pages: how fast the admin UI renders its pages for a signed-in admin (session lookup, CSRF token,
 * the queries behind the page, HTML), beside /healthz on the same app as the baseline: one small query and JSON.
 * In-process over loopback HTTP with keep-alive; the mail queue page lists 50 of `mails` queued mails.
 *   npm run bench:ui -- [requests per page=2000] [concurrency=8] [mails=500]
 */
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import { adminClient } from '../test/support/admin-client.ts'
import { freePort } from '../test/support/process.ts'
import { startWorld } from '../test/support/world.ts'
import { load, percentile, table } from './lib.ts'

const N = Number(process.argv[2] ?? 2000)
const CONCURRENCY = Number(process.argv[3] ?? 8)
const MAILS = Number(process.argv[4] ?? 500)

const w = await startWorld()
const server = await w.outgoingServer()
await w.connect(server.id)
for (let i = 0; i < MAILS; i++) await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: `Bench ${i}`, text: 'Hi' })
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
process.stdout.write(`${N} GETs per page, ${CONCURRENCY} at a time, signed in, ${w.mb.services.database.traits.dialect}\n${table(rows)}\n`)
agent.destroy()
await w.close()
