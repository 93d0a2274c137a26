import { Type, type Static } from 'typebox'
import type { OutgoingServerRow } from '../db/schema.ts'
import { TenantId } from '../oauth/tenant.ts'
import { TokenSchema, type TokenView } from '../oauth/token-view.ts'

export const Authentication = Type.Union([Type.Literal('outlook'), Type.Literal('outlook_app'), Type.Literal('gmail'), Type.Literal('login'), Type.Literal('none')], {
  description: '"outlook": a person consents (OAuth); "outlook_app": Microsoft app-only access with client credentials (needs tenant_id); "gmail": Google OAuth; "login": password; "none".',
})

export const Encryption = Type.Union([Type.Literal('starttls'), Type.Literal('ssl'), Type.Literal('none')])

export const OutgoingTransport = Type.Union([Type.Literal('smtp'), Type.Literal('graph')], {
  description: '"smtp" (default): submit to host:port; "graph": Microsoft Graph sendMail, for "outlook" and "outlook_app" only (host, port and encryption are then not used). Pick Graph when SMTP AUTH is disabled for the mailbox (5.7.139).',
})

export const OutgoingServer = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    authentication: Authentication,
    transport: OutgoingTransport,
    host: Type.String(),
    port: Type.Integer(),
    encryption: Encryption,
    username: Type.String(),
    password_set: Type.Boolean(),
    from_filter: Type.Union([Type.String(), Type.Null()]),
    sequence: Type.Integer(),
    max_per_minute: Type.Union([Type.Integer(), Type.Null()]),
    paused_until: Type.Union([Type.String(), Type.Null()]),
    pause_reason: Type.Union([Type.String(), Type.Null()]),
    tenant_id: Type.Union([Type.String(), Type.Null()]),
    token: TokenSchema,
    created_at: Type.String(),
    updated_at: Type.String(),
  },
  { additionalProperties: false, $id: 'OutgoingServer' },
)
export type OutgoingServer = Static<typeof OutgoingServer>

const fields = {
  name: Type.String({ minLength: 1, maxLength: 200, description: 'The Description shown in lists' }),
  authentication: Authentication,
  transport: OutgoingTransport,
  host: Type.String({ minLength: 1, maxLength: 255 }),
  port: Type.Integer({ minimum: 1, maximum: 65535 }),
  encryption: Encryption,
  username: Type.String({ maxLength: 320 }),
  password: Type.Union([Type.String({ maxLength: 1000 }), Type.Null()], { description: 'Write-only; only for authentication "login"' }),
  from_filter: Type.Union([Type.String({ maxLength: 1000 }), Type.Null()]),
  sequence: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
  max_per_minute: Type.Union([Type.Integer({ minimum: 1, maximum: 100_000 }), Type.Null()]),
  tenant_id: TenantId,
}

// One input shape for create and update; on create the service requires name and fills provider defaults.
export const OutgoingServerInput = Type.Partial(Type.Object(fields), { additionalProperties: false })
export type OutgoingServerInput = Static<typeof OutgoingServerInput>

export function toApi(row: OutgoingServerRow, token: TokenView | null): OutgoingServer {
  return {
    id: row.id,
    name: row.name,
    authentication: row.authentication as OutgoingServer['authentication'],
    transport: row.transport,
    host: row.host,
    port: row.port,
    encryption: row.encryption as OutgoingServer['encryption'],
    username: row.username,
    password_set: row.password !== null,
    from_filter: row.from_filter,
    sequence: row.sequence,
    max_per_minute: row.max_per_minute,
    paused_until: row.paused_until,
    pause_reason: row.pause_reason,
    tenant_id: row.tenant_id,
    token: token ?? { status: 'none', valid: false, label: 'No OAuth token: this server does not use OAuth', expires_at: null, last_error: null },
    created_at: row.created_at,
    updated_at: row.updated_at,
  }
}
