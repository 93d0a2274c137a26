import { sql, type Kysely } from 'kysely'

// Frozen: messages get the order in which they were committed (`seq`), handed out under one counter row, so an
// application reading "after my cursor" never misses a message that committed after a later-numbered one.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('messages').addColumn('seq', 'bigint').execute()
  await sql`update messages set seq = r.n from (select id, row_number() over (order by id) as n from messages) as r where messages.id = r.id`.execute(db)
  await db.schema.createIndex('messages_seq').on('messages').column('seq').unique().execute()
  await db.schema
    .createTable('counters')
    .addColumn('name', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('value', 'bigint', (c) => c.notNull())
    .execute()
  await sql`insert into counters (name, value) select 'messages', coalesce(max(seq), 0) from messages`.execute(db)
}
