import { Type } from 'typebox'
import type { CredentialRow } from '../db/schema.ts'
import type { ProviderSpec } from './providers.ts'

export type TokenStatus = 'valid' | 'missing' | 'expired' | 'invalid'

/** The `token` object every server shows (design.md §6). */
export interface TokenView {
  status: TokenStatus
  valid: boolean
  label: string
  expires_at: string | null
  last_error: string | null
}

/** The token view's schema, as every server's `token` field shows it; `none` is a server that uses no OAuth. */
export const TokenSchema = Type.Object(
  {
    status: Type.Union([Type.Literal('valid'), Type.Literal('missing'), Type.Literal('expired'), Type.Literal('invalid'), Type.Literal('none')]),
    valid: Type.Boolean(),
    label: Type.String(),
    expires_at: Type.Union([Type.String(), Type.Null()]),
    last_error: Type.Union([Type.String(), Type.Null()]),
  },
  { additionalProperties: false },
)

/** What a server's badge says of its credential: only a refresh token whose last refresh or use did not fail is Valid. */
/** What the badge reads of a credential: whether tokens exist, when the access token expires, the last error. */
export type TokenHealth = Pick<CredentialRow, 'refresh_token' | 'access_token' | 'access_expires_at' | 'last_error' | 'last_error_code'>

export function tokenView(p: ProviderSpec, row: TokenHealth | undefined): TokenView {
  // The provider could not be reached or was briefly unavailable: the link itself is fine, mails wait and retry.
  const unreachable = row?.last_error_code?.startsWith('transient:') ? row.last_error : null
  const retried = { status: 'valid', valid: true, label: `${p.label} Token Valid (the last ${p.grant === 'client_credentials' ? 'token request' : 'refresh'} could not reach ${p.label}; it is retried)`, expires_at: row?.access_expires_at ?? null, last_error: unreachable } as const
  if (p.grant === 'client_credentials') {
    // No consent, no refresh token: a token is requested on first use (or Test Connection).
    if (row?.last_error && !unreachable) return { status: 'invalid', valid: false, label: `${p.label} Token Invalid: ${row.last_error}`, expires_at: row.access_expires_at, last_error: row.last_error }
    if (!row?.access_token) {
      return { status: 'missing', valid: false, label: `${p.label} Token Missing: click Test Connection to request one`, expires_at: null, last_error: unreachable }
    }
    return unreachable ? retried : { status: 'valid', valid: true, label: `${p.label} Token Valid`, expires_at: row.access_expires_at, last_error: null }
  }
  if (!row?.refresh_token) {
    return { status: 'missing', valid: false, label: `${p.label} Token Missing: click Connect your ${p.label} account`, expires_at: null, last_error: null }
  }
  if (unreachable) return retried
  if (row.last_error) {
    const expired = /700082|70008|expired/i.test(row.last_error_code ?? '')
    return {
      status: expired ? 'expired' : 'invalid',
      valid: false,
      label: `${p.label} Token ${expired ? 'Expired' : 'Invalid'}: ${row.last_error}`,
      expires_at: row.access_expires_at,
      last_error: row.last_error,
    }
  }
  return { status: 'valid', valid: true, label: `${p.label} Token Valid`, expires_at: row.access_expires_at, last_error: null }
}
