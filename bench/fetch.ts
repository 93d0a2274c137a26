/**
 * bench/fetch: N messages of mixed sizes seeded into a real Dovecot (XOAUTH2 over implicit TLS on loopback), fetched
 * and stored by Mailbridge (its own `serve` process, Fetch Now: UID FETCH in batches, mailparser, one transaction
 * per batch with raw + parsed fields + threads, then \Seen) beside raw imapflow fetching the same messages in its
 * own process (one streamed UID FETCH, nothing stored), in the same run.
 *   npm run bench:fetch -- [messages=5000]
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { promisify } from 'node:util'
import { API_TOKEN } from '../test/support/harness.ts'
import { startMailroom } from '../test/support/mailroom.ts'
import { startNode } from '../test/support/process.ts'
import { ALICE } from '../test/support/world.ts'
import { progress, table } from './lib.ts'

const N = Number(process.argv[2] ?? 5000)
const run = promisify(execFile)

/** Mixed sizes, as a business inbox sees them: 70 % short notes, 25 % with a 20-60 kB attachment, 5 % with 0.3-1 MB. */
function message(i: number): Buffer {
  const head = `From: Customer ${i % 97} <customer${i % 97}@fabrikam.com>\r\nTo: ${ALICE}\r\nSubject: Bench message ${i}\r\nMessage-ID: <bench-${i}@fabrikam.com>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n`
  const text = `Hello,\r\n\r\n${`This is line ${i} of a business mail about order ${i}.\r\n`.repeat(20 + (i % 30))}\r\nRegards\r\n`
  const kind = i % 20
  if (kind < 14) return Buffer.from(`${head}Content-Type: text/plain; charset=utf-8\r\n\r\n${text}`)
  const size = kind < 19 ? 20_000 + (i % 40) * 1000 : 300_000 + (i % 7) * 100_000
  const file = randomBytes(size).toString('base64').replace(/.{76}/g, '$&\r\n')
  return Buffer.from(
    `${head}Content-Type: multipart/mixed; boundary=b${i}\r\n\r\n--b${i}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${text}\r\n` +
      `--b${i}\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="order-${i}.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n${file}\r\n--b${i}--\r\n`,
  )
}

const room = await startMailroom({ shared: true })
const server = await room.confirmedServer()
const raws = Array.from({ length: N }, (_, i) => message(i))
const totalBytes = raws.reduce((n, r) => n + r.length, 0)
await room.dovecot.seedMany(ALICE, raws)
progress('seeded', N, N)

// 1. Raw imapflow, read-only (the messages stay unseen for Mailbridge).
const token = room.ms.mintAccessToken({ user: ALICE, ttlSeconds: 3600 })
const raw = JSON.parse((await run(process.execPath, ['--import', 'tsx', 'bench/raw-imapflow.ts', room.dovecot.host, String(room.dovecot.imapsPort), ALICE, token])).stdout) as { seconds: number; messages: number; bytes: number }
if (raw.messages !== N) throw new Error(`raw imapflow fetched ${raw.messages} of ${N}`)
progress('raw imapflow', N, N)

// 2. Mailbridge as its own process: Fetch Now, from the request to its answer (everything stored and \Seen).
const node = await startNode(room.nodeEnv({
  // Only Fetch Now runs: the scheduler would race it for the lease.
  MAILBRIDGE_FETCH_POLL_MS: '600000',
  MAILBRIDGE_FETCH_BATCH: process.env.BENCH_BATCH ?? '50',
}), ['serve', '--role', 'web'], process.env.BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`] : [])
const t0 = performance.now()
const res = await fetch(`${node.url}/api/v1/incoming-servers/${server.id}/fetch`, { method: 'POST', headers: { authorization: `Bearer ${API_TOKEN}` } })
const mbSeconds = (performance.now() - t0) / 1000
const result = (await res.json()) as { stored: number }
if (result.stored !== N) throw new Error(`Mailbridge stored ${JSON.stringify(result)} of ${N}`)
const cpu = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) / 100 }
const mbCpu = cpu(node.child.pid!)
const seen = (await room.dovecot.flags(ALICE)).filter((f) => f.flags.includes('\\Seen')).length
node.child.kill('SIGTERM')
await node.exited
await room.close()


console.log(`\nbench/fetch: ${N} messages, ${(totalBytes / 1e6).toFixed(1)} MB (70 % notes, 25 % 20-60 kB attachment, 5 % 0.3-1 MB), Dovecot on loopback (TLS + XOAUTH2), ${new Date().toISOString()}\n`)
console.log(
  table([
    { what: 'raw imapflow (one UID FETCH 1:*, nothing stored)', 'msgs/s': raw.messages / raw.seconds, 'MB/s': raw.bytes / 1e6 / raw.seconds, seconds: raw.seconds },
    { what: 'Mailbridge Fetch Now (batches, parse, store, \\Seen)', 'msgs/s': (N / mbSeconds), 'MB/s': totalBytes / 1e6 / mbSeconds, seconds: mbSeconds },
  ]),
)
console.log(`\nCPU: Mailbridge process ${mbCpu.toFixed(2)} s (whole run, including start-up); ${seen} of ${N} messages \\Seen afterwards.`)
console.log(`ratio Mailbridge / raw imapflow: ${(raw.seconds / mbSeconds).toFixed(2)} (target ≥ 0.70)`)
process.exit(0)
