import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { createTestDatabase } from '../../test/support/harness.ts'
import { type Database, isoIn, migrate, newId, now, openDatabase } from '../db/index.ts'
import { claimDue, releaseLeases } from './lease.ts'

/** A fresh migrated database of the dialect under test (SQLite, or MAILBRIDGE_TEST_DATABASE_URL's PostgreSQL). */
async function fresh(t: TestContext): Promise<{ url: string; database: Database }> {
  const dir = mkdtempSync(join(tmpdir(), 'mailbridge-lease-'))
  const made = await createTestDatabase(dir)
  const database = openDatabase(made.url)
  await migrate(database.db, database.schema)
  t.after(async () => {
    await database.close()
    await made.drop()
    rmSync(dir, { recursive: true, force: true })
  })
  return { url: made.url, database }
}

const queueMails = (database: Database, n: number, o: { dueInMs?: number } = {}) =>
  database.db
    .insertInto('mails')
    .values(
      Array.from({ length: n }, (_, i) => {
        const at = now()
        return { id: newId(), state: 'outgoing' as const, message_id: `<${i}.${newId()}@test>`, from_addr: 'a@contoso.com', to_addrs: '[]', cc_addrs: '[]', bcc_addrs: '[]', subject: `m${i}`, content: '{}', size: 1, server_id: 's1', next_attempt_at: isoIn((o.dueInMs ?? 0) - n + i), created_at: at, updated_at: at }
      }),
    )
    .returning('id')
    .execute()

const claimMails = (database: Database, owner: string, limit: number, leaseMs = 60_000) => {
  const at = now()
  return claimDue(database, {
    table: 'mails',
    due: (eb) => eb.and([eb('state', '=', 'outgoing'), eb('next_attempt_at', '<=', at)]),
    limit,
    set: () => ({ state: 'sending', lease_owner: owner, lease_until: isoIn(leaseMs), last_attempt_at: at }),
    returning: ['id', 'subject', 'lease_owner'],
  })
}

test('claimDue(): two claimers at once never get the same row; each gets the oldest due first, under its own lease', async (t) => {
  const { database } = await fresh(t)
  await queueMails(database, 10)
  await queueMails(database, 3, { dueInMs: 60_000 })
  const [a, b] = await Promise.all([claimMails(database, 'node-a', 4), claimMails(database, 'node-b', 4)])
  assert.equal(a!.length, 4)
  assert.equal(b!.length, 4)
  assert.equal(new Set([...a!, ...b!].map((m) => m.id)).size, 8, 'no mail was claimed twice')
  for (const [owner, got] of [['node-a', a!], ['node-b', b!]] as const) assert.ok(got.every((m) => m.lease_owner === owner))
  // Oldest due first: between them the two took m0…m7, each in order; m8 and m9 are left, the three not due untouched.
  assert.deepEqual([...a!, ...b!].map((m) => m.subject).sort(), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7'])
  for (const got of [a!, b!]) assert.deepEqual(got.map((m) => m.subject), got.map((m) => m.subject).sort())
  assert.deepEqual((await claimMails(database, 'node-c', 10)).map((m) => m.subject), ['m8', 'm9'])
  assert.deepEqual(await claimMails(database, 'node-c', 10), [], 'nothing due is left')
})

test('claimDue(): a limit read in the claim (a per-minute count) bounds it, and 0 claims nothing', async (t) => {
  const { database } = await fresh(t)
  await queueMails(database, 5)
  const at = now()
  const claim = (left: number) =>
    claimDue(database, {
      table: 'mails',
      due: (eb) => eb.and([eb('state', '=', 'outgoing'), eb('next_attempt_at', '<=', at)]),
      limit: async (tx) => left - Number((await tx.selectFrom('mails').select((eb) => eb.fn.countAll<number>().as('n')).where('state', '=', 'sending').executeTakeFirstOrThrow()).n),
      set: () => ({ state: 'sending', lease_owner: 'n', lease_until: isoIn(60_000) }),
      returning: ['id'],
    })
  assert.equal((await claim(2)).length, 2)
  assert.equal((await claim(2)).length, 0, 'two are sending already')
  assert.equal((await claim(3)).length, 1)
})

test('releaseLeases(): expired leases of any owner come back to the queue; live ones stay; `of` hands back all of one owner', async (t) => {
  const { database } = await fresh(t)
  await queueMails(database, 6)
  const dead = await claimMails(database, 'dead-node', 2, -1000)
  const live = await claimMails(database, 'live-node', 2)
  const draining = await claimMails(database, 'draining-node', 2)
  const sending = { table: 'mails', leased: (eb: Parameters<Parameters<typeof releaseLeases>[1]['leased']>[0]) => eb('state', '=', 'sending'), back: { state: 'outgoing' } } as const
  assert.equal(await releaseLeases(database, sending), 2)
  const state = async (ids: Array<{ id: string }>) =>
    (await database.db.selectFrom('mails').select(['state', 'lease_owner']).where('id', 'in', ids.map((m) => m.id)).execute()).map((m) => `${m.state}:${m.lease_owner}`)
  assert.deepEqual(await state(dead), ['outgoing:null', 'outgoing:null'])
  assert.deepEqual(await state(live), ['sending:live-node', 'sending:live-node'])
  assert.equal(await releaseLeases(database, { ...sending, of: 'draining-node' }), 2)
  assert.deepEqual(await state(draining), ['outgoing:null', 'outgoing:null'])
  assert.deepEqual(await state(live), ['sending:live-node', 'sending:live-node'])
  assert.deepEqual((await claimMails(database, 'next', 10)).length, 4, 'what came back is claimable again')
})

const CLAIMER = fileURLToPath(new URL('../../test/support/claimer.ts', import.meta.url))

test('claimDue(): processes claiming from one database at full speed never fail (no "database is locked" on SQLite) and never share a mail', async (t) => {
  const { url } = await fresh(t)
  const startAt = Date.now() + 1500
  const run = (owner: string) => promisify(execFile)(process.execPath, ['--import', 'tsx', CLAIMER, url, owner, '300', String(startAt)], { maxBuffer: 16 * 1024 * 1024 })
  const results = (await Promise.all(['p1', 'p2', 'p3'].map(run))).map((r) => JSON.parse(r.stdout) as { claimed: string[]; errors: Array<{ step: string; code?: string; message: string }> })
  assert.deepEqual(results.flatMap((r) => r.errors), [], 'no claim, queueing or recording failed')
  const all = results.flatMap((r) => r.claimed)
  assert.ok(results.every((r) => r.claimed.length > 0), 'every process claimed')
  assert.equal(new Set(all).size, all.length, 'no mail was claimed by two processes')
})
