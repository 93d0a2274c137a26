import type { Kysely } from 'kysely'
import type { DB } from '../db/index.ts'
import type { SecretBox } from './secret-box.ts'
import { SEALED_COLUMNS, type SealedColumn } from './sealed-columns.ts'

export interface SealedRow {
  key: string
  sealed: string
}

/** What one column's re-sealing did. */
export interface ColumnReport {
  resealed: number
  /** Rows written by someone else between our read and our write (a token refresh): left as they were written. */
  changed: number
  /** Values under a key this keyring does not hold: they stay, and are counted as remaining. */
  unreadable: number
}

export interface RotationReport {
  columns: Record<string, ColumnReport>
  /** Values still sealed under another key than the current one, counted after the last pass. */
  remaining: Record<string, number>
  remainingTotal: number
}

export const columnName = (c: SealedColumn): string => (c.only ? `${c.table}.${c.only.join('|')}` : `${c.table}.${c.column}`)

// The table and column names come from SEALED_COLUMNS, not from the database's types.
const loose = (db: Kysely<DB>) => db as unknown as Kysely<any>

/** Values of one column not under the current key, after `after` in key order: one batch. */
export async function readBatch(db: Kysely<DB>, c: SealedColumn, currentKeyId: string, after: string | null, limit: number): Promise<SealedRow[]> {
  let q = loose(db)
    .selectFrom(c.table)
    .select([`${c.key} as key`, `${c.column} as sealed`])
    .where(c.column, 'is not', null)
    .where(c.column, 'not like', `v1:${currentKeyId}:%`)
  if (c.only) q = q.where(c.key, 'in', c.only)
  if (after !== null) q = q.where(c.key, '>', after)
  return q.orderBy(c.key).limit(limit).execute()
}

/**
 * Re-seal one batch under the current key in one short transaction. Each UPDATE is a compare-and-set on the
 * ciphertext we read: a refresh that rotated the token meanwhile wrote a newer value, and overwriting it with
 * the old token re-sealed would lose the link (refresh tokens rotate on every use, AADSTS700082).
 */
export async function resealBatch(db: Kysely<DB>, box: SecretBox, c: SealedColumn, rows: SealedRow[]): Promise<ColumnReport> {
  const report: ColumnReport = { resealed: 0, changed: 0, unreadable: 0 }
  await db.transaction().execute(async (tx) => {
    for (const row of rows) {
      const context = c.context(row.key)
      let value
      try {
        value = box.open(row.sealed, context)
      } catch {
        report.unreadable++
        continue
      }
      const done = await loose(tx)
        .updateTable(c.table)
        .set({ [c.column]: box.seal(value, context) })
        .where(c.key, '=', row.key)
        .where(c.column, '=', row.sealed)
        .executeTakeFirst()
      if (Number(done.numUpdatedRows) > 0) report.resealed++
      else report.changed++
    }
  })
  return report
}

/** How many values each sealed column still holds under another key than the current one. */
export async function countUnderOldKeys(db: Kysely<DB>, currentKeyId: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const c of SEALED_COLUMNS) {
    let q = loose(db)
      .selectFrom(c.table)
      .select((eb) => eb.fn.countAll().as('n'))
      .where(c.column, 'is not', null)
      .where(c.column, 'not like', `v1:${currentKeyId}:%`)
    if (c.only) q = q.where(c.key, 'in', c.only)
    out[columnName(c)] = Number((await q.executeTakeFirstOrThrow()).n)
  }
  return out
}

/**
 * Re-seal every sealed value under the keyring's current key, in batches, while nodes keep working. Running it
 * again is harmless: values already under the current key are never read. A second pass picks up values a
 * node still sealing with an old key wrote during the first.
 */
export async function rotateKeys(
  db: Kysely<DB>,
  box: SecretBox,
  o: { batchSize?: number; passes?: number; progress?: (line: string) => void } = {},
): Promise<RotationReport> {
  const batchSize = o.batchSize ?? 500
  const columns: Record<string, ColumnReport> = {}
  let remaining: Record<string, number> = {}
  for (let pass = 1; pass <= (o.passes ?? 2); pass++) {
    let resealedThisPass = 0
    for (const c of SEALED_COLUMNS) {
      const name = columnName(c)
      const total = (columns[name] ??= { resealed: 0, changed: 0, unreadable: 0 })
      // Unreadable values are met again on every pass: count them once.
      total.unreadable = 0
      let after: string | null = null
      for (;;) {
        const rows = await readBatch(db, c, box.currentKeyId, after, batchSize)
        if (rows.length === 0) break
        after = rows[rows.length - 1]!.key
        const r = await resealBatch(db, box, c, rows)
        total.resealed += r.resealed
        total.changed += r.changed
        total.unreadable += r.unreadable
        resealedThisPass += r.resealed
        o.progress?.(`${name}: ${total.resealed} re-sealed${total.changed ? `, ${total.changed} changed meanwhile` : ''}${total.unreadable ? `, ${total.unreadable} under an unknown key` : ''}`)
      }
    }
    remaining = await countUnderOldKeys(db, box.currentKeyId)
    if (Object.values(remaining).every((n) => n === 0) || resealedThisPass === 0) break
  }
  return { columns, remaining, remainingTotal: Object.values(remaining).reduce((a, b) => a + b, 0) }
}
