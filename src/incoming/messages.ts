import type { Kysely } from 'kysely'
import { simpleParser } from 'mailparser'
import type { DB } from '../db/index.ts'
import { MailbridgeError, invalid, notFound } from '../errors.ts'
import { messageToApi, type Message } from './model.ts'

/** Fetched messages as the application reads them: a list that pages forward, one message, its raw form, its attachments. */
export class MessageService {
  constructor(private readonly deps: { db: Kysely<DB> }) {}

  /**
   * In the order messages were stored; `cursor` is the id of the last message seen, so polling with it returns
   * only what was stored since, even from several nodes fetching at once (messages.seq follows commit order).
   * `servers`: only the messages of these incoming servers (an API token limited to servers).
   */
  async list(q: { server_id?: string; limit?: number; cursor?: string }, servers?: readonly string[]): Promise<{ items: Message[]; next_cursor: string | null }> {
    const { db } = this.deps
    const limit = q.limit ?? 50
    const after = q.cursor === undefined ? undefined : await db.selectFrom('messages').select('seq').where('id', '=', q.cursor).executeTakeFirst()
    if (q.cursor !== undefined && !after) throw invalid('cursor', `No message has the id ${q.cursor}: pass the next_cursor of a previous page, or leave cursor out to start from the first message.`)
    const rows = await db
      .selectFrom('messages')
      .selectAll()
      .$if(q.server_id !== undefined, (b) => b.where('server_id', '=', q.server_id!))
      .$if(servers !== undefined, (b) => b.where('server_id', 'in', servers!.length ? [...servers!] : ['']))
      .$if(after !== undefined, (b) => b.where('seq', '>', after!.seq))
      .orderBy('seq')
      .limit(limit + 1)
      .execute()
    const page = rows.slice(0, limit)
    const atts = page.length ? await db.selectFrom('message_attachments').selectAll().where('message_id', 'in', page.map((r) => r.id)).orderBy('position').execute() : []
    const items = page.map((r) => messageToApi(r, atts.filter((a) => a.message_id === r.id)))
    return { items, next_cursor: rows.length > limit ? page[page.length - 1]!.id : null }
  }

  async get(id: string): Promise<Message> {
    const row = await this.deps.db.selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirst()
    if (!row) throw notFound('Message', id)
    const atts = await this.deps.db.selectFrom('message_attachments').selectAll().where('message_id', '=', id).orderBy('position').execute()
    return messageToApi(row, atts)
  }

  /** The bytes exactly as the IMAP server gave them. */
  async raw(id: string): Promise<Buffer> {
    const row = await this.deps.db.selectFrom('message_raws').select('raw').where('message_id', '=', id).executeTakeFirst()
    if (!row) throw notFound('Message', id)
    return row.raw
  }

  /** An attachment, cut out of the raw message again (the bytes are stored once, in the raw form). */
  async attachment(id: string, attachmentId: string): Promise<{ filename: string | null; contentType: string; content: Buffer }> {
    const meta = await this.deps.db.selectFrom('message_attachments').selectAll().where('id', '=', attachmentId).where('message_id', '=', id).executeTakeFirst()
    if (!meta) throw notFound('Attachment', attachmentId)
    const parsed = await simpleParser(await this.raw(id), { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true })
    const a = parsed.attachments[meta.position]
    if (!a) throw new MailbridgeError('internal', { message: `attachment ${meta.position} of message ${id} is gone from its raw form` })
    return { filename: meta.filename, contentType: meta.content_type, content: a.content }
  }
}
