import type { Kysely } from 'kysely'

// Frozen: who a worker node is on its machine (process id, and the machine's name and process namespace), so a node
// on the same machine can tell a dead predecessor from a live one; and the index of each endpoint's due deliveries.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('worker_nodes').addColumn('pid', 'integer').execute()
  await db.schema.alterTable('worker_nodes').addColumn('host', 'varchar(255)').execute()
  await db.schema.createIndex('webhook_deliveries_endpoint_due').on('webhook_deliveries').columns(['webhook_id', 'state', 'next_attempt_at']).execute()
}
