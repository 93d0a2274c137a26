import { sql } from 'kysely'
import type { Database } from '../../src/db/index.ts'

export interface Cell {
  table: string
  column: string
  value: string
}

/**
 * Every text (and blob, read as latin1) cell of every table of a test database, SQLite or PostgreSQL: for
 * "no secret is stored in clear" and "every sealed value is where rotate-key looks" checks.
 */
export async function textCells(database: Database): Promise<Cell[]> {
  const { db } = database
  const cells: Cell[] = []
  const tables =
    database.traits.dialect === 'sqlite'
      ? (await sql<{ name: string }>`select name from sqlite_master where type = 'table' and name not like 'sqlite_%'`.execute(db)).rows.map((r) => r.name)
      : (await sql<{ name: string }>`select table_name as name from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE'`.execute(db)).rows.map((r) => r.name)
  for (const table of tables) {
    const rows = (await sql<Record<string, unknown>>`select * from ${sql.table(table)}`.execute(db)).rows
    for (const row of rows) {
      for (const [column, v] of Object.entries(row)) {
        if (typeof v === 'string') cells.push({ table, column, value: v })
        else if (Buffer.isBuffer(v)) cells.push({ table, column, value: v.toString('latin1') })
      }
    }
  }
  return cells
}

/** A SecretBox value: `v1:<key id>:…`. */
export const SEALED_VALUE = /^v1:([0-9a-f]{8}):/
