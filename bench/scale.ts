/**
 * bench/scale: worker nodes on one database. An SMTP peer adds 20 ms per message (like a remote Exchange); mail
 * is spread over several mailboxes (Exchange allows 3 connections per mailbox, so one mailbox alone cannot scale).
 * Measures 1, 2 and 3 `serve --role worker` processes on PostgreSQL, and one on SQLite, in one run: mails/s from
 * the moment the queued mail is released (the nodes already running) to the last 250, and the ratio to one
 * PostgreSQL node.
 *   npm run bench:scale -- [mails=1800] [mailboxes=6]
 */
import { performance } from 'node:perf_hooks'
import { startNode, type Node } from '../test/support/process.ts'
import { startWorld } from '../test/support/world.ts'
import { progress, table } from './lib.ts'

const N = Number(process.argv[2] ?? 1800)
const MAILBOXES = Number(process.argv[3] ?? 6)
const POSTGRES = process.env.MAILBRIDGE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

async function run(database: 'sqlite' | 'postgres', nodes: number): Promise<number> {
  process.env.MAILBRIDGE_TEST_DATABASE_URL = database === 'postgres' ? POSTGRES : ''
  const users = Array.from({ length: MAILBOXES }, (_, i) => `box${i}@contoso.com`)
  const w = await startWorld({ shared: true, users, smtp: { delayMs: 20 } })
  try {
    for (const user of users) {
      const server = await w.outgoingServer({ username: user, body: { name: user, max_per_minute: null } })
      await w.connect(server.id, { user })
    }
    // Hold the servers while the nodes start (start-up is not what this measures), then let go at once.
    const { db } = w.mb.services.database
    await db.updateTable('outgoing_servers').set({ paused_until: '9999-12-31T00:00:00.000Z', pause_reason: 'bench: waiting for the nodes' }).execute()
    for (let i = 0; i < N; i++) {
      const from = users[i % MAILBOXES]!
      await w.mb.services.mails.accept({ from, to: ['bob@fabrikam.com'], subject: `Scale ${i}`, text: `Hello ${i}\n`.repeat(20) })
    }
    const env = w.nodeEnv({ MAILBRIDGE_QUEUE_POLL_MS: '50' })
    const started: Node[] = await Promise.all(Array.from({ length: nodes }, () => startNode(env, ['serve', '--role', 'worker'])))
    await new Promise((r) => setTimeout(r, 2000)) // let every node register its heartbeat
    const t0 = performance.now()
    await db.updateTable('outgoing_servers').set({ paused_until: null, pause_reason: null }).execute()
    const timer = setInterval(() => progress(`${database} × ${nodes}`, w.smtp.messages.length, N), 2000)
    await w.smtp.waitFor(N, 600_000)
    const seconds = (performance.now() - t0) / 1000
    clearInterval(timer)
    for (const n of started) n.child.kill('SIGTERM')
    await Promise.all(started.map((n) => n.exited))
    if (w.smtp.connections.max > 3 * MAILBOXES) throw new Error(`saw ${w.smtp.connections.max} connections for ${MAILBOXES} mailboxes`)
    return N / seconds
  } finally {
    await w.close()
  }
}

const rows: Array<Record<string, string | number>> = []
const pg1 = await run('postgres', 1)
rows.push({ database: 'PostgreSQL', nodes: 1, 'mails/s': pg1, 'ratio to 1 PG node': 1 })
for (const nodes of [2, 3]) {
  const rate = await run('postgres', nodes)
  rows.push({ database: 'PostgreSQL', nodes, 'mails/s': rate, 'ratio to 1 PG node': rate / pg1 })
}
const sqlite = await run('sqlite', 1)
rows.push({ database: 'SQLite', nodes: 1, 'mails/s': sqlite, 'ratio to 1 PG node': sqlite / pg1 })
console.log(`\nbench/scale: ${N} mails over ${MAILBOXES} mailboxes, SMTP peer +20 ms per message, ${new Date().toISOString()}\n`)
console.log(table(rows))
console.log('\nThe clock starts when the servers are released, after every node has started; the machine has 2 cores.')
process.exit(0)
