import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { sql } from 'kysely'
import { openDatabase } from './index.ts'

test('SQLite: a connection whose commits are promises to clients syncs every commit; a redoable one (the background thread) does not', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailbridge-db-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const url = `sqlite:${join(dir, 'mb.db')}`
  const synchronous = async (o?: { redoable?: boolean }) => {
    const d = openDatabase(url, o)
    try {
      const { rows } = await sql<{ synchronous: number }>`pragma synchronous`.execute(d.db)
      return rows[0]!.synchronous
    } finally {
      await d.close()
    }
  }
  assert.equal(await synchronous(), 2, 'FULL')
  assert.equal(await synchronous({ redoable: true }), 1, 'NORMAL')
})
