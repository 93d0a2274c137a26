import type { Kysely } from 'kysely'

// Frozen: one row per attempt to submit a mail (the server's reply, or why it failed, and when), for the mail's page
// and the console's hourly counts; and the indexes the console's grouped queries read: attempts and messages by
// time, a server's newest sent mail.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('mail_attempts')
    .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('mail_id', 'varchar(32)', (c) => c.notNull())
    .addColumn('server_id', 'varchar(32)', (c) => c.notNull())
    .addColumn('at', 'varchar(32)', (c) => c.notNull())
    .addColumn('outcome', 'varchar(16)', (c) => c.notNull())
    .addColumn('reply', 'text')
    .addColumn('reason', 'text')
    .execute()
  await db.schema.createIndex('mail_attempts_mail').on('mail_attempts').columns(['mail_id', 'id']).execute()
  await db.schema.createIndex('mail_attempts_at').on('mail_attempts').columns(['at', 'server_id']).execute()
  await db.schema.createIndex('messages_received').on('messages').columns(['received_at', 'server_id']).execute()
  await db.schema.createIndex('mails_sent').on('mails').columns(['server_id', 'sent_at']).execute()
}
