import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Migrator, sql } from 'kysely'
import { freshDatabase } from '../../test/support/fresh-database.ts'
import { migrate, openDatabase } from './index.ts'
import { migrations } from './migrations/index.ts'

test('migrate: a database that already ran a later-numbered migration still takes an earlier one that landed after it', async (t) => {
  const database = await freshDatabase(t)
  const names = Object.keys(migrations).sort()
  assert.ok(names.length >= 3, 'needs a migration in the middle to leave out')
  const middle = names[names.length - 2]!
  // A database from before the middle migration existed: every other one applied.
  const without = Object.fromEntries(Object.entries(migrations).filter(([name]) => name !== middle))
  const old = new Migrator({ db: database.db, provider: { getMigrations: async () => without }, ...(database.schema ? { migrationTableSchema: database.schema } : {}) })
  const first = await old.migrateToLatest()
  assert.equal(first.error, undefined)
  assert.deepEqual(await migrate(database.db, database.schema), [middle])
  assert.deepEqual(await migrate(database.db, database.schema), [], 'and nothing twice')
})

test('0010-message-seq: messages stored before it get seq in id order, and the counter starts after them', async (t) => {
  const database = await freshDatabase(t)
  const before = Object.fromEntries(Object.entries(migrations).filter(([name]) => name < '0010-message-seq'))
  const old = new Migrator({ db: database.db, provider: { getMigrations: async () => before }, ...(database.schema ? { migrationTableSchema: database.schema } : {}) })
  assert.equal((await old.migrateToLatest()).error, undefined)
  const { db } = database
  const at = new Date().toISOString()
  await db.insertInto('incoming_servers' as never).values({ id: 's1', name: 'Inbox', authentication: 'outlook', host: 'h', port: 993, encryption: 'ssl', username: 'a@b.c', folder: 'INBOX', state: 'confirmed', poll_interval_s: 60, mark_seen: 1, created_at: at, updated_at: at } as never).execute()
  for (const id of ['m3', 'm1', 'm2']) {
    await db.insertInto('messages' as never).values({ id, server_id: 's1', folder: 'INBOX', uidvalidity: '1', uid: Number(id[1]), thread_id: `<${id}>`, references: '[]', to_addrs: '[]', cc_addrs: '[]', size: 1, received_at: at } as never).execute()
  }
  await migrate(db, database.schema)
  const rows = await db.selectFrom('messages').select(['id', 'seq']).orderBy('id').execute()
  assert.deepEqual(rows.map((r) => [r.id, Number(r.seq)]), [['m1', 1], ['m2', 2], ['m3', 3]])
  assert.equal(Number((await db.selectFrom('counters').select('value').where('name', '=', 'messages').executeTakeFirstOrThrow()).value), 3)
})

test('0011-large-values: on PostgreSQL raw messages and mail contents are stored with lz4 (or uncompressed), not pglz', async (t) => {
  const database = await freshDatabase(t)
  await migrate(database.db, database.schema)
  if (database.traits.dialect !== 'postgres') return t.skip('SQLite stores values as given')
  const lz4 = (await sql<{ lz4: boolean }>`select 'lz4' = any(enumvals) as lz4 from pg_settings where name = 'default_toast_compression'`.execute(database.db)).rows[0]?.lz4
  const { rows } = await sql<{ table: string; compression: string; storage: string }>`
    select c.relname as table, a.attcompression as compression, a.attstorage as storage
    from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = ${database.schema} and ((c.relname = 'message_raws' and a.attname = 'raw') or (c.relname = 'mails' and a.attname = 'content'))
    order by c.relname`.execute(database.db)
  assert.deepEqual(
    rows.map((r) => [r.table, lz4 ? r.compression : r.storage]),
    [['mails', lz4 ? 'l' : 'e'], ['message_raws', lz4 ? 'l' : 'e']],
  )
})
