import type { MailRow, MessageRow } from '../db/schema.ts'

/**
 * The `data` of each webhook event, built here and nowhere else. `message_id` grew two meanings before this
 * module: the Mailbridge message id in `message.received`, the RFC 5322 Message-ID in `mail.*`. Both stay for
 * the receivers that read them; `mail_id` and `internet_message_id` say which is which in every event.
 */
export interface EventData {
  'message.received': MessageReceived
  'mail.sent': MailOutcome
  'mail.failed': MailOutcome
  'token.invalid': TokenInvalid
  'mail.bounced': MailBounced
}

export interface MessageReceived {
  /** The Mailbridge message id (`GET /api/v1/messages/{message_id}`). */
  message_id: string
  server_id: string
  mailbox: string
  folder: string
  uid: number
  /** The RFC 5322 Message-ID header with its angle brackets; null when the message had none. */
  internet_message_id: string | null
  thread_id: string
  in_reply_to_mail_id: string | null
  from: string | null
  subject: string | null
  parse_error: string | null
  /** An automatic reply (RFC 3834: out-of-office, vacation), not the correspondent's own answer. */
  auto_reply: boolean
}

export interface MailOutcome {
  mail_id: string
  server_id: string
  /** The RFC 5322 Message-ID; kept for receivers written before `internet_message_id`. */
  message_id: string
  internet_message_id: string
  state: 'sent' | 'exception'
  failure_type?: string | null
  failure_reason?: string | null
}

/**
 * A delivery report says one recipient of a mail Mailbridge sent failed. `message_id` is the stored report
 * (`GET /api/v1/messages/{message_id}`), as in the mail's `bounces[]`; `internet_message_id` is the mail's.
 */
export interface MailBounced {
  mail_id: string
  /** The Mailbridge message id of the delivery report. */
  message_id: string
  /** The RFC 5322 Message-ID of the mail that bounced. */
  internet_message_id: string
  server_id: string
  recipient: string
  status: string | null
  action: 'failed'
  diagnostic: string | null
}

export interface TokenInvalid {
  server_kind: 'outgoing' | 'incoming'
  server_id: string
  /** Lower case, as credentials are keyed. */
  mailbox: string
  reason: string
}

type StoredMessage = Pick<MessageRow, 'id' | 'uid' | 'message_id' | 'thread_id' | 'in_reply_to_mail_id' | 'from_addr' | 'subject' | 'parse_error'> & {
  /** What recognition said (src/bounces/record.ts); a message stored without it is no automatic reply. */
  auto_reply?: number | boolean
}

/** A fetched message was stored: written in the transaction that stores it. */
export const messageReceived = (server: { id: string; username: string; folder: string }, m: StoredMessage): MessageReceived => ({
  message_id: m.id,
  server_id: server.id,
  mailbox: server.username,
  folder: server.folder,
  uid: m.uid,
  internet_message_id: m.message_id,
  thread_id: m.thread_id,
  in_reply_to_mail_id: m.in_reply_to_mail_id,
  from: m.from_addr,
  subject: m.subject,
  parse_error: m.parse_error,
  auto_reply: m.auto_reply === true || m.auto_reply === 1,
})

type FinishedMail = Pick<MailRow, 'id' | 'server_id' | 'message_id'>
type Ending = { state: 'sent' } | { state: 'exception'; failure_type: string | null; failure_reason: string | null }

/** A mail reached `sent` or `exception`: the event's name and data, written in the transaction of that state. */
export function mailOutcome(mail: FinishedMail, end: Ending): { event: 'mail.sent' | 'mail.failed'; data: MailOutcome } {
  const data: MailOutcome = { mail_id: mail.id, server_id: mail.server_id, message_id: mail.message_id, internet_message_id: mail.message_id, state: end.state }
  if (end.state === 'sent') return { event: 'mail.sent', data }
  return { event: 'mail.failed', data: { ...data, failure_type: end.failure_type, failure_reason: end.failure_reason } }
}

type BouncedMail = Pick<MailRow, 'id' | 'server_id' | 'message_id'>
type FailedRecipient = { recipient: string; status: string | null; diagnostic: string | null }

/** One recipient of a mail was reported failed: written in the transaction that records the report. */
export const mailBounced = (mail: BouncedMail, reportId: string, r: FailedRecipient): MailBounced => ({
  mail_id: mail.id,
  message_id: reportId,
  internet_message_id: mail.message_id,
  server_id: mail.server_id,
  recipient: r.recipient,
  status: r.status,
  action: 'failed',
  diagnostic: r.diagnostic,
})

/** A mailbox's token was refused or could not be refreshed: someone must reconnect it or fix the app. */
export const tokenInvalid = (kind: TokenInvalid['server_kind'], server: { id: string; username: string }, reason: string): TokenInvalid => ({
  server_kind: kind,
  server_id: server.id,
  mailbox: server.username.toLowerCase(),
  reason,
})
