import { Type } from 'typebox'
import type { CredentialRow, SignInRow } from '../db/schema.ts'
import type { ProviderSpec } from './providers.ts'
import { asksAdminConsent } from './sign-ins.ts'

export type TokenStatus = 'valid' | 'missing' | 'expired' | 'invalid'

/** The `token` object every server shows (design.md §6). */
export interface TokenView {
  status: TokenStatus
  valid: boolean
  label: string
  expires_at: string | null
  last_error: string | null
  /** The mailbox's sign-in under way (a device code) or the last one's outcome; absent for servers without OAuth. */
  sign_in?: SignInView | null
  /** Microsoft asked for an administrator's consent: the server's page offers "Grant admin consent". */
  admin_consent_required?: boolean
}

/** A sign-in as a server shows it: the code and where to enter it while pending, else how it ended and why. */
export interface SignInView {
  flow: string
  state: string
  user_code: string | null
  verification_uri: string | null
  expires_at: string | null
  reason: string | null
  error_code: string | null
}

const SignInSchema = Type.Union([
  Type.Object(
    {
      flow: Type.String({ description: '"device_code", "authorization_code" or "admin_consent"' }),
      state: Type.String({ description: '"pending" (a device code waiting for the person), "completed", "expired", "declined", "failed", "admin_consented"' }),
      user_code: Type.Union([Type.String(), Type.Null()], { description: 'While a device code is pending: the code to enter at verification_uri' }),
      verification_uri: Type.Union([Type.String(), Type.Null()]),
      expires_at: Type.Union([Type.String(), Type.Null()]),
      reason: Type.Union([Type.String(), Type.Null()], { description: 'Why it stopped, and what to do' }),
      error_code: Type.Union([Type.String(), Type.Null()], { description: 'The provider\'s answer that ended it: AADSTS90094, authorization_declined, expired_token, cancel' }),
    },
    { additionalProperties: false },
  ),
  Type.Null(),
])

/** The token view's schema, as every server's `token` field shows it; `none` is a server that uses no OAuth. */
export const TokenSchema = Type.Object(
  {
    status: Type.Union([Type.Literal('valid'), Type.Literal('missing'), Type.Literal('expired'), Type.Literal('invalid'), Type.Literal('none')]),
    valid: Type.Boolean(),
    label: Type.String(),
    expires_at: Type.Union([Type.String(), Type.Null()]),
    last_error: Type.Union([Type.String(), Type.Null()]),
    sign_in: Type.Optional(SignInSchema),
    admin_consent_required: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
)

/** The token view with the mailbox's sign-in: a device code shown while pending, and whether an admin must consent. */
export function withSignIn(view: TokenView, credential: CredentialRow | undefined, row: SignInRow | undefined): TokenView {
  const sign_in: SignInView | null = row
    ? { flow: row.flow, state: row.state, user_code: row.state === 'pending' ? row.user_code : null, verification_uri: row.state === 'pending' ? row.verification_uri : null, expires_at: row.expires_at, reason: row.reason, error_code: row.error_code }
    : null
  // A working token needs nothing from an admin; else the last sign-in's answer, or the credential's last refusal.
  const admin_consent_required = !view.valid && row?.state !== 'admin_consented' && (asksAdminConsent(row?.error_code) || asksAdminConsent(credential?.last_error_code))
  return { ...view, sign_in, admin_consent_required }
}

/** What a server's badge says of its credential: only a refresh token whose last refresh or use did not fail is Valid. */
export function tokenView(p: ProviderSpec, row: CredentialRow | undefined): TokenView {
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
