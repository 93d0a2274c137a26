/**
 * bench/send: N mails through Mailbridge's API to the SMTP peer (STARTTLS + XOAUTH2 on loopback), end to end
 * (first POST → last 250 at the peer), beside raw nodemailer (pooled, 3 connections) sending the same messages
 * to the same peer, and a bare fastify route under the same HTTP load. Every client runs in its own process;
 * the peer and the identity emulator run in this one.
 *   npm run bench:send -- [mails=5000] [concurrency=50]
 */
import { execFile, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { promisify } from 'node:util'
import { API_TOKEN } from '../test/support/harness.ts'
import { freePort, startNode } from '../test/support/process.ts'
import { ALICE, startWorld } from '../test/support/world.ts'
import { percentile, progress, table } from './lib.ts'

const N = Number(process.argv[2] ?? 5000)
const CONCURRENCY = Number(process.argv[3] ?? 50)
const run = promisify(execFile)
const tsx = (script: string, ...args: string[]) =>
  run(process.execPath, ['--import', 'tsx', script, ...args], { maxBuffer: 64 * 1024 * 1024 }).then((r) => JSON.parse(r.stdout) as { seconds: number; latencies?: number[] })

const w = await startWorld({ shared: true })
const server = await w.outgoingServer()
await w.connect(server.id)
await w.mb.api('PATCH', `/api/v1/outgoing-servers/${server.id}`, { max_per_minute: null })

// 1. Raw nodemailer.
const token = w.ms.mintAccessToken({ user: ALICE, ttlSeconds: 3600 })
const raw = await tsx('bench/raw-nodemailer.ts', String(w.smtp.port), token, String(N))
if (w.smtp.messages.length !== N) throw new Error(`raw nodemailer delivered ${w.smtp.messages.length} of ${N}`)
w.smtp.messages.length = 0
progress('raw nodemailer', N, N)

// 2. A bare fastify route under the same HTTP load: the floor for accept latency.
const barePort = await freePort()
const bareProc = spawn(process.execPath, ['--import', 'tsx', 'bench/bare-fastify.ts'], { env: { ...process.env, PORT: String(barePort) }, stdio: ['ignore', 'pipe', 'inherit'] })
await new Promise((r) => bareProc.stdout!.once('data', r))
const bare = await tsx('bench/http-load.ts', `http://127.0.0.1:${barePort}`, API_TOKEN, String(N), String(CONCURRENCY))
bareProc.kill()
progress('bare fastify', N, N)

// 3. Mailbridge as its own process: from the first POST to the last 250 at the peer.
const node = await startNode(w.nodeEnv({ MAILBRIDGE_QUEUE_POLL_MS: '50' }), ['serve'], process.env.BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`] : [])
const t0 = performance.now()
const timer = setInterval(() => progress('mailbridge (delivered)', w.smtp.messages.length, N), 1000)
const mb = await tsx('bench/http-load.ts', node.url, API_TOKEN, String(N), String(CONCURRENCY))
const deliveredAtAccept = w.smtp.messages.length
await w.smtp.waitFor(N, 600_000)
const mbSeconds = (performance.now() - t0) / 1000
clearInterval(timer)
const cpu = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) / 100 }
const mbCpu = cpu(node.child.pid!)
const selfCpu = process.cpuUsage()
node.child.kill('SIGTERM')
await node.exited
await w.close()

const rawRate = N / raw.seconds
const mbRate = N / mbSeconds
console.log(`\nbench/send: ${N} mails, ${CONCURRENCY} concurrent API clients, SMTP peer on loopback (STARTTLS + XOAUTH2), ${new Date().toISOString()}\n`)
console.log(
  table([
    { what: 'raw nodemailer pool (3 conns)', 'mails/s': rawRate, seconds: raw.seconds, 'p50 ms': '-', 'p99 ms': '-' },
    { what: 'bare fastify route (accept only)', 'mails/s': N / bare.seconds, seconds: bare.seconds, 'p50 ms': percentile(bare.latencies!, 50), 'p99 ms': percentile(bare.latencies!, 99) },
    { what: 'Mailbridge API accept (202)', 'mails/s': N / mb.seconds, seconds: mb.seconds, 'p50 ms': percentile(mb.latencies!, 50), 'p99 ms': percentile(mb.latencies!, 99) },
    { what: 'Mailbridge end to end (202 → 250)', 'mails/s': mbRate, seconds: mbSeconds, 'p50 ms': '-', 'p99 ms': '-' },
  ]),
)
console.log(`\nCPU: Mailbridge process ${mbCpu.toFixed(2)} s; peer + emulator process ${((selfCpu.user + selfCpu.system) / 1e6).toFixed(2)} s (whole run)`)
console.log(`${deliveredAtAccept} of ${N} were already delivered when the last 202 came back.`)
console.log(`ratio Mailbridge end to end / raw nodemailer: ${(mbRate / rawRate).toFixed(2)} (target ≥ 0.80)`)
process.exit(0)
