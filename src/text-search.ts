import { type Expression, type SqlBool, sql } from 'kysely'

/**
 * `lower(column) LIKE '%text%'` with the text's own `%`, `_` and `\` taken literally: the same on SQLite and
 * PostgreSQL (whose LIKE is case-sensitive, so both sides are lowered).
 */
export function contains(column: string, text: string): Expression<SqlBool> {
  const pattern = `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`
  return sql<SqlBool>`lower(${sql.ref(column)}) like ${pattern} escape '\\'`
}
