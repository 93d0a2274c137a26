import { sql, type Kysely } from 'kysely'

// Frozen: when an incoming server last fetched without error, so /metrics can show how stale its mail is while
// fetches fail (last_fetch_at moves on every attempt). A server whose last fetch was clean starts from that one.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('incoming_servers').addColumn('last_fetch_ok_at', 'varchar(32)').execute()
  await sql`update incoming_servers set last_fetch_ok_at = last_fetch_at where last_error is null`.execute(db)
}
