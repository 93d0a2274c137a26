import { type Tx, whereIn } from '../db/index.ts'

/** A fetched message as the deduplication rule sees it. */
export interface Candidate {
  uid: number
  /** The RFC 5322 Message-ID, null when the message has none. */
  messageId: string | null
}

/**
 * The deduplication rule, in one place: a fetched message is already stored when the same UID of this folder
 * (under this UIDVALIDITY) is, or a message with the same Message-ID on this server is (a copy in another folder,
 * a refetch after UIDVALIDITY changed, or an earlier message of this very batch). Answers, per candidate, whether
 * it is a duplicate.
 *
 * Two lookups, each on its own index: by Message-ID alone, the server compared here (with both in the WHERE,
 * SQLite without ANALYZE walks the server's index instead, every message of the mailbox).
 */
export async function findDuplicates(tx: Pick<Tx, 'selectFrom'>, server: { id: string; folder: string }, uidvalidity: string, batch: readonly Candidate[]): Promise<boolean[]> {
  const sameUid = new Set(
    (
      await whereIn(
        batch.map((m) => m.uid),
        (uids) => tx.selectFrom('messages').select('uid').where('server_id', '=', server.id).where('folder', '=', server.folder).where('uidvalidity', '=', uidvalidity).where('uid', 'in', uids).execute(),
      )
    ).map((r) => r.uid),
  )
  const sameId = new Set(
    (await whereIn(batch.flatMap((m) => m.messageId ?? []), (ids) => tx.selectFrom('messages').select(['message_id', 'server_id']).where('message_id', 'in', ids).execute()))
      .filter((r) => r.server_id === server.id)
      .map((r) => r.message_id),
  )
  return batch.map((m) => {
    if (sameUid.has(m.uid) || (m.messageId && sameId.has(m.messageId))) return true
    if (m.messageId) sameId.add(m.messageId)
    return false
  })
}
