import type { Kysely } from 'kysely'

// Frozen: connection slots per outgoing server, shared by every node, and the worker nodes that share them.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('smtp_slots')
    .addColumn('server_id', 'varchar(32)', (c) => c.notNull())
    .addColumn('slot', 'integer', (c) => c.notNull())
    .addColumn('holder', 'varchar(64)', (c) => c.notNull())
    .addColumn('lease_until', 'varchar(32)', (c) => c.notNull())
    .addPrimaryKeyConstraint('smtp_slots_pk', ['server_id', 'slot'])
    .execute()
  await db.schema
    .createTable('worker_nodes')
    .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('started_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('heartbeat_at', 'varchar(32)', (c) => c.notNull())
    .execute()
}
