import type { Generated, Selectable } from 'kysely'
/**
 * The database as the code sees it. Timestamps are ISO 8601 UTC strings (they sort as text in both
 * dialects), booleans are 0/1 integers, secrets are sealed strings (crypto/secret-box.ts), lists are JSON text.
 */
export interface DB {
  settings: { key: string; value: string }
  parameters: { key: string; value: string; updated_at: string }
  api_tokens: ApiTokenTable
  credentials: CredentialTable
  outgoing_servers: OutgoingServerRow
  oauth_states: OAuthStateRow
  mails: MailTable
  smtp_slots: { server_id: string; slot: number; holder: string; lease_until: string }
  worker_nodes: { id: string; started_at: string; heartbeat_at: string; pid: number | null; host: string | null }
  relay_users: RelayUserRow
  admin_sessions: AdminSessionRow
  /** Failed logins per client address: the admin sign-in's, and the relay's AUTH as `smtp:<address>` (access/login-throttle.ts). */
  admin_login_failures: { id: string; client: string; at: string }
  incoming_servers: IncomingServerRow
  incoming_sync: IncomingSyncTable
  messages: MessageTable
  counters: CounterRow
  message_raws: { message_id: string; raw: Buffer }
  message_attachments: MessageAttachmentRow
  mail_bounces: MailBounceRow
  mail_attempts: MailAttemptRow
  webhooks: WebhookRow
  webhook_deliveries: WebhookDeliveryTable
  audit_log: AuditLogRow
}

export interface ApiTokenTable {
  id: string
  name: string
  /** SHA-256 of the token (crypto/passwords.ts hashToken): the token itself is never stored. */
  token_hash: string
  /** JSON list of scopes (access/api-tokens.ts SCOPES). */
  scopes: Generated<string>
  /** JSON list of the outgoing and incoming server ids the token is limited to; null: every server. */
  server_ids: string | null
  created_at: string
  last_used_at: string | null
  revoked_at: string | null
}
export type ApiTokenRow = Selectable<ApiTokenTable>

export interface AuditLogRow {
  id: string
  at: string
  actor_type: 'admin' | 'api_token' | 'anonymous'
  /** The admin's username or the API token's name, as it was then. */
  actor: string
  /** The admin session's or the API token's id. */
  actor_id: string | null
  action: string
  /** What the action was done to: a server's, token's, webhook's or mail's id, a parameter's key. */
  target: string | null
  /** JSON object of names and ids (the settings fields changed), never a value that could be a secret. */
  detail: string | null
  client: string | null
}

export type CredentialRow = Selectable<CredentialTable>

export interface CredentialTable {
  id: string
  provider: string
  mailbox: string
  refresh_token: string | null
  access_token: string | null
  access_expires_at: string | null
  scopes: string
  /** What the id_token said about who consented: JSON {email, preferred_username, name, tid, oid}. */
  identity: string
  last_refresh_at: string | null
  last_error: string | null
  last_error_code: string | null
  refresh_lock_until: string | null
  refresh_count: Generated<number>
  /** App-only access: the tenant the access token was issued in (a server may move to another). */
  tenant_id: string | null
  created_at: string
  updated_at: string
}

export interface OutgoingServerRow {
  id: string
  name: string
  authentication: string
  host: string
  port: number
  encryption: string
  username: string
  password: string | null
  from_filter: string | null
  sequence: number
  max_per_minute: number | null
  paused_until: string | null
  pause_reason: string | null
  /** Microsoft app-only access: the directory (tenant) id the token is requested in. */
  tenant_id: string | null
  created_at: string
  updated_at: string
}

export interface OAuthStateRow {
  state_hash: string
  provider: string
  server_kind: string
  server_id: string
  mailbox: string
  code_verifier: string
  session: string | null
  expires_at: string
  used_at: string | null
  created_at: string
}

/** `bounced`: sent, then every recipient was reported failed (src/bounces/record.ts). */
export type MailState = 'outgoing' | 'sending' | 'sent' | 'exception' | 'cancel' | 'bounced'
export type FailureType = 'mail_smtp' | 'mail_email_invalid' | 'mail_from_invalid' | 'unknown'

export interface MailTable {
  id: string
  idempotency_key: string | null
  state: MailState
  message_id: string
  /** The sender as the application gave it ("Name <addr>"); From rewriting happens at send time. */
  from_addr: string
  to_addrs: string
  cc_addrs: string
  bcc_addrs: string
  reply_to: string | null
  subject: string
  /** JSON {text, html, headers, attachments[{filename, content_type, content_base64}]}. */
  content: string
  size: number
  server_id: string
  attempts: Generated<number>
  next_attempt_at: string
  last_attempt_at: string | null
  lease_until: string | null
  lease_owner: string | null
  failure_type: FailureType | null
  failure_reason: string | null
  smtp_response: string | null
  sent_at: string | null
  created_at: string
  updated_at: string
}
export type MailRow = Selectable<MailTable>

/** A login of the SMTP relay (src/relay/): a legacy application, printer or scanner. */
export interface RelayUserRow {
  id: string
  username: string
  /** scrypt (crypto/passwords.ts). */
  password_hash: string
  /** JSON list of addresses and domains the user may send as; [] allows any sender. */
  allowed_from: string
  last_used_at: string | null
  /** The client's IP address at its last successful AUTH. */
  last_used_from: string | null
  created_at: string
}

/** One signed-in admin browser; the cookie holds the token, the table only its SHA-256. */
export interface AdminSessionRow {
  id: string
  token_hash: string
  username: string
  /** The synchronizer token every form of this session carries. */
  csrf_token: string
  created_at: string
  last_seen_at: string
  expires_at: string
}
export type IncomingState = 'draft' | 'confirmed'

export interface IncomingServerRow {
  id: string
  name: string
  authentication: string
  host: string
  port: number
  encryption: string
  username: string
  folder: string
  state: IncomingState
  poll_interval_s: number
  /** 0/1: set \Seen after the message is stored. */
  mark_seen: number
  lease_owner: string | null
  lease_until: string | null
  last_fetch_at: string | null
  /** The last fetch that ended without error (last_fetch_at moves on every attempt). */
  last_fetch_ok_at: string | null
  last_error: string | null
  /** The running fetch's progress ("1200 of 5000 messages"), null when none runs. */
  sync_progress: string | null
  /** Microsoft app-only access: the directory (tenant) id the token is requested in. */
  tenant_id: string | null
  created_at: string
  updated_at: string
}

export interface IncomingSyncTable {
  server_id: string
  folder: string
  /** UIDVALIDITY as decimal text (up to 2^32-1; text keeps it exact on both dialects). */
  uidvalidity: string
  last_uid: number
  /** Every UID up to this one is stored and flagged \Seen (when mark_seen); the rest up to last_uid is flagged next. */
  seen_uid: Generated<number>
  updated_at: string
}

export interface MessageTable {
  id: string
  server_id: string
  folder: string
  uidvalidity: string
  uid: number
  message_id: string | null
  thread_id: string
  in_reply_to: string | null
  /** JSON array of Message-IDs. */
  references: string
  in_reply_to_mail_id: string | null
  from_addr: string | null
  /** JSON arrays of "Name <addr>". */
  to_addrs: string
  cc_addrs: string
  subject: string | null
  date: string | null
  text_body: string | null
  html_body: string | null
  size: number
  parse_error: string | null
  received_at: string
  /** Commit order (see incoming/fetcher.ts): what "after this cursor" pages by. Null only for a moment, never once committed. */
  seq: number | null
  /** JSON {mail_id, original_message_id, recipients[{recipient, status, action, diagnostic}]} when the message is a delivery report. */
  bounce: string | null
  /** 0/1: an automatic reply (RFC 3834), out-of-office and the like. */
  auto_reply: Generated<number>
}
export type MessageRow = Selectable<MessageTable>

/**
 * One attempt to submit a mail: `sent`, `retry` (a transient failure, tried again later) or `failed` (permanent,
 * or the last try). An attempt that never reached the server (a pause, a token refused first) is not one.
 */
export type AttemptOutcome = 'sent' | 'retry' | 'failed'
export interface MailAttemptRow {
  id: string
  mail_id: string
  server_id: string
  at: string
  outcome: AttemptOutcome
  /** The server's reply, as it gave it. */
  reply: string | null
  /** Why it failed, in Mailbridge's words (the mail's failure_reason then). */
  reason: string | null
}

/** One recipient's line of a delivery report (src/bounces/record.ts). */
export interface MailBounceRow {
  id: string
  /** The mail Mailbridge sent that the report is about; null when it is about another mail. */
  mail_id: string | null
  /** The stored report (messages.id). */
  message_id: string
  recipient: string
  /** RFC 3463 status (`5.1.1`), when the report gives one. */
  status: string | null
  /** RFC 3464 §2.3.3: failed, delayed, delivered, relayed, expanded. */
  action: string
  diagnostic: string | null
  remote_mta: string | null
  /** When Mailbridge recorded the report. */
  reported_at: string
}

export interface MessageAttachmentRow {
  id: string
  message_id: string
  /** Index among the parsed message's attachments (mailparser order). */
  position: number
  filename: string | null
  content_type: string
  size: number
}

export interface WebhookRow {
  id: string
  url: string
  /** JSON array of event names. */
  events: string
  /** Sealed (crypto/secret-box.ts). */
  secret: string
  created_at: string
  updated_at: string
}

export type DeliveryState = 'pending' | 'delivered' | 'failed'

export interface WebhookDeliveryTable {
  id: string
  webhook_id: string
  event: string
  payload: string
  state: DeliveryState
  attempts: Generated<number>
  next_attempt_at: string
  lease_owner: string | null
  lease_until: string | null
  last_status: number | null
  last_error: string | null
  delivered_at: string | null
  created_at: string
  updated_at: string
}
export type WebhookDeliveryRow = Selectable<WebhookDeliveryTable>

/** Named counters whose row lock orders commits across nodes (messages.seq). */
export interface CounterRow {
  name: string
  value: number
}
