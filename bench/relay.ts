/**
 * bench/relay: the SMTP relay beside the JSON API, in the same run, against the same Mailbridge process and the
 * same SMTP peer (STARTTLS + XOAUTH2 on loopback). Each phase sends N mails and is measured from the client's
 * first request to the last mail arriving at the peer (so process start-up is not counted); accept rate and
 * latency are measured in the client. Clients run in their own processes; the peer and the identity emulator
 * run in this one.
 *   npm run bench:relay -- [mails=2000] [concurrency=20]
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { API_TOKEN } from '../test/support/harness.ts'
import { freePort, startNode } from '../test/support/process.ts'
import { startWorld } from '../test/support/world.ts'
import { percentile, progress, table } from './lib.ts'

const N = Number(process.argv[2] ?? 2000)
const CONCURRENCY = Number(process.argv[3] ?? 20)
const USER = 'bench-relay'
const PASSWORD = randomBytes(12).toString('base64url')
const run = promisify(execFile)
const tsx = (script: string, ...args: string[]) =>
  run(process.execPath, ['--import', 'tsx', script, ...args], { maxBuffer: 64 * 1024 * 1024 }).then((r) => JSON.parse(r.stdout) as Accept)

const w = await startWorld({ shared: true })
const server = await w.outgoingServer()
await w.connect(server.id)
await w.mb.api('PATCH', `/api/v1/outgoing-servers/${server.id}`, { max_per_minute: null })
await w.mb.api('POST', '/api/v1/relay-users', { username: USER, password: PASSWORD })

const relayPort = await freePort()
const tls = new URL('../test/support/tls/', import.meta.url).pathname
const node = await startNode(
  w.nodeEnv({ MAILBRIDGE_QUEUE_POLL_MS: '50', MAILBRIDGE_RELAY_PORT: String(relayPort), MAILBRIDGE_RELAY_TLS_CERT: join(tls, 'cert.pem'), MAILBRIDGE_RELAY_TLS_KEY: join(tls, 'key.pem') }),
  ['serve'],
  process.env.BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`] : [],
)

interface Accept { seconds: number; latencies: number[]; started: number }
interface Phase { what: string; accept: Accept; endToEnd: number; deliveredAtAccept: number }
const phases: Phase[] = []
/** One phase: N mails from a client process, timed until the peer has them all. */
async function phase(what: string, n: number, client: () => Promise<Accept>): Promise<void> {
  const before = w.smtp.messages.length
  const timer = setInterval(() => progress(`${what} (delivered)`, w.smtp.messages.length - before, n), 1000)
  const accept = await client()
  const deliveredAtAccept = w.smtp.messages.length - before
  await w.smtp.waitFor(before + n, 600_000)
  clearInterval(timer)
  progress(`${what} (delivered)`, n, n)
  const last = Math.max(...w.smtp.messages.slice(before).map((m) => m.at.getTime()))
  phases.push({ what, accept, endToEnd: (last - accept.started) / 1000, deliveredAtAccept })
}

await phase('API', N, () => tsx('bench/http-load.ts', node.url, API_TOKEN, String(N), String(CONCURRENCY)))
await phase('relay, pooled', N, () => tsx('bench/relay-client.ts', String(relayPort), USER, PASSWORD, String(N), String(CONCURRENCY), 'pooled'))
// A printer opens a connection per mail: TLS handshake and an scrypt-checked AUTH each time; fewer mails suffice.
const fresh = Math.max(1, Math.round(N / 4))
await phase('relay, one connection per mail', fresh, () => tsx('bench/relay-client.ts', String(relayPort), USER, PASSWORD, String(fresh), String(CONCURRENCY), 'fresh'))

const cpu = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) / 100 }
const mbCpu = cpu(node.child.pid!)
node.child.kill('SIGTERM')
await node.exited
await w.close()

console.log(`\nbench/relay: ${N} mails per phase (${fresh} for one connection per mail), ${CONCURRENCY} concurrent clients, one Mailbridge process (serve --role all), SMTP peer on loopback (STARTTLS + XOAUTH2), ${new Date().toISOString()}\n`)
console.log(
  table(
    phases.flatMap((p) => {
      const n = p.accept.latencies.length
      return [
        { what: `${p.what}: accept`, 'mails/s': n / p.accept.seconds, seconds: p.accept.seconds, 'p50 ms': percentile(p.accept.latencies, 50), 'p99 ms': percentile(p.accept.latencies, 99) },
        { what: `${p.what}: end to end`, 'mails/s': n / p.endToEnd, seconds: p.endToEnd, 'p50 ms': '-', 'p99 ms': '-' },
      ]
    }),
  ),
)
for (const p of phases) console.log(`${p.what}: ${p.deliveredAtAccept} of ${p.accept.latencies.length} were already delivered when the client finished.`)
const [api, pooled] = phases
console.log(`\nratio relay (pooled) / API, accept: ${(pooled!.accept.latencies.length / pooled!.accept.seconds / (api!.accept.latencies.length / api!.accept.seconds)).toFixed(2)}; end to end: ${(api!.endToEnd / pooled!.endToEnd).toFixed(2)}`)
console.log(`CPU: Mailbridge process ${mbCpu.toFixed(2)} s over the whole run`)
process.exit(0)
