import { Type, type Static } from 'typebox'
import { MessageBounce } from '../bounces/model.ts'
import type { IncomingServerRow, MessageAttachmentRow, MessageRow } from '../db/schema.ts'
import { TenantId } from '../oauth/tenant.ts'
import { TokenSchema, type TokenView } from '../oauth/token-view.ts'

export const IncomingAuthentication = Type.Union([Type.Literal('outlook'), Type.Literal('outlook_app'), Type.Literal('gmail')], {
  description: '"outlook": a person consents; "outlook_app": Microsoft app-only access (needs tenant_id); "gmail": Google OAuth.',
})
export const IncomingEncryption = Type.Union([Type.Literal('ssl'), Type.Literal('starttls')])
export const IncomingTransport = Type.Union([Type.Literal('imap'), Type.Literal('graph')], {
  description: '"imap" (default): fetch from host:port; "graph": Microsoft Graph delta query, for "outlook" and "outlook_app" only (host, port and encryption are then not used). Pick Graph when IMAP is off for the mailbox.',
})
export const IncomingState = Type.Union([Type.Literal('draft'), Type.Literal('confirmed')])

export const IncomingServer = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    authentication: IncomingAuthentication,
    transport: IncomingTransport,
    host: Type.String(),
    port: Type.Integer(),
    encryption: IncomingEncryption,
    username: Type.String(),
    folder: Type.String(),
    state: IncomingState,
    poll_interval_s: Type.Integer(),
    mark_seen: Type.Boolean(),
    tenant_id: Type.Union([Type.String(), Type.Null()]),
    token: TokenSchema,
    last_fetch_at: Type.Union([Type.String(), Type.Null()]),
    last_error: Type.Union([Type.String(), Type.Null()]),
    /** The running fetch's progress ("1200 of 5000 messages stored"); null when none runs. */
    sync_progress: Type.Union([Type.String(), Type.Null()]),
    created_at: Type.String(),
    updated_at: Type.String(),
  },
  { additionalProperties: false, $id: 'IncomingServer' },
)
export type IncomingServer = Static<typeof IncomingServer>

export const IncomingServerInput = Type.Partial(
  Type.Object({
    name: Type.String({ minLength: 1, maxLength: 200 }),
    authentication: IncomingAuthentication,
    transport: IncomingTransport,
    host: Type.String({ minLength: 1, maxLength: 255 }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    encryption: IncomingEncryption,
    username: Type.String({ maxLength: 320 }),
    folder: Type.String({ minLength: 1, maxLength: 500 }),
    poll_interval_s: Type.Integer({ minimum: 1, maximum: 86_400 }),
    mark_seen: Type.Boolean(),
    tenant_id: TenantId,
  }),
  { additionalProperties: false },
)
export type IncomingServerInput = Static<typeof IncomingServerInput>

export const DEFAULT_POLL_INTERVAL_S = 60

export const FetchResult = Type.Object(
  {
    fetched: Type.Integer(),
    stored: Type.Integer(),
    duplicates: Type.Integer(),
    failed: Type.Integer(),
    /** Stored raw, but mailparser could not read them (their parse_error says why). */
    parse_errors: Type.Integer(),
  },
  { additionalProperties: false },
)
export type FetchResult = Static<typeof FetchResult>

export function serverToApi(row: IncomingServerRow, token: TokenView): IncomingServer {
  return {
    id: row.id,
    name: row.name,
    authentication: row.authentication as IncomingServer['authentication'],
    transport: row.transport,
    host: row.host,
    port: row.port,
    encryption: row.encryption as IncomingServer['encryption'],
    username: row.username,
    folder: row.folder,
    state: row.state,
    poll_interval_s: row.poll_interval_s,
    mark_seen: row.mark_seen === 1,
    tenant_id: row.tenant_id,
    token,
    last_fetch_at: row.last_fetch_at,
    last_error: row.last_error,
    sync_progress: row.sync_progress,
    created_at: row.created_at,
    updated_at: row.updated_at,
  }
}

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()])

export const Attachment = Type.Object(
  { id: Type.String(), filename: Nullable(Type.String()), content_type: Type.String(), size: Type.Integer() },
  { additionalProperties: false },
)

export const Message = Type.Object(
  {
    id: Type.String(),
    server_id: Type.String(),
    folder: Type.String(),
    uid: Type.Integer(),
    message_id: Nullable(Type.String()),
    thread_id: Type.String(),
    in_reply_to: Nullable(Type.String()),
    references: Type.Array(Type.String()),
    in_reply_to_mail_id: Nullable(Type.String()),
    from: Nullable(Type.String()),
    to: Type.Array(Type.String()),
    cc: Type.Array(Type.String()),
    subject: Nullable(Type.String()),
    date: Nullable(Type.String()),
    text: Nullable(Type.String()),
    html: Nullable(Type.String()),
    attachments: Type.Array(Attachment),
    size: Type.Integer(),
    received_at: Type.String(),
    parse_error: Nullable(Type.String()),
    /** The delivery report this message is, when it is one (design §10); it is still listed and threaded. */
    bounce: Nullable(MessageBounce),
    /** An automatic reply (RFC 3834): out-of-office, vacation; threaded as any reply, but not the correspondent's answer. */
    auto_reply: Type.Boolean(),
  },
  { additionalProperties: false, $id: 'Message' },
)
export type Message = Static<typeof Message>

export function messageToApi(row: MessageRow, attachments: MessageAttachmentRow[]): Message {
  return {
    id: row.id,
    server_id: row.server_id,
    folder: row.folder,
    uid: row.uid,
    message_id: row.message_id,
    thread_id: row.thread_id,
    in_reply_to: row.in_reply_to,
    references: JSON.parse(row.references) as string[],
    in_reply_to_mail_id: row.in_reply_to_mail_id,
    from: row.from_addr,
    to: JSON.parse(row.to_addrs) as string[],
    cc: JSON.parse(row.cc_addrs) as string[],
    subject: row.subject,
    date: row.date,
    text: row.text_body,
    html: row.html_body,
    attachments: attachments.map((a) => ({ id: a.id, filename: a.filename, content_type: a.content_type, size: a.size })),
    size: row.size,
    received_at: row.received_at,
    parse_error: row.parse_error,
    bounce: row.bounce === null ? null : (JSON.parse(row.bounce) as MessageBounce),
    auto_reply: row.auto_reply === 1,
  }
}
