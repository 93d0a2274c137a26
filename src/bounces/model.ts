import { Type, type Static } from 'typebox'
import type { MailBounceRow } from '../db/schema.ts'

const NullableText = (description?: string) => Type.Union([Type.String(description ? { description } : {}), Type.Null()])

/** RFC 3464 §2.3.3. */
export const BounceAction = Type.Union([Type.Literal('failed'), Type.Literal('delayed'), Type.Literal('delivered'), Type.Literal('relayed'), Type.Literal('expanded')])

/** One recipient's line of a delivery report, as a mail's `bounces[]` shows it (design §10). */
export const MailBounce = Type.Object(
  {
    recipient: Type.String(),
    status: NullableText('RFC 3463 status code, such as 5.1.1'),
    action: BounceAction,
    diagnostic: NullableText("The receiving server's reply, as the report quotes it"),
    reported_at: Type.String({ description: 'When Mailbridge stored the report' }),
    message_id: Type.String({ description: 'The stored report: GET /api/v1/messages/{message_id}' }),
  },
  { additionalProperties: false },
)
export type MailBounce = Static<typeof MailBounce>

/** What a fetched message that is a delivery report says, as `bounce` on the message shows it (design §10). */
export const MessageBounce = Type.Object(
  {
    mail_id: NullableText('The mail Mailbridge sent that the report is about; null for another mail'),
    original_message_id: NullableText('The Message-ID of the mail the report is about'),
    recipients: Type.Array(
      Type.Object({ recipient: Type.String(), status: NullableText(), action: BounceAction, diagnostic: NullableText() }, { additionalProperties: false }),
    ),
  },
  { additionalProperties: false },
)
export type MessageBounce = Static<typeof MessageBounce>

export const mailBounceToApi = (row: MailBounceRow): MailBounce => ({
  recipient: row.recipient,
  status: row.status,
  action: row.action as MailBounce['action'],
  diagnostic: row.diagnostic,
  reported_at: row.reported_at,
  message_id: row.message_id,
})
