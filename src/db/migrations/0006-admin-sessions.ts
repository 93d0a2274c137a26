import type { Kysely } from 'kysely'

// Frozen: admin UI sessions and failed sign-ins, kept in the database so every node behind a load balancer
// shares them.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('admin_sessions')
    .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('token_hash', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('username', 'varchar(100)', (c) => c.notNull())
    .addColumn('csrf_token', 'varchar(100)', (c) => c.notNull())
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('last_seen_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('expires_at', 'varchar(32)', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('admin_sessions_expires').on('admin_sessions').column('expires_at').execute()
  await db.schema
    .createTable('admin_login_failures')
    .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('client', 'varchar(100)', (c) => c.notNull())
    .addColumn('at', 'varchar(32)', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('admin_login_failures_client').on('admin_login_failures').columns(['client', 'at']).execute()
}
