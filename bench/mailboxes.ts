/**
 * bench/mailboxes: many connected mailboxes on one node. N Dovecot users (one Dovecot, XOAUTH2 over implicit TLS on
 * loopback), N users in the Microsoft emulator, and for each mailbox an incoming server (polled every 60 s) and an
 * outgoing server (from_filter = the mailbox, default per-minute limit), connected through the API + emulator
 * consent (one consent serves both) and confirmed with Test & Confirm. One mail is seeded into each mailbox, then:
 *   1. the baseline: raw imapflow polls the N mailboxes once (connect + XOAUTH2 + SELECT + UID SEARCH + UID FETCH,
 *      read-only, nothing stored) in its own process, with the same concurrency as the node;
 *   2. one real `mailbridge serve` node starts with every server due: the poll cycle runs from the first poll seen
 *      in the database to the last message's received_at (all N stored);
 *   3. one mail per mailbox goes out through POST /api/v1/mail, counted at the SMTP peer;
 *   4. the next round of polls (60 s after each server's first) is watched, so the steady state is measured too.
 * Prints the node's peak RSS (VmHWM), the most polls seen at once, its file descriptors, and the figures beside the
 * baseline.
 *   npm run bench:mailboxes -- [mailboxes=1000] [sqlite|postgres]
 * MAILBRIDGE_FETCH_CONCURRENCY is passed to the node (and used for the baseline) when set. BENCH_ROLE=worker runs the
 * node as `serve --role worker` (no HTTP, no background thread); the mails are then posted to the bench's own API.
 * The node runs as production runs it: the compiled build (BENCH_TSX=1: through tsx) with `node
 * --max-semi-space-size=2`; BENCH_NODE_ARGS (space-separated) replaces those flags (BENCH_NODE_ARGS= for none).
 */
import { execFile } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { API_TOKEN } from '../test/support/harness.ts'
import { rfc822, startMailroom } from '../test/support/mailroom.ts'
import { startNode } from '../test/support/process.ts'
import { load, productionBuild, table } from './lib.ts'

const N = Number(process.argv[2] ?? 1000)
const DATABASE = process.argv[3] === 'postgres' ? 'postgres' : 'sqlite'
const POSTGRES = process.env.MAILBRIDGE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const CONCURRENCY = Number(process.env.MAILBRIDGE_FETCH_CONCURRENCY ?? 20)
const SETUP_LANES = 16
const ROLE = process.env.BENCH_ROLE === 'worker' ? 'worker' : 'all'
const SERVE = ['serve', '--role', ROLE]
// The node as production runs it (README, Running in production), unless BENCH_NODE_ARGS says otherwise.
const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '--max-semi-space-size=2').split(' ').filter(Boolean)
// The node as production runs it: compiled (npm run build), unless BENCH_TSX=1.
const MAIN = await productionBuild()
const POLL_INTERVAL_S = 60
process.env.MAILBRIDGE_TEST_DATABASE_URL = DATABASE === 'postgres' ? POSTGRES : ''

const started = performance.now()
const say = (line: string) => process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`)
const users = Array.from({ length: N }, (_, i) => `box${String(i).padStart(4, '0')}@contoso.com`)

const room = await startMailroom({ shared: true, users })
const { db } = room.mb.services.database
say(`${DATABASE}: emulator with ${N} users, Dovecot, SMTP peer and the admin API up`)
const env: Record<string, string> = {}
if (process.env.MAILBRIDGE_FETCH_CONCURRENCY) env.MAILBRIDGE_FETCH_CONCURRENCY = process.env.MAILBRIDGE_FETCH_CONCURRENCY
const vm = (pid: number, key: string) => Number(/\d+/.exec(readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(key)) ?? '')?.[0] ?? NaN) / 1024

// 0. What the same node holds with no mailbox at all, for scale: started, a few seconds idle, stopped.
const empty = await startNode(room.nodeEnv(env), SERVE, NODE_ARGS, MAIN)
await new Promise((r) => setTimeout(r, 3000))
const emptyRss = vm(empty.child.pid!, 'VmHWM:')
empty.child.kill('SIGTERM')
await empty.exited
say(`an empty node peaks at ${emptyRss.toFixed(0)} MB`)

// 1. Every mailbox through the API, as an admin would: incoming + outgoing server, Connect (consent), Test & Confirm.
let t = performance.now()
let done = 0
await load(N, SETUP_LANES, async (i) => {
  const user = users[i]!
  const incoming = await room.incomingServer({ username: user, body: { name: user, poll_interval_s: POLL_INTERVAL_S } })
  await room.outgoingServer({ username: user, body: { name: user, from_filter: user } })
  const back = await room.connect(incoming.id, { kind: 'incoming', user })
  if (back.statusCode !== 302) throw new Error(`connect ${user}: ${back.statusCode} ${back.body}`)
  const test = await room.mb.api('POST', `/api/v1/incoming-servers/${incoming.id}/test`)
  if (!test.json().ok) throw new Error(`Test & Confirm ${user}: ${test.body}`)
  if (++done % Math.max(1, Math.floor(N / 10)) === 0) say(`connected and confirmed ${done}/${N}`)
})
const setupSeconds = (performance.now() - t) / 1000

// 2. One mail into each mailbox (doveadm save).
t = performance.now()
done = 0
await load(N, 4, async (i) => {
  const user = users[i]!
  await room.dovecot.seed(user, rfc822({ subject: `Order ${i}`, messageId: `<order-${i}@fabrikam.com>`, to: user }))
  if (++done % Math.max(1, Math.floor(N / 5)) === 0) say(`seeded ${done}/${N}`)
})
const seedSeconds = (performance.now() - t) / 1000

// 3. The baseline, in its own process: raw imapflow polling the same mailboxes once with the same concurrency.
say(`baseline: raw imapflow polling ${N} mailboxes, ${CONCURRENCY} at a time`)
const boxes = users.map((user) => ({ user, token: room.ms.mintAccessToken({ user, ttlSeconds: 3600 }) }))
const raw = await new Promise<{ seconds: number; mailboxes: number; messages: number; bytes: number; max_rss_mb: number }>((resolve, reject) => {
  const child = execFile(process.execPath, ['--import', 'tsx', 'bench/raw-imapflow-poll.ts', room.dovecot.host, String(room.dovecot.imapsPort), String(CONCURRENCY)], { maxBuffer: 1 << 20 }, (err, stdout) =>
    err ? reject(err) : resolve(JSON.parse(stdout)),
  )
  child.stdin!.end(JSON.stringify(boxes))
})
if (raw.messages !== N) throw new Error(`raw imapflow fetched ${raw.messages} of ${N}`)
say(`baseline: ${raw.seconds.toFixed(1)} s`)

// 4. One node with every server due. A sampler watches the database and the process while it runs.
interface Sample { at: number; polling: number; polled: number; stored: number; rssMb: number; fds: number }
const count = (n: unknown) => Number(n)
let pid = 0
let firstPollAt: number | undefined
let maxPolling = 0
let maxFds = 0
let last: Sample | undefined
let sampling = true
const procStatus = (key: string) => vm(pid, key)
/** CPU seconds (user + system) the node has used so far. */
const cpuSeconds = () => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(f[11]) + Number(f[12])) / 100
}
const sampler = (async () => {
  let lastSaid = 0
  while (sampling) {
    const s = await db
      .selectFrom('incoming_servers')
      .select((eb) => [
        eb.fn.count<number>('lease_owner').as('polling'),
        eb.fn.count<number>('last_fetch_at').as('polled'),
      ])
      .executeTakeFirstOrThrow()
    const stored = await db.selectFrom('messages').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
    const sample: Sample = { at: Date.now(), polling: count(s.polling), polled: count(s.polled), stored: count(stored.n), rssMb: 0, fds: 0 }
    if (pid) {
      try {
        sample.rssMb = procStatus('VmRSS:')
        sample.fds = readdirSync(`/proc/${pid}/fd`).length
      } catch {
        /* the node has exited */
      }
    }
    if (firstPollAt === undefined && (sample.polling > 0 || sample.polled > 0)) firstPollAt = sample.at
    maxPolling = Math.max(maxPolling, sample.polling)
    maxFds = Math.max(maxFds, sample.fds)
    last = sample
    if (sample.at - lastSaid >= 5000) {
      lastSaid = sample.at
      say(`node: ${sample.polling} polls running, ${sample.polled}/${N} servers polled, ${sample.stored}/${N} messages stored, RSS ${sample.rssMb.toFixed(0)} MB, ${sample.fds} fds`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
})()
const waitFor = async (what: string, ok: () => Promise<boolean>, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

say(`node: starting \`mailbridge serve\` with ${N} servers due`)
const node = await startNode(room.nodeEnv(env), SERVE, NODE_ARGS, MAIN)
pid = node.child.pid!
await waitFor(`${N} messages stored`, async () => (last?.stored ?? 0) >= N, 30 * 60_000)
const lastStored = await db.selectFrom('messages').select((eb) => eb.fn.max('received_at').as('at')).executeTakeFirstOrThrow()
const cycleEnd = Date.parse(String(lastStored.at))
const cycleSeconds = (cycleEnd - firstPollAt!) / 1000
const hwmAfterCycle = procStatus('VmHWM:')
say(`node: poll cycle over ${N} mailboxes in ${cycleSeconds.toFixed(1)} s`)

// 5. A mail each way: one mail per mailbox through the API, counted at the SMTP peer.
say(`sending ${N} mails through POST /api/v1/mail`)
t = performance.now()
await load(N, SETUP_LANES, async (i) => {
  const user = users[i]!
  const mail = { from: user, to: ['partner@fabrikam.com'], subject: `Re: Order ${i}`, text: `Thank you for order ${i}.\n` }
  const res =
    ROLE === 'worker'
      ? await room.mb.api('POST', '/api/v1/mail', mail).then((r) => ({ status: r.statusCode, text: async () => r.body }))
      : await fetch(`${node.url}/api/v1/mail`, { method: 'POST', headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(mail) })
  if (res.status !== 202) throw new Error(`POST /api/v1/mail for ${user}: ${res.status} ${await res.text()}`)
})
const acceptSeconds = (performance.now() - t) / 1000
let lastSent = 0
while (room.smtp.messages.length < N) {
  await room.smtp.waitFor(Math.min(N, room.smtp.messages.length + Math.max(1, Math.floor(N / 5))), 10 * 60_000)
  if (room.smtp.messages.length - lastSent >= N / 5 || room.smtp.messages.length === N) say(`sent ${(lastSent = room.smtp.messages.length)}/${N}`)
}
const sendSeconds = (Math.max(...room.smtp.messages.map((m) => m.at.getTime())) - (performance.timeOrigin + t)) / 1000
const senders = new Set(room.smtp.messages.map((m) => m.user)).size

// 6. The steady state: from now on, every server is polled again within about its 60 s interval if the node keeps up.
const round2From = new Date().toISOString()
const round2Cpu = cpuSeconds()
const round2Started = performance.now()
say('steady state: waiting until every server has been polled again (every 60 s per server)')
await waitFor('the second round of polls', async () => {
  const r = await db.selectFrom('incoming_servers').select((eb) => eb.fn.countAll<number>().as('n')).where('last_fetch_at', '>', round2From).executeTakeFirstOrThrow()
  return Number(r.n) >= N
}, 10 * 60_000)
const steadyCpu = (cpuSeconds() - round2Cpu) / ((performance.now() - round2Started) / 1000)
const round2 = await db.selectFrom('incoming_servers').select((eb) => [eb.fn.min('last_fetch_at').as('first'), eb.fn.max('last_fetch_at').as('last')]).executeTakeFirstOrThrow()
const errors = await db.selectFrom('incoming_servers').select((eb) => eb.fn.count<number>('last_error').as('n')).executeTakeFirstOrThrow()
const stored = await db.selectFrom('messages').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
const peakRss = procStatus('VmHWM:')
sampling = false
await sampler
node.child.kill('SIGTERM')
await node.exited
await room.close()

const at = new Date().toISOString()
console.log(`\nbench/mailboxes: ${N} mailboxes on one node (${DATABASE}, ${MAIN ? 'compiled build' : 'tsx'}: ${[...NODE_ARGS, 'serve', '--role', ROLE].join(' ')}), Dovecot on loopback (TLS + XOAUTH2), one new message each, polled every ${POLL_INTERVAL_S} s, ${at}\n`)
console.log(
  table([
    { what: `raw imapflow, own process (connect, XOAUTH2, SELECT, SEARCH, FETCH; nothing stored)`, concurrency: CONCURRENCY, seconds: raw.seconds, 'polls/s': raw.mailboxes / raw.seconds, messages: raw.messages, 'peak RSS MB': raw.max_rss_mb },
    { what: `Mailbridge node, first poll → last message stored (+ store, parse, \\Seen)`, concurrency: env.MAILBRIDGE_FETCH_CONCURRENCY ?? '20 (default)', seconds: cycleSeconds, 'polls/s': N / cycleSeconds, messages: Number(stored.n), 'peak RSS MB': hwmAfterCycle },
  ]),
)
console.log(`\nratio Mailbridge cycle / raw imapflow: ${(cycleSeconds / raw.seconds).toFixed(2)}× the time`)
console.log(`most polls seen running at once (leases, sampled every 100 ms): ${maxPolling}; most file descriptors of the node: ${maxFds}`)
console.log(`steady state: from ${round2From.slice(11, 19)} UTC every one of the ${N} servers was polled again within ${((Date.parse(String(round2.last)) - Date.parse(round2From)) / 1000).toFixed(1)} s (poll interval ${POLL_INTERVAL_S} s); servers with an error: ${Number(errors.n)}; messages stored in all: ${Number(stored.n)}; the node used ${(steadyCpu * 100).toFixed(0)} % of a core meanwhile`)
console.log(`sending: ${N} mails accepted in ${acceptSeconds.toFixed(1)} s, all ${room.smtp.messages.length} at the SMTP peer ${sendSeconds.toFixed(1)} s after the first POST (${senders} mailboxes sent), most SMTP connections at once ${room.smtp.connections.max}`)
console.log(`peak RSS of the node (VmHWM, whole run): ${peakRss.toFixed(0)} MB (target ≤ 300 MB); the same node with no mailbox: ${emptyRss.toFixed(0)} MB`)
console.log(`set-up (not measured against anything): ${N} mailboxes connected and confirmed through the API in ${setupSeconds.toFixed(1)} s, one mail each seeded in ${seedSeconds.toFixed(1)} s`)
process.exit(0)
