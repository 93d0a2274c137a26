import type { Kysely } from 'kysely'

// Frozen: sign-in and relay AUTH attempts per client address, one row each (failed ones, and ones being checked
// now), so one upsert counts an attempt and returns the counts (access/login-throttle.ts). admin_login_failures
// stays for nodes not yet upgraded.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('login_attempts')
    .addColumn('client', 'varchar(200)', (c) => c.primaryKey())
    .addColumn('window_started_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('failures', 'integer', (c) => c.notNull())
    .addColumn('checking', 'integer', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('login_attempts_window').on('login_attempts').column('window_started_at').execute()
}
