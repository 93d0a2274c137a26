import assert from 'node:assert/strict'
import { test } from 'node:test'
import { dovecotAvailable } from '../support/dovecot.ts'
import { rfc822, startMailroom } from '../support/mailroom.ts'

const skip = dovecotAvailable() ? false : 'Dovecot is not installed: run .ci/install-peers.sh'
const users = Array.from({ length: 6 }, (_, i) => `box${i}@contoso.com`)
const hoursAgo = (h: number) => new Date(Date.now() - h * 3_600_000).toISOString()

/** A mailroom with one confirmed server and one new message per mailbox, and the scheduler's fetches watched. */
async function sixDueMailboxes(t: import('node:test').TestContext, concurrency: string) {
  const room = await startMailroom({ users, env: { MAILBRIDGE_FETCH_CONCURRENCY: concurrency } })
  t.after(room.close)
  const servers = []
  for (const [i, user] of users.entries()) {
    servers.push(await room.confirmedServer({ username: user, body: { name: user, poll_interval_s: 60 } }))
    await room.dovecot.seed(user, rfc822({ subject: `for ${user}`, messageId: `<due-${i}@fabrikam.com>`, to: user }))
  }
  const fetcher = room.mb.services.fetcher
  const original = fetcher.fetch.bind(fetcher)
  const waiters: Array<{ n: number; resolve: () => void }> = []
  const watched = {
    running: 0,
    most: 0,
    order: [] as string[],
    /** Resolves when the n-th fetch starts. */
    started: (n: number) => new Promise<void>((resolve) => (watched.order.length >= n ? resolve() : waiters.push({ n, resolve }))),
  }
  fetcher.fetch = async (id, o = {}) => {
    watched.order.push(id)
    for (const w of waiters) if (watched.order.length >= w.n) w.resolve()
    watched.most = Math.max(watched.most, ++watched.running)
    try {
      return await original(id, o)
    } finally {
      watched.running--
    }
  }
  return { room, servers, watched }
}

test('fetch scheduler: never more than MAILBRIDGE_FETCH_CONCURRENCY polls at once, the most overdue first, and every due server is polled', { skip }, async (t) => {
  const { room, servers, watched } = await sixDueMailboxes(t, '2')
  const { db } = room.mb.services.database
  // Due since: never fetched (server 4), then 5 h, 4 h, 3 h, 2 h and 1 h ago.
  const lastFetch = [hoursAgo(3), hoursAgo(1), hoursAgo(5), hoursAgo(2), null, hoursAgo(4)]
  for (const [i, s] of servers.entries()) await db.updateTable('incoming_servers').set({ last_fetch_at: lastFetch[i] }).where('id', '=', s.id).execute()
  assert.equal(await room.mb.services.scheduler.tick(), 6)
  assert.equal(await room.mb.services.scheduler.tick(), 0, 'a server queued or being fetched is not queued twice')
  await room.mb.services.scheduler.idle()
  assert.equal(watched.most, 2)
  assert.deepEqual(watched.order, [4, 2, 5, 0, 3, 1].map((i) => servers[i]!.id))
  const stored = await db.selectFrom('messages').select(['server_id']).execute()
  assert.deepEqual(new Set(stored.map((m) => m.server_id)), new Set(servers.map((s) => s.id)), 'one message stored per mailbox')
  assert.equal(await room.mb.services.scheduler.tick(), 0, 'none is due again before its poll interval')
})

test('fetch scheduler: a server edited back to draft while queued is not fetched; stop starts none of the queued polls', { skip }, async (t) => {
  const { room, servers, watched } = await sixDueMailboxes(t, '1')
  const { scheduler, incomingServers, database } = room.mb.services
  for (const [i, s] of servers.entries()) await database.db.updateTable('incoming_servers').set({ last_fetch_at: hoursAgo(6 - i) }).where('id', '=', s.id).execute()
  assert.equal(await scheduler.tick(), 6)
  await incomingServers.update(servers[1]!.id, { folder: 'Archive' })
  assert.equal((await incomingServers.get(servers[1]!.id)).state, 'draft')
  await watched.started(3)
  await scheduler.stop()
  assert.deepEqual(watched.order, [0, 2, 3].map((i) => servers[i]!.id), 'the draft server was skipped, and nothing started after stop')
  assert.equal(watched.running, 0, 'stop waited for the running poll')
  const polled = await database.db.selectFrom('incoming_servers').select('id').where('last_fetch_at', '>', hoursAgo(0.5)).execute()
  assert.deepEqual(new Set(polled.map((p) => p.id)), new Set([0, 2, 3].map((i) => servers[i]!.id)))
})
