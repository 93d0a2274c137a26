import { Type, type Static } from 'typebox'
import { MailBounce } from '../bounces/model.ts'
import type { MailRow } from '../db/schema.ts'

const Address = Type.String({ minLength: 3, maxLength: 1000, description: '"Name <address>" or a bare address' })

export const SendMailBody = Type.Object(
  {
    from: Type.Optional(Address),
    to: Type.Array(Address, { maxItems: 500 }),
    cc: Type.Optional(Type.Array(Address, { maxItems: 500 })),
    bcc: Type.Optional(Type.Array(Address, { maxItems: 500 })),
    reply_to: Type.Optional(Address),
    subject: Type.String({ maxLength: 998 }),
    text: Type.Optional(Type.String()),
    html: Type.Optional(Type.String()),
    attachments: Type.Optional(
      Type.Array(
        Type.Object(
          {
            filename: Type.String({ minLength: 1, maxLength: 255 }),
            content_type: Type.String({ minLength: 3, maxLength: 255 }),
            content_base64: Type.String(),
          },
          { additionalProperties: false },
        ),
        { maxItems: 250 },
      ),
    ),
    headers: Type.Optional(Type.Record(Type.String({ maxLength: 76 }), Type.String({ maxLength: 998 }))),
    server_id: Type.Optional(Type.String({ maxLength: 64 })),
    idempotency_key: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: false },
)
export type SendMailBody = Static<typeof SendMailBody>

export const MailState = Type.Union([Type.Literal('outgoing'), Type.Literal('sending'), Type.Literal('sent'), Type.Literal('exception'), Type.Literal('cancel'), Type.Literal('bounced')])

export const Mail = Type.Object(
  {
    id: Type.String(),
    state: MailState,
    message_id: Type.String(),
    from: Type.String(),
    to: Type.Array(Type.String()),
    cc: Type.Array(Type.String()),
    bcc: Type.Array(Type.String()),
    subject: Type.String(),
    failure_type: Type.Union([Type.String(), Type.Null()]),
    failure_reason: Type.Union([Type.String(), Type.Null()]),
    attempts: Type.Integer(),
    next_attempt_at: Type.Union([Type.String(), Type.Null()]),
    server_id: Type.String(),
    smtp_response: Type.Union([Type.String(), Type.Null()]),
    sent_at: Type.Union([Type.String(), Type.Null()]),
    created_at: Type.String(),
    /** Delivery reports about this mail, one line per recipient, oldest first (design §10). */
    bounces: Type.Array(MailBounce),
  },
  { additionalProperties: false },
)
export type Mail = Static<typeof Mail>

export function mailToApi(row: MailRow, bounces: MailBounce[] = []): Mail {
  return {
    id: row.id,
    state: row.state,
    message_id: row.message_id,
    from: row.from_addr,
    to: JSON.parse(row.to_addrs),
    cc: JSON.parse(row.cc_addrs),
    bcc: JSON.parse(row.bcc_addrs),
    subject: row.subject,
    failure_type: row.failure_type,
    failure_reason: row.failure_reason,
    attempts: row.attempts,
    next_attempt_at: row.state === 'outgoing' ? row.next_attempt_at : null,
    server_id: row.server_id,
    smtp_response: row.smtp_response,
    sent_at: row.sent_at,
    created_at: row.created_at,
    bounces,
  }
}
