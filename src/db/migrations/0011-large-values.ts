import { PostgresAdapter, sql, type Kysely } from 'kysely'

// Frozen: PostgreSQL compresses every large value with pglz by default. Raw messages are mostly base64 of files
// that are compressed already (PDF, JPEG, Office): pglz spent four times the CPU of storing them and saved 2 %
// (295 MB of bench/fetch's messages: 9.2 s with pglz, 2.2 s with lz4, 2.1 s uncompressed). lz4 where the server
// has it (PostgreSQL 14+ built with it, as Debian's is), so text-heavy mail is still compressed; else none.
// New values only: what is stored keeps its compression. SQLite stores values as given.
export async function up(db: Kysely<any>): Promise<void> {
  if (!(db.getExecutor().adapter instanceof PostgresAdapter)) return
  const { rows } = await sql<{ lz4: boolean }>`select 'lz4' = any(enumvals) as lz4 from pg_settings where name = 'default_toast_compression'`.execute(db)
  for (const [table, column] of [['message_raws', 'raw'], ['mails', 'content']] as const) {
    if (rows[0]?.lz4) await sql`alter table ${sql.table(table)} alter column ${sql.ref(column)} set compression lz4`.execute(db)
    else await sql`alter table ${sql.table(table)} alter column ${sql.ref(column)} set storage external`.execute(db)
  }
}
