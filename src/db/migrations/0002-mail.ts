import type { Kysely } from 'kysely'

// Frozen: the mail queue as it shipped.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('mails')
    .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('idempotency_key', 'varchar(200)', (c) => c.unique())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('message_id', 'varchar(300)', (c) => c.notNull())
    .addColumn('from_addr', 'varchar(1000)', (c) => c.notNull())
    .addColumn('to_addrs', 'text', (c) => c.notNull())
    .addColumn('cc_addrs', 'text', (c) => c.notNull())
    .addColumn('bcc_addrs', 'text', (c) => c.notNull())
    .addColumn('reply_to', 'varchar(1000)')
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('content', 'text', (c) => c.notNull())
    .addColumn('size', 'integer', (c) => c.notNull())
    .addColumn('server_id', 'varchar(32)', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('last_attempt_at', 'varchar(32)')
    .addColumn('lease_until', 'varchar(32)')
    .addColumn('lease_owner', 'varchar(64)')
    .addColumn('failure_type', 'varchar(32)')
    .addColumn('failure_reason', 'text')
    .addColumn('smtp_response', 'text')
    .addColumn('sent_at', 'varchar(32)')
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .execute()
  // The worker's claim: due mails of one server, oldest first.
  await db.schema.createIndex('mails_due').on('mails').columns(['state', 'server_id', 'next_attempt_at']).execute()
  // The rate limit counts a server's attempts in the last minute.
  await db.schema.createIndex('mails_attempts').on('mails').columns(['server_id', 'last_attempt_at']).execute()
  await db.schema.createIndex('mails_message_id').on('mails').column('message_id').execute()
}
