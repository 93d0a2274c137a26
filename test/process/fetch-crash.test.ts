import assert from 'node:assert/strict'
import { test } from 'node:test'
import { dovecotAvailable } from '../support/dovecot.ts'
import { rfc822, startMailroom } from '../support/mailroom.ts'
import { startNode } from '../support/process.ts'
import { ALICE } from '../support/world.ts'

const MESSAGES = 1500
const skip = dovecotAvailable() ? false : 'Dovecot is not installed: run .ci/install-peers.sh'

test('fetch: SIGKILL mid-sync, restart → every message stored exactly once and \\Seen, none lost', { skip }, async (t) => {
  // Set up the database in-process (settings, consent, a confirmed server), then hand it to real processes.
  const room = await startMailroom({ shared: true })
  t.after(room.close)
  const server = await room.confirmedServer()
  await room.dovecot.seedMany(ALICE, Array.from({ length: MESSAGES }, (_, i) => rfc822({ subject: `crash ${i}`, messageId: `<crash-${i}@fabrikam.com>`, body: `line ${i}\r\n`.repeat(40) })))
  const env = room.nodeEnv({ MAILBRIDGE_FETCH_POLL_MS: '100', MAILBRIDGE_FETCH_LEASE_S: '2', NODE_EXTRA_CA_CERTS: 'test/support/tls/ca.pem' })
  const watcher = room.mb.services.database
  const stored = async () => Number((await watcher.db.selectFrom('messages').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n)

  const first = await startNode(env)
  t.after(() => first.child.kill('SIGKILL'))
  for (const deadline = Date.now() + 60_000; (await stored()) < 300 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20))
  first.child.kill('SIGKILL')
  await first.exited
  const atKill = await stored()
  assert.ok(atKill >= 300 && atKill < MESSAGES, `the kill came mid-sync (${atKill} of ${MESSAGES} stored)`)
  // Nothing the dead process did not commit is marked \Seen.
  const seenAtKill = (await room.dovecot.flags(ALICE)).filter((f) => f.flags.includes('\\Seen')).length
  assert.ok(seenAtKill <= atKill, `\\Seen (${seenAtKill}) never runs ahead of the store (${atKill})`)

  const second = await startNode(env)
  t.after(() => second.child.kill('SIGKILL'))
  for (const deadline = Date.now() + 120_000; (await stored()) < MESSAGES && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 100))
  const rows = await watcher.db.selectFrom('messages').select(['uid', 'message_id']).where('server_id', '=', server.id).execute()
  assert.equal(rows.length, MESSAGES, 'every message was stored')
  assert.equal(new Set(rows.map((r) => r.uid)).size, MESSAGES, 'each UID once')
  assert.equal(new Set(rows.map((r) => r.message_id)).size, MESSAGES, 'each Message-ID once')
  // \Seen follows the commit of the last batch; wait for the fetch to finish.
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    const s = await watcher.db.selectFrom('incoming_servers').select(['lease_owner', 'last_fetch_at']).where('id', '=', server.id).executeTakeFirstOrThrow()
    if (!s.lease_owner && s.last_fetch_at) break
  }
  assert.equal((await room.dovecot.flags(ALICE)).filter((f) => f.flags.includes('\\Seen')).length, MESSAGES)
  second.child.kill('SIGTERM')
  assert.equal(await second.exited, 0, second.output())
})
