import type { Kysely } from 'kysely'

// Frozen: API tokens per application (design.md §10). What each token may do (a JSON list of scopes; the tokens
// made before this were the one all-powerful kind, so they become `admin`), which servers it is limited to (a JSON
// list of outgoing and incoming server ids; null: every server), and when it was revoked (a revoked token is kept,
// so the audit log's names still point somewhere, and answers 401).
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('api_tokens').addColumn('scopes', 'varchar(200)', (c) => c.notNull().defaultTo('["admin"]')).execute()
  await db.schema.alterTable('api_tokens').addColumn('server_ids', 'text').execute()
  await db.schema.alterTable('api_tokens').addColumn('revoked_at', 'varchar(32)').execute()
}
