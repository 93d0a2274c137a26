import type { Kysely } from 'kysely'

// Frozen: incoming servers, their per-folder sync state, and fetched messages as they shipped.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('incoming_servers')
    .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('name', 'varchar(200)', (c) => c.notNull())
    .addColumn('authentication', 'varchar(32)', (c) => c.notNull())
    .addColumn('host', 'varchar(255)', (c) => c.notNull())
    .addColumn('port', 'integer', (c) => c.notNull())
    .addColumn('encryption', 'varchar(16)', (c) => c.notNull())
    .addColumn('username', 'varchar(320)', (c) => c.notNull())
    .addColumn('folder', 'varchar(500)', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('poll_interval_s', 'integer', (c) => c.notNull())
    .addColumn('mark_seen', 'integer', (c) => c.notNull())
    .addColumn('lease_owner', 'varchar(64)')
    .addColumn('lease_until', 'varchar(32)')
    .addColumn('last_fetch_at', 'varchar(32)')
    .addColumn('last_error', 'text')
    .addColumn('sync_progress', 'text')
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .execute()
  // Where a server's folder stands: a new UIDVALIDITY means every UID we know is void (RFC 3501 §2.3.1.1).
  await db.schema
    .createTable('incoming_sync')
    .addColumn('server_id', 'varchar(32)', (c) => c.notNull())
    .addColumn('folder', 'varchar(500)', (c) => c.notNull())
    .addColumn('uidvalidity', 'varchar(20)', (c) => c.notNull())
    .addColumn('last_uid', 'integer', (c) => c.notNull())
    // \Seen is set after the commit; UIDs in (seen_uid, last_uid] are stored but maybe not flagged yet.
    .addColumn('seen_uid', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .addPrimaryKeyConstraint('incoming_sync_pk', ['server_id', 'folder'])
    .execute()
  await db.schema
    .createTable('messages')
    .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('server_id', 'varchar(32)', (c) => c.notNull())
    .addColumn('folder', 'varchar(500)', (c) => c.notNull())
    .addColumn('uidvalidity', 'varchar(20)', (c) => c.notNull())
    .addColumn('uid', 'integer', (c) => c.notNull())
    .addColumn('message_id', 'varchar(1000)')
    .addColumn('thread_id', 'varchar(1000)', (c) => c.notNull())
    .addColumn('in_reply_to', 'varchar(1000)')
    .addColumn('references', 'text', (c) => c.notNull())
    .addColumn('in_reply_to_mail_id', 'varchar(32)')
    .addColumn('from_addr', 'text')
    .addColumn('to_addrs', 'text', (c) => c.notNull())
    .addColumn('cc_addrs', 'text', (c) => c.notNull())
    .addColumn('subject', 'text')
    .addColumn('date', 'varchar(32)')
    .addColumn('text_body', 'text')
    .addColumn('html_body', 'text')
    .addColumn('size', 'integer', (c) => c.notNull())
    .addColumn('parse_error', 'text')
    .addColumn('received_at', 'varchar(32)', (c) => c.notNull())
    .addUniqueConstraint('messages_server_uid', ['server_id', 'folder', 'uidvalidity', 'uid'])
    .execute()
  await db.schema.createIndex('messages_message_id').on('messages').columns(['message_id']).execute()
  await db.schema.createIndex('messages_server').on('messages').columns(['server_id', 'id']).execute()
  // The raw RFC 822 bytes, exactly as fetched. `bytea` is PostgreSQL's binary type; SQLite accepts any declared
  // type and stores a bound Buffer as a BLOB untouched (https://www.sqlite.org/datatype3.html §3: affinity
  // converts text and numbers, never blobs), so one frozen migration serves both dialects and both drivers return
  // a Buffer. Base64 text would cost a third more bytes and an encoding pass per message. Kept apart from
  // `messages` so lists never drag megabytes along.
  await db.schema
    .createTable('message_raws')
    .addColumn('message_id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('raw', 'bytea', (c) => c.notNull())
    .execute()
  // Attachment metadata; the bytes stay in the raw message and are cut out of it on download.
  await db.schema
    .createTable('message_attachments')
    .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('message_id', 'varchar(32)', (c) => c.notNull())
    .addColumn('position', 'integer', (c) => c.notNull())
    .addColumn('filename', 'text')
    .addColumn('content_type', 'varchar(255)', (c) => c.notNull())
    .addColumn('size', 'integer', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('message_attachments_message').on('message_attachments').columns(['message_id']).execute()
}
