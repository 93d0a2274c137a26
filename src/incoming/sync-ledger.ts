import type { Kysely } from 'kysely'
import { type DB, now, type Tx } from '../db/index.ts'
import type { IncomingServerRow } from '../db/schema.ts'
import type { WebhookService } from '../webhooks/service.ts'
import type { FolderLedger, SyncMark } from './folder-sync.ts'
import { storeBatch, type BatchOutcome, type ParsedMessage } from './store-batch.ts'

/**
 * A folder's sync state in the database (incoming_sync, one row per server and folder) and the transaction each
 * batch commits in. `progress` writes the server's status line and renews the fetch's lease (the fetcher owns it).
 */
export class SyncLedger implements FolderLedger {
  constructor(
    private readonly o: {
      db: Kysely<DB>
      webhooks: Pick<WebhookService, 'enqueueAll'>
      server: IncomingServerRow
      progress(q: Pick<Tx, 'updateTable'>, text: string): Promise<unknown>
    },
  ) {}

  #where() {
    return this.o.db.updateTable('incoming_sync').where('server_id', '=', this.o.server.id).where('folder', '=', this.o.server.folder)
  }

  read(): Promise<SyncMark | undefined> {
    const { db, server } = this.o
    return db.selectFrom('incoming_sync').select(['uidvalidity', 'last_uid', 'seen_uid']).where('server_id', '=', server.id).where('folder', '=', server.folder).executeTakeFirst()
  }

  async restart(uidvalidity: string): Promise<void> {
    await this.#where().set({ uidvalidity, last_uid: 0, seen_uid: 0, updated_at: now() }).execute()
  }

  commit(uidvalidity: string, batch: ParsedMessage[], lastUid: number, progress: string | null): Promise<BatchOutcome> {
    const { db, webhooks, server } = this.o
    return db.transaction().execute(async (tx) => {
      const outcome = await storeBatch(tx, webhooks, { server, uidvalidity, messages: batch })
      const at = now()
      await tx
        .insertInto('incoming_sync')
        .values({ server_id: server.id, folder: server.folder, uidvalidity, last_uid: lastUid, updated_at: at })
        .onConflict((oc) => oc.columns(['server_id', 'folder']).doUpdateSet({ uidvalidity, last_uid: lastUid, updated_at: at }))
        .execute()
      if (progress) await this.o.progress(tx, progress)
      return outcome
    })
  }

  async seen(uidvalidity: string, uid: number): Promise<void> {
    await this.#where().set({ seen_uid: uid }).where('uidvalidity', '=', uidvalidity).execute()
  }

  async progress(text: string): Promise<void> {
    await this.o.progress(this.o.db, text)
  }
}
