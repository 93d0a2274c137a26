import type { Kysely } from 'kysely'

// Frozen: the delivery reports recorded per recipient of a mail (its bounces[]), and what recognition said of each
// fetched message: `bounce` (JSON text, null for a message that is not one) and `auto_reply` (0/1, RFC 3834).
// mail_id is null when the report is about a mail Mailbridge did not send; message_id is the stored report's id.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('mail_bounces')
    .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('mail_id', 'varchar(32)')
    .addColumn('message_id', 'varchar(32)', (c) => c.notNull())
    .addColumn('recipient', 'varchar(1000)', (c) => c.notNull())
    .addColumn('status', 'varchar(32)')
    .addColumn('action', 'varchar(16)', (c) => c.notNull())
    .addColumn('diagnostic', 'text')
    .addColumn('remote_mta', 'varchar(1000)')
    .addColumn('reported_at', 'varchar(32)', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('mail_bounces_mail').on('mail_bounces').columns(['mail_id', 'id']).execute()
  await db.schema.createIndex('mail_bounces_message').on('mail_bounces').column('message_id').execute()
  await db.schema.alterTable('messages').addColumn('bounce', 'text').execute()
  await db.schema.alterTable('messages').addColumn('auto_reply', 'integer', (c) => c.notNull().defaultTo(0)).execute()
}
