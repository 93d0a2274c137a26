import type { Kysely } from 'kysely'

// Frozen: the sign-ins that do not end in Connect's redirect, one per (provider, mailbox): a device code being polled
// (its lease, its next poll, the code sealed), and the last outcome of any sign-in (why it stopped, and whether
// Microsoft asked for an administrator's consent). An OAuth state now says which flow it was made for: an admin
// consent's answer must not be taken for a Connect's, nor the other way round.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('sign_ins')
    .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('provider', 'varchar(32)', (c) => c.notNull())
    .addColumn('mailbox', 'varchar(320)', (c) => c.notNull())
    .addColumn('server_kind', 'varchar(16)', (c) => c.notNull())
    .addColumn('server_id', 'varchar(32)', (c) => c.notNull())
    .addColumn('flow', 'varchar(32)', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('error_code', 'varchar(64)')
    .addColumn('device_code', 'text')
    .addColumn('user_code', 'varchar(64)')
    .addColumn('verification_uri', 'text')
    .addColumn('interval_s', 'integer')
    .addColumn('expires_at', 'varchar(32)')
    .addColumn('next_poll_at', 'varchar(32)')
    .addColumn('lease_until', 'varchar(32)')
    .addColumn('lease_holder', 'varchar(64)')
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('sign_ins_mailbox').unique().on('sign_ins').columns(['provider', 'mailbox']).execute()
  await db.schema.createIndex('sign_ins_due').on('sign_ins').columns(['state', 'next_poll_at']).execute()
  await db.schema.alterTable('oauth_states').addColumn('flow', 'varchar(32)').execute()
}
