import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { Migrator } from 'kysely'
import { createTestDatabase } from '../../test/support/harness.ts'
import { migrate, openDatabase } from './index.ts'
import { migrations } from './migrations/index.ts'

test('migrate: a database that already ran a later-numbered migration still takes an earlier one that landed after it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailbridge-migrations-'))
  const testDb = await createTestDatabase(dir)
  const database = openDatabase(testDb.url)
  t.after(async () => {
    await database.close()
    await testDb.drop()
    rmSync(dir, { recursive: true, force: true })
  })
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
