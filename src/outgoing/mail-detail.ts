import type { Kysely } from 'kysely'
import { bouncesOf } from '../bounces/mail-bounces.ts'
import type { DB } from '../db/index.ts'
import type { MailAttemptRow } from '../db/schema.ts'
import { notFound } from '../errors.ts'
import { base64DecodedSize } from './base64.ts'
import { attemptsOf } from './mail-attempts.ts'
import { isRaw, type StoredContent } from './mail-input.ts'
import { mailToApi, type Mail } from './mail-model.ts'

export interface MailDetail {
  mail: Mail
  reply_to: string | null
  /** The header fields the application gave (API), or the raw message's own (relay). */
  headers: Array<[string, string]>
  attachments: Array<{ filename: string; content_type: string; size: number }>
  /** Arrived as raw MIME through the SMTP relay. */
  raw: boolean
  attempts: MailAttemptRow[]
}

/** How much of a raw message is read for its header: enough for any real header, never the whole 35 MB. */
const HEADER_BYTES = 64 * 1024

/** The header fields of a raw message, unfolded (RFC 5322 §2.2.3). */
function rawHeaders(base64: string): Array<[string, string]> {
  const head = Buffer.from(base64.slice(0, Math.ceil((HEADER_BYTES * 4) / 3 / 4) * 4), 'base64').toString('latin1')
  const end = head.search(/\r?\n\r?\n/)
  return (end < 0 ? head : head.slice(0, end))
    .replace(/\r?\n[ \t]+/g, ' ')
    .split(/\r?\n/)
    .flatMap((line) => {
      const colon = line.indexOf(':')
      return colon > 0 ? [[line.slice(0, colon), line.slice(colon + 1).trim()] as [string, string]] : []
    })
}

/** One mail for its page: addresses, header fields, attachments (names and sizes), every attempt, the bounces. */
export async function mailDetail(db: Kysely<DB>, id: string): Promise<MailDetail> {
  const row = await db.selectFrom('mails').selectAll().where('id', '=', id).executeTakeFirst()
  if (!row) throw notFound('Mail', id)
  const [bounces, attempts] = await Promise.all([bouncesOf(db, [id]), attemptsOf(db, id)])
  const content = JSON.parse(row.content) as StoredContent
  const raw = isRaw(content)
  return {
    mail: mailToApi(row, bounces.get(id)),
    reply_to: row.reply_to,
    headers: raw ? rawHeaders(content.raw) : Object.entries(content.headers ?? {}),
    attachments: raw ? [] : (content.attachments ?? []).map((a) => ({ filename: a.filename, content_type: a.content_type, size: base64DecodedSize(a.content_base64) ?? 0 })),
    raw,
    attempts,
  }
}
