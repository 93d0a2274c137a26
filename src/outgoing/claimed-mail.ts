import type { MailRow } from '../db/schema.ts'

/**
 * A claimed mail without its content: a claim takes up to IN_FLIGHT_PER_CONNECTION mails per connection, and
 * holding each one's content (up to ~48 MB of JSON) for its whole send would cost gigabytes for large mails.
 * The content is read by the delivery that composes it (compose.ts), and dropped once composed.
 */
export const CLAIMED_COLUMNS = [
  'id', 'idempotency_key', 'state', 'message_id', 'from_addr', 'to_addrs', 'cc_addrs', 'bcc_addrs', 'reply_to', 'subject', 'size', 'server_id', 'attempts',
  'next_attempt_at', 'last_attempt_at', 'lease_until', 'lease_owner', 'failure_type', 'failure_reason', 'smtp_response', 'sent_at', 'created_at', 'updated_at',
] as const satisfies ReadonlyArray<Exclude<keyof MailRow, 'content'>>

/** What a claim returns: the listed columns and no others, so a column added to mails is not assumed to be read. */
export type ClaimedMail = Pick<MailRow, (typeof CLAIMED_COLUMNS)[number]>
