import { groupsOf, newId, now, type Tx } from '../db/index.ts'
import type { IncomingServerRow } from '../db/schema.ts'
import { messageReceived } from '../webhooks/events.ts'
import type { WebhookService } from '../webhooks/service.ts'
import { findDuplicates } from './duplicates.ts'
import type { FetchedMessage } from './fetch-transport.ts'
import type { Parsed } from './parse.ts'
import { linkThreads } from './threading.ts'

/** A fetched message with what the parser made of it (a parse failure is a Parsed with `parse_error`). */
export interface ParsedMessage extends FetchedMessage {
  parsed: Parsed
}

/** One batch of one folder: what storeBatch writes. */
export interface Batch {
  server: Pick<IncomingServerRow, 'id' | 'folder' | 'username'>
  uidvalidity: string
  messages: readonly ParsedMessage[]
}

export interface BatchOutcome {
  /** New messages written. */
  stored: number
  /** Messages already stored (duplicates.ts), not written again. */
  duplicates: number
  /** Messages stored raw because the parser refused them: their UID, Mailbridge id and the parser's words. */
  keptRaw: Array<{ uid: number; id: string; cause: string }>
}

/**
 * Store a batch in the caller's transaction: messages, raw bytes, attachments, threads and the `message.received`
 * deliveries, so they commit together or not at all. A few statements for the whole batch (duplicates, threads,
 * then multi-row inserts), not a few per message: on PostgreSQL each one is a round trip. Earlier messages of the
 * same batch count for duplicates and threads.
 */
export async function storeBatch(tx: Tx, webhooks: Pick<WebhookService, 'enqueueAll'>, batch: Batch): Promise<BatchOutcome> {
  const { server, uidvalidity } = batch
  if (!batch.messages.length) return { stored: 0, duplicates: 0, keptRaw: [] }
  const at = now()
  // First, the counter row: its lock, held to commit, makes message stores (any server, any node) commit one
  // after another, so seq follows commit order and a reader's "after my cursor" can never skip a message.
  const counter = await tx.updateTable('counters').set((eb) => ({ value: eb('value', '+', 0) })).where('name', '=', 'messages').returning('value').executeTakeFirstOrThrow()
  const seq = Number(counter.value)
  const duplicate = await findDuplicates(
    tx,
    server,
    uidvalidity,
    batch.messages.map((m) => ({ uid: m.uid, messageId: m.parsed.row.message_id })),
  )
  const fresh = batch.messages.filter((_, i) => !duplicate[i]).map((m) => ({ ...m, id: newId() }))
  const links = await linkThreads(
    tx,
    fresh.map((f) => ({ id: f.id, messageId: f.parsed.row.message_id, inReplyTo: f.parsed.row.in_reply_to, references: JSON.parse(f.parsed.row.references) as string[] })),
  )
  const messages = fresh.map((f, i) => ({
    id: f.id,
    server_id: server.id,
    folder: server.folder,
    uidvalidity,
    uid: f.uid,
    ...f.parsed.row,
    thread_id: links[i]!.threadId,
    in_reply_to_mail_id: links[i]!.inReplyToMailId,
    size: f.source.length,
    received_at: at,
    seq: seq + i + 1,
  }))
  for (const g of groupsOf(messages)) await tx.insertInto('messages').values(g).execute()
  for (const g of groupsOf(fresh, 50)) await tx.insertInto('message_raws').values(g.map((f) => ({ message_id: f.id, raw: f.source }))).execute()
  const attachments = fresh.flatMap((f) => f.parsed.attachments.map((a, position) => ({ id: newId(), message_id: f.id, position, ...a })))
  for (const g of groupsOf(attachments)) await tx.insertInto('message_attachments').values(g).execute()
  await webhooks.enqueueAll(
    tx,
    'message.received',
    messages.map((m) => messageReceived(server, m)),
  )
  if (messages.length) await tx.updateTable('counters').set({ value: seq + messages.length }).where('name', '=', 'messages').execute()
  return {
    stored: messages.length,
    duplicates: batch.messages.length - messages.length,
    keptRaw: messages.flatMap((m) => (m.parse_error ? [{ uid: m.uid, id: m.id, cause: m.parse_error }] : [])),
  }
}
