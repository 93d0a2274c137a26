/**
 * The one error table: every code has an HTTP status and the message an admin reads (in JSON and on HTML
 * pages alike). `{name}` placeholders are filled from the error's detail. 5xx codes show a generic text and
 * log the detail instead.
 */
export const codes = {
  bad_request: { status: 400, admin: '{message}' },
  validation: { status: 400, admin: '{message}' },
  unauthorized: { status: 401, admin: 'Send a valid API token as "Authorization: Bearer <token>".' },
  forbidden: { status: 403, admin: '{message}' },
  not_found: { status: 404, admin: '{what} {id} does not exist.' },
  conflict: { status: 409, admin: '{message}' },
  too_large: { status: 413, admin: '{message}' },
  credentials_missing: {
    status: 409,
    admin: 'Enter the {provider} Credentials (Client ID and Client Secret) in Settings → General Settings first.',
  },
  client_certificate_refused: {
    status: 422,
    admin: '{company} refused this certificate ({code}) when Mailbridge tried it for {mailbox}: {action} Nothing was saved; the stored credentials are still used. A certificate uploaded a moment ago may take a minute to work: save it again shortly.',
  },
  client_secret_refused: {
    status: 422,
    admin: '{company} refused this Client Secret ({code}) when Mailbridge tried it for {mailbox}: {action} Nothing was saved; the stored secret is still used. A secret created a moment ago may take a minute to work: save it again shortly.',
  },
  username_missing: { status: 409, admin: 'Set the server\'s Username to the mailbox address before connecting.' },
  state_invalid: { status: 400, admin: 'This sign-in link is unknown or was forged. Click "Connect your {provider} account" again.' },
  state_session_missing: { status: 400, admin: 'This sign-in was started from an admin session this browser does not send to this address: the admin UI must be opened at Mailbridge\'s public URL (MAILBRIDGE_BASE_URL), not on another host name such as 127.0.0.1 or localhost. Open Mailbridge at the link below, sign in, and click "Connect your {provider} account" again.' },
  state_used: { status: 400, admin: 'This sign-in link was already used. If the server does not show a valid token, click Connect again.' },
  state_expired: { status: 400, admin: 'This sign-in link expired (links last 10 minutes). Click Connect again.' },
  provider_refused: { status: 400, admin: '{provider} refused the sign-in: {description}' },
  identity_mismatch: {
    status: 403,
    admin: 'Signed in as {actual}, but this server is for {expected}. Sign in to {provider} with {expected} and connect again.',
  },
  token_error: { status: 502, admin: '{message}' },
  /** A stored endpoint or server host that tokens may not go to (design.md §10): nothing was sent. */
  untrusted_host: { status: 409, admin: '{message}' },
  fetch_failed: { status: 502, admin: '{message}' },
  database_busy: {
    status: 503,
    admin: 'The database is busy: another process held its write lock too long. Nothing was changed; try again in a few seconds.',
  },
  storage_full: {
    status: 507,
    admin: 'The database has no room left (disk full or its size limit reached). Nothing was changed; free disk space, then try again.',
  },
  internal: { status: 500, admin: 'Something went wrong inside Mailbridge; the details are in its log.' },
} as const satisfies Record<string, { status: number; admin: string }>

export type ErrorCode = keyof typeof codes

const fill = (template: string, detail: Record<string, unknown>): string =>
  template.replace(/\{(\w+)\}/g, (_, k: string) => (detail[k] === undefined ? `{${k}}` : String(detail[k])))

export class MailbridgeError extends Error {
  readonly status: number
  constructor(readonly code: ErrorCode, readonly detail: Record<string, unknown> & { field?: string } = {}, options?: ErrorOptions) {
    super(fill(codes[code].admin, detail), options)
    this.name = 'MailbridgeError'
    this.status = codes[code].status
  }
  /** What a client may see: 5xx never shows internals. */
  get publicMessage(): string {
    return this.status >= 500 && this.code === 'internal' ? codes.internal.admin : this.message
  }
}

/**
 * A database driver's refusal that an operator can act on, as its code; anything else stays a 500. SQLite's
 * result codes (extended ones start with the primary: SQLITE_BUSY_SNAPSHOT) and PostgreSQL's SQLSTATEs.
 * @see https://www.sqlite.org/rescode.html
 * @see https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export function databaseErrorCode(e: unknown): ErrorCode | undefined {
  const code = (e as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return undefined
  if (/^SQLITE_(BUSY|LOCKED)/.test(code) || code === '55P03' || code === '53300') return 'database_busy'
  if (code.startsWith('SQLITE_FULL') || code === '53100') return 'storage_full'
  return undefined
}

export const invalid = (field: string, message: string) => new MailbridgeError('validation', { field, message })
export const notFound = (what: string, id: string | number) => new MailbridgeError('not_found', { what, id })
