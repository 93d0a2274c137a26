import assert from 'node:assert/strict'
import { test } from 'node:test'
import { postMail, startNode, type Node } from '../support/process.ts'
import { startWorld, type World } from '../support/world.ts'

const MAILS = 300
/** What one node may have had on the wire at the kill: 3 connections × 8 mails each (outgoing/worker.ts). */
const IN_FLIGHT = 24

/** A world whose peer answers slowly, with its outgoing server connected and unthrottled. */
async function slowWorld(t: { after: (fn: () => Promise<void>) => void }): Promise<World> {
  const w = await startWorld({ shared: true, smtp: { delayMs: 20 } })
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  await w.mb.api('PATCH', `/api/v1/outgoing-servers/${server.id}`, { max_per_minute: null })
  return w
}

async function queue(node: Node): Promise<void> {
  for (let i = 0; i < MAILS; i++) assert.equal((await postMail(node, `resume ${i}`)).status, 202)
}

async function kill(node: Node): Promise<void> {
  node.child.kill('SIGKILL')
  await node.exited
}

/** Every mail delivered (at least once), and duplicates only among those the dead node may have had in flight. */
async function allDelivered(w: World, deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs
  const unique = async () => new Set(await w.smtp.messageIds()).size
  while ((await unique()) < MAILS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200))
  assert.equal(await unique(), MAILS, 'every mail was delivered, each with the Message-ID it was given')
  const duplicates = w.smtp.messages.length - MAILS
  assert.ok(duplicates <= IN_FLIGHT, `duplicates (${duplicates}) stay within what the dead node had in flight (${IN_FLIGHT})`)
}

test('queue: after kill -9 with 300 queued, a node restarted on SQLite sends its first mail within seconds, not after the leases', async (t) => {
  const w = await slowWorld(t)
  if (!w.mb.services.database.traits.oneMachine) return t.skip('the restart on one machine is SQLite\'s case')
  // Leases of 300 s per mail (the default) and 120 s per SMTP slot: a mail before either runs out can only come from
  // the release of the dead node's work, so the bound below is the lease, not a speed target.
  const env = w.nodeEnv({ MAILBRIDGE_QUEUE_POLL_MS: '100', MAILBRIDGE_SMTP_SLOT_LEASE_S: '120' })
  const first = await startNode(env)
  t.after(() => first.child.kill('SIGKILL'))
  await queue(first)
  await w.smtp.waitFor(30, 30_000)
  await kill(first)
  const atKill = w.smtp.messages.length
  assert.ok(atKill < MAILS, `the kill came mid-queue (${atKill} of ${MAILS} delivered)`)

  const restarted = Date.now()
  const second = await startNode(env)
  t.after(() => second.child.kill('SIGKILL'))
  await w.smtp.waitFor(atKill + 1, 130_000)
  const firstAfter = (w.smtp.messages[atKill]!.at.getTime() - restarted) / 1000
  assert.ok(firstAfter < 120, `the first mail after the restart went out ${firstAfter.toFixed(1)} s after it, before the dead node's leases (slots 120 s, mails 300 s) ran out`)
  await allDelivered(w, 60_000)
})

test('queue: two nodes on PostgreSQL, one killed -9: the other hands back its mails and slots and sends them all', async (t) => {
  const w = await slowWorld(t)
  if (w.mb.services.database.traits.oneMachine) return t.skip('nodes on several machines share only PostgreSQL')
  const env = w.nodeEnv({ MAILBRIDGE_QUEUE_POLL_MS: '100', MAILBRIDGE_NODE_DEAD_S: '3' })
  // One after the other, each reaped once it runs: a node left running when the other fails to start would keep
  // the file's process alive.
  const a = await startNode(env)
  t.after(() => a.child.kill('SIGKILL'))
  const b = await startNode(env)
  t.after(() => b.child.kill('SIGKILL'))
  await queue(a)
  await w.smtp.waitFor(30, 30_000)
  await kill(a)
  assert.ok(w.smtp.messages.length < MAILS, 'the kill came mid-queue')
  // A's mails wait 300 s for their leases unless B finds A dead (3 s of silence) and hands them back.
  await allDelivered(w, 60_000)
  const left = await w.mb.services.database.db.selectFrom('mails').select('state').where('state', '!=', 'sent').execute()
  assert.equal(left.length, 0)
})
