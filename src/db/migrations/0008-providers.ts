import type { Kysely } from 'kysely'

// Frozen: Microsoft app-only access names a tenant per server, and its credential remembers which tenant its
// token came from (Gmail and national clouds need no column: they are settings and provider data).
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('outgoing_servers').addColumn('tenant_id', 'varchar(200)').execute()
  await db.schema.alterTable('incoming_servers').addColumn('tenant_id', 'varchar(200)').execute()
  await db.schema.alterTable('credentials').addColumn('tenant_id', 'varchar(200)').execute()
}
