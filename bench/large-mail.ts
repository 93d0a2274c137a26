/**
 * bench/large-mail: N mails with one attachment of M MB (random bytes) posted one after another to a Mailbridge
 * process's API and delivered to the SMTP peer, beside raw nodemailer sending the same mails to the same peer in
 * its own process. Prints each side's total time and peak resident memory (VmHWM): what a large mail costs the node.
 * `burst` posts every mail first and then waits for the deliveries: the queue then holds them all at once.
 *   npm run bench:large-mail -- [mails=10] [megabytes=30] [burst]
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { promisify } from 'node:util'
import { API_TOKEN } from '../test/support/harness.ts'
import { startNode } from '../test/support/process.ts'
import { ALICE, startWorld } from '../test/support/world.ts'
import { productionBuild, progress, table } from './lib.ts'

const N = Number(process.argv[2] ?? 10)
const MB = 1024 * 1024
const BYTES = Number(process.argv[3] ?? 30) * MB
const BURST = process.argv[4] === 'burst'
const run = promisify(execFile)
/** The process's resident memory now and at its peak, in bytes (/proc/<pid>/status). */
const memory = (pid: number) => {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024
  return { rss: kb('VmRSS'), peak: kb('VmHWM') }
}

// A tenant whose admin raised the message size limit to 150 MB: a 30 MB attachment is ~41 MB encoded.
const w = await startWorld({ shared: true, smtp: { maxMessageBytes: 150 * MB } })
const server = await w.outgoingServer()
await w.connect(server.id)
await w.mb.api('PATCH', `/api/v1/outgoing-servers/${server.id}`, { max_per_minute: null })
/** Wait for the next delivery and forget it: the peer keeps messages in this process's memory. */
const delivered = async () => {
  await w.smtp.waitFor(1, 300_000)
  const got = w.smtp.messages.shift()!
  if (got.raw.length < BYTES) throw new Error(`the peer got ${got.raw.length} bytes, less than the attachment`)
}

// 1. Raw nodemailer, one mail after another.
const token = w.ms.mintAccessToken({ user: ALICE, ttlSeconds: 3600 })
const rawRun = run(process.execPath, ['--import', 'tsx', 'bench/raw-nodemailer-large.ts', String(w.smtp.port), token, String(N), String(BYTES)])
for (let i = 0; i < N; i++) {
  await delivered()
  progress('raw nodemailer', i + 1, N)
}
const raw = JSON.parse((await rawRun).stdout) as { seconds: number; peakRssBytes: number }

// 2. Mailbridge as its own process (the production build): from the first POST to the last 250 at the peer.
const node = await startNode(w.nodeEnv({ MAILBRIDGE_QUEUE_POLL_MS: '50' }), ['serve'], [], await productionBuild())
const idle = memory(node.child.pid!)
const t0 = performance.now()
for (let i = 0; i < N; i++) {
  const body = JSON.stringify({ from: ALICE, to: ['bob@fabrikam.com'], subject: `Large ${i}`, text: 'The scan is attached.', attachments: [{ filename: `scan-${i}.pdf`, content_type: 'application/pdf', content_base64: randomBytes(BYTES).toString('base64') }] })
  const res = await fetch(`${node.url}/api/v1/mail`, { method: 'POST', headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' }, body })
  if (res.status !== 202) throw new Error(`POST /api/v1/mail answered ${res.status}: ${await res.text()}`)
  if (BURST) continue
  await delivered()
  progress('mailbridge (delivered)', i + 1, N)
}
for (let i = 0; BURST && i < N; i++) await delivered()
const mbSeconds = (performance.now() - t0) / 1000
const mb = memory(node.child.pid!)
node.child.kill('SIGTERM')
await node.exited
await w.close()

const mib = (b: number) => Math.round(b / MB)
console.log(`\nbench/large-mail: ${N} mails with a ${mib(BYTES)} MB attachment each, ${BURST ? 'all posted, then delivered' : 'one after another'}, SMTP peer on loopback (STARTTLS + XOAUTH2), ${new Date().toISOString()}\n`)
console.log(
  table([
    { what: 'raw nodemailer (own process)', seconds: raw.seconds, 'MB/s': (N * BYTES) / MB / raw.seconds, 'peak RSS MB': mib(raw.peakRssBytes), 'idle RSS MB': '-' },
    { what: 'Mailbridge API → SMTP (202 → 250)', seconds: mbSeconds, 'MB/s': (N * BYTES) / MB / mbSeconds, 'peak RSS MB': mib(mb.peak), 'idle RSS MB': mib(idle.rss) },
  ]),
)
console.log(`\nMailbridge's peak above idle: ${mib(mb.peak - idle.rss)} MB for a ${mib(BYTES)} MB mail (${((mb.peak - idle.rss) / BYTES).toFixed(1)}x its size)`)
console.log(`ratio time Mailbridge / raw nodemailer: ${(mbSeconds / raw.seconds).toFixed(2)}`)
process.exit(0)
