import type { Kysely } from 'kysely'

// Frozen: a credential keeps an access token per resource (issue 16). Exchange Online's stays in access_token;
// Microsoft Graph's, from the same refresh token (or its own client-credentials request), goes here, sealed, with
// the Graph scopes it carries (a consent given before a mailbox used Graph has none).
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('credentials').addColumn('graph_access_token', 'text').execute()
  await db.schema.alterTable('credentials').addColumn('graph_access_expires_at', 'varchar(32)').execute()
  await db.schema.alterTable('credentials').addColumn('graph_scopes', 'text').execute()
}
