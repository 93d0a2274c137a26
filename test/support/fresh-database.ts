import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { openDatabase, type Database } from '../../src/db/index.ts'
import { createTestDatabase } from './harness.ts'

/** An empty database (SQLite file, or PostgreSQL schema when MAILBRIDGE_TEST_DATABASE_URL says so), removed after the test. */
export async function freshDatabase(t: TestContext): Promise<Database> {
  const dir = mkdtempSync(join(tmpdir(), 'mailbridge-db-'))
  const testDb = await createTestDatabase(dir)
  const database = openDatabase(testDb.url)
  t.after(async () => {
    await database.close()
    await testDb.drop()
    rmSync(dir, { recursive: true, force: true })
  })
  return database
}
