import type { Kysely } from 'kysely'

// Frozen: relay users of the SMTP relay for legacy applications, as they shipped.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('relay_users')
    .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('username', 'varchar(200)', (c) => c.notNull().unique())
    .addColumn('password_hash', 'varchar(200)', (c) => c.notNull())
    // JSON list of addresses and domains this user may send as; [] means any sender.
    .addColumn('allowed_from', 'text', (c) => c.notNull())
    .addColumn('last_used_at', 'varchar(32)')
    .addColumn('last_used_from', 'varchar(64)')
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .execute()
}
