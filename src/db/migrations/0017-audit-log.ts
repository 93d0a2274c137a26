import type { Kysely } from 'kysely'

// Frozen: the audit log, who did which admin action, when and from where. `actor_type` is `admin` (a signed-in
// admin session) or `api_token`; `actor` is the admin's username or the token's name, kept as it was then.
// `detail` is a JSON object of names and ids, never a value that could be a secret.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('audit_log')
    .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('at', 'varchar(32)', (c) => c.notNull())
    .addColumn('actor_type', 'varchar(16)', (c) => c.notNull())
    .addColumn('actor', 'varchar(200)', (c) => c.notNull())
    .addColumn('actor_id', 'varchar(32)')
    .addColumn('action', 'varchar(64)', (c) => c.notNull())
    .addColumn('target', 'varchar(300)')
    .addColumn('detail', 'text')
    .addColumn('client', 'varchar(64)')
    .execute()
  await db.schema.createIndex('audit_log_at').on('audit_log').column('at').execute()
}
