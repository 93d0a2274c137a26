import { Type, type Static } from 'typebox'
import type { WebhookDeliveryRow, WebhookRow } from '../db/schema.ts'

export const EVENTS = ['message.received', 'mail.sent', 'mail.failed', 'mail.bounced', 'token.invalid'] as const
export type WebhookEvent = (typeof EVENTS)[number]
export const EventName = Type.Union([Type.Literal('message.received'), Type.Literal('mail.sent'), Type.Literal('mail.failed'), Type.Literal('mail.bounced'), Type.Literal('token.invalid')])

export const Webhook = Type.Object(
  {
    id: Type.String(),
    url: Type.String(),
    events: Type.Array(EventName),
    /** Only in the answer to POST: the signing secret, shown once. */
    secret: Type.Optional(Type.String()),
    secret_set: Type.Boolean(),
    created_at: Type.String(),
    updated_at: Type.String(),
  },
  { additionalProperties: false, $id: 'Webhook' },
)
export type Webhook = Static<typeof Webhook>

export const WebhookInput = Type.Partial(
  Type.Object({
    url: Type.String({ minLength: 1, maxLength: 2000, description: 'http(s) URL the events are POSTed to' }),
    events: Type.Array(EventName, { minItems: 1, uniqueItems: true }),
    secret: Type.String({ minLength: 16, maxLength: 200, description: 'Write-only; generated when not given' }),
  }),
  { additionalProperties: false },
)
export type WebhookInput = Static<typeof WebhookInput>

export const Delivery = Type.Object(
  {
    id: Type.String(),
    webhook_id: Type.String(),
    event: EventName,
    state: Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed')]),
    attempts: Type.Integer(),
    next_attempt_at: Type.String(),
    last_status: Type.Union([Type.Integer(), Type.Null()]),
    last_error: Type.Union([Type.String(), Type.Null()]),
    delivered_at: Type.Union([Type.String(), Type.Null()]),
    created_at: Type.String(),
    payload: Type.Unknown(),
  },
  { additionalProperties: false, $id: 'WebhookDelivery' },
)
export type Delivery = Static<typeof Delivery>

export const webhookToApi = (row: WebhookRow): Webhook => ({
  id: row.id,
  url: row.url,
  events: JSON.parse(row.events) as WebhookEvent[],
  secret_set: true,
  created_at: row.created_at,
  updated_at: row.updated_at,
})

export const deliveryToApi = (row: WebhookDeliveryRow): Delivery => ({
  id: row.id,
  webhook_id: row.webhook_id,
  event: row.event as WebhookEvent,
  state: row.state,
  attempts: row.attempts,
  next_attempt_at: row.next_attempt_at,
  last_status: row.last_status,
  last_error: row.last_error,
  delivered_at: row.delivered_at,
  created_at: row.created_at,
  payload: JSON.parse(row.payload),
})
