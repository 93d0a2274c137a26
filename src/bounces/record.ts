import { type Tx, newId, now } from '../db/index.ts'
import type { MailRow } from '../db/schema.ts'
import { MailbridgeError } from '../errors.ts'
import { parseMailbox } from '../mail-address.ts'
import { mailBounced } from '../webhooks/events.ts'
import type { WebhookService } from '../webhooks/service.ts'
import type { MessageBounce } from './model.ts'
import { type Bounce, type Original, type Recognition, type RecipientReport, recognise } from './recognise.ts'

/** What recording needs of the webhooks: the one way events become durable deliveries, in the caller's transaction. */
export type BounceEvents = Pick<WebhookService, 'enqueueAll'>

export interface RecordInput {
  /** The stored message (messages.id) that recognition read. */
  messageRowId: string
  /** Its incoming server: the row must be that server's, or nothing is recorded. */
  serverId: string
  recognition: Recognition
}

export interface Recorded {
  /** The mail the report was linked to, null when it is about another mail (or the message is no report). */
  mail_id: string | null
  /** Whether this report made the mail `bounced`. */
  bounced: boolean
}

/**
 * The Message-IDs that may name the reported mail, best first: the returned message's own (or the report's
 * In-Reply-To when nothing was returned), then In-Reply-To, then References from the newest (RFC 5322 §3.6.4:
 * the last is the parent).
 */
const candidatesOf = (o: Original): string[] => [...new Set([o.message_id, o.in_reply_to, ...[...o.references].reverse()].filter((id): id is string => !!id))]

type LinkedMail = Pick<MailRow, 'id' | 'state' | 'message_id' | 'server_id' | 'to_addrs' | 'cc_addrs' | 'bcc_addrs'>

/** The mail Mailbridge sent that a report is about, by the first candidate Message-ID that names one. */
async function linkedMail(tx: Tx, original: Original): Promise<LinkedMail | null> {
  const candidates = candidatesOf(original)
  if (!candidates.length) return null
  const rows = await tx.selectFrom('mails').select(['id', 'state', 'message_id', 'server_id', 'to_addrs', 'cc_addrs', 'bcc_addrs']).where('message_id', 'in', candidates).orderBy('id').execute()
  for (const id of candidates) {
    const row = rows.find((r) => r.message_id === id)
    if (row) return row
  }
  return null
}

/** Every address a mail went to (To, Cc, Bcc), lower-cased: what "every recipient failed" is counted over. */
function recipientsOf(mail: LinkedMail): Set<string> {
  const all = [mail.to_addrs, mail.cc_addrs, mail.bcc_addrs].flatMap((list) => JSON.parse(list) as string[])
  return new Set(all.map((a) => (parseMailbox(a)?.address ?? a).toLowerCase()))
}

/**
 * The address a report line is recorded under: the one the mail was sent to when the report's Original-Recipient
 * names it (RFC 3464 §2.3.1: Final-Recipient may be an alias's target the application never knew), else the
 * Final-Recipient.
 */
function addressOf(r: RecipientReport, sentTo: Set<string> | null): string {
  const original = r.original_recipient?.toLowerCase()
  if (sentTo && original && !sentTo.has(r.recipient.toLowerCase()) && sentTo.has(original)) return original
  return r.recipient
}

const messageBounce = (bounce: Bounce, mailId: string | null, recipients: string[]): MessageBounce => ({
  mail_id: mailId,
  original_message_id: bounce.original.message_id,
  recipients: bounce.recipients.map((r, i) => ({ recipient: recipients[i]!, status: r.status, action: r.action, diagnostic: r.diagnostic })),
})

/**
 * Record what recognition found in one stored message, in the transaction that stores it: the message's
 * `auto_reply` and `bounce`; for a report, one mail_bounces row per recipient line, linked to the mail
 * Mailbridge sent when a Message-ID names one; that mail becomes `bounced` once every recipient has a `failed`
 * line (`delayed` and the rest change no state); and one `mail.bounced` per failed recipient, queued in the same
 * transaction so it is delivered (signed, at least once) exactly when the report is recorded.
 * @see https://www.rfc-editor.org/rfc/rfc3464#section-2.3.3 (Action)
 */
export async function recordRecognition(tx: Tx, webhooks: BounceEvents, input: RecordInput): Promise<Recorded> {
  const { bounce, auto_reply } = input.recognition
  if (!bounce && !auto_reply) return { mail_id: null, bounced: false }
  const mail = bounce ? await linkedMail(tx, bounce.original) : null
  const sentTo = mail ? recipientsOf(mail) : null
  const addresses = bounce ? bounce.recipients.map((r) => addressOf(r, sentTo)) : []
  const updated = await tx
    .updateTable('messages')
    .set({ auto_reply: auto_reply ? 1 : 0, bounce: bounce ? JSON.stringify(messageBounce(bounce, mail?.id ?? null, addresses)) : null })
    .where('id', '=', input.messageRowId)
    .where('server_id', '=', input.serverId)
    .executeTakeFirst()
  if (updated.numUpdatedRows === 0n) {
    throw new MailbridgeError('internal', { message: `message ${input.messageRowId} of incoming server ${input.serverId} is not stored: its recognition cannot be recorded` })
  }
  if (!bounce) return { mail_id: null, bounced: false }
  const at = now()
  const rows = bounce.recipients.map((r, i) => ({
    id: newId(),
    mail_id: mail?.id ?? null,
    message_id: input.messageRowId,
    recipient: addresses[i]!,
    status: r.status,
    action: r.action,
    diagnostic: r.diagnostic,
    remote_mta: r.remote_mta,
    reported_at: at,
  }))
  if (rows.length) await tx.insertInto('mail_bounces').values(rows).execute()
  if (!mail) return { mail_id: null, bounced: false }
  const failed = rows.filter((r) => r.action === 'failed')
  await webhooks.enqueueAll(tx, 'mail.bounced', failed.map((r) => mailBounced(mail, input.messageRowId, r)))
  return { mail_id: mail.id, bounced: failed.length > 0 && (await bounceWhenAllFailed(tx, mail, sentTo!)) }
}

/**
 * `sent` → `bounced` when every address the mail went to has a `failed` line, from this report or an earlier one
 * (Exchange reports each recipient when it gives up on it). Only a sent mail: one still queued, failed or
 * cancelled keeps its state, and its bounces[] still show the reports.
 */
async function bounceWhenAllFailed(tx: Tx, mail: LinkedMail, sentTo: Set<string>): Promise<boolean> {
  if (mail.state !== 'sent' || sentTo.size === 0) return false
  const failed = await tx.selectFrom('mail_bounces').select('recipient').where('mail_id', '=', mail.id).where('action', '=', 'failed').execute()
  const failedTo = new Set(failed.map((r) => r.recipient.toLowerCase()))
  if (![...sentTo].every((a) => failedTo.has(a))) return false
  const r = await tx.updateTable('mails').set({ state: 'bounced', updated_at: now() }).where('id', '=', mail.id).where('state', '=', 'sent').executeTakeFirst()
  return r.numUpdatedRows > 0n
}

/** A message the fetch path has just stored (its row inserted in `tx`), with its raw bytes. */
export interface StoredRaw {
  id: string
  server_id: string
  raw: Buffer
}

/**
 * The fetch path's one call, after it inserts a message row and before it queues `message.received` (whose
 * `auto_reply` is the answer's): recognise the raw message and record what it is, in the same transaction.
 * An ordinary message costs a header read and no write.
 */
export async function recogniseStored(tx: Tx, webhooks: BounceEvents, stored: StoredRaw): Promise<Recognition & Recorded> {
  const recognition = await recognise(stored.raw)
  const recorded = await recordRecognition(tx, webhooks, { messageRowId: stored.id, serverId: stored.server_id, recognition })
  return { ...recognition, ...recorded }
}
