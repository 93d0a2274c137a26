import type { Kysely } from 'kysely'

// Frozen: a Microsoft server sends or fetches over SMTP/IMAP or through Microsoft Graph (issue 16). Existing servers
// keep the protocol they had.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('outgoing_servers').addColumn('transport', 'varchar(16)', (c) => c.notNull().defaultTo('smtp')).execute()
  await db.schema.alterTable('incoming_servers').addColumn('transport', 'varchar(16)', (c) => c.notNull().defaultTo('imap')).execute()
}
