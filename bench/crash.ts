/**
 * npm run bench:crash [-- mails] — after `kill -9` of a `serve` node with mails queued, how soon a restarted node
 * sends again: seconds from the restart to the first delivered mail and to the last, beside the same run with a
 * clean stop (SIGTERM, which hands the leases back itself) as the baseline. The SMTP peer answers in 20 ms, so the
 * queue is still full at the stop. SQLite unless MAILBRIDGE_TEST_DATABASE_URL names a PostgreSQL database.
 */
import { postMail, startNode } from '../test/support/process.ts'
import { startWorld } from '../test/support/world.ts'
import { table } from './lib.ts'

const MAILS = Number(process.argv[2] ?? 300)

async function run(signal: 'SIGKILL' | 'SIGTERM') {
  const w = await startWorld({ shared: true, smtp: { delayMs: 20 } })
  try {
    const server = await w.outgoingServer()
    await w.connect(server.id)
    await w.mb.api('PATCH', `/api/v1/outgoing-servers/${server.id}`, { max_per_minute: null })
    const env = w.nodeEnv({ MAILBRIDGE_QUEUE_POLL_MS: '100' })
    const first = await startNode(env)
    for (let i = 0; i < MAILS; i++) await postMail(first, `crash ${i}`)
    await w.smtp.waitFor(Math.min(30, MAILS - 1), 60_000)
    first.child.kill(signal)
    await first.exited
    const atStop = w.smtp.messages.length
    const restarted = Date.now()
    const second = await startNode(env)
    try {
      await w.smtp.waitFor(atStop + 1, 600_000)
      const firstAfter = (w.smtp.messages[atStop]!.at.getTime() - restarted) / 1000
      // Mails the dead node had on the wire may arrive twice: count distinct Message-IDs.
      while (new Set(await w.smtp.messageIds()).size < MAILS) await new Promise((r) => setTimeout(r, 500))
      const lastAfter = (Math.max(...w.smtp.messages.map((m) => m.at.getTime())) - restarted) / 1000
      return { stop: signal === 'SIGKILL' ? 'kill -9' : 'SIGTERM (baseline)', 'delivered before the stop': atStop, 'first after restart (s)': firstAfter, 'last after restart (s)': lastAfter, duplicates: w.smtp.messages.length - MAILS }
    } finally {
      second.child.kill('SIGKILL')
      await second.exited
    }
  } finally {
    await w.close()
  }
}

const rows = [await run('SIGTERM'), await run('SIGKILL')]
process.stdout.write(`${MAILS} mails queued, ${process.env.MAILBRIDGE_TEST_DATABASE_URL?.startsWith('postgres') ? 'PostgreSQL' : 'SQLite'}\n${table(rows)}\n`)
