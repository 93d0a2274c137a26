import { pino, type Logger } from 'pino'

export type { Logger }

/**
 * A second net behind the Secret type: any field with one of these names is masked wherever it appears
 * in a log line, one or two levels deep, including the HTTP headers fastify logs.
 */
const SECRET_FIELDS = [
  'access_token', 'refresh_token', 'id_token', 'client_secret', 'code', 'code_verifier', 'state',
  'password', 'secret', 'token', 'xoauth2', 'authorization', 'cookie', 'microsoft_outlook_client_secret', 'google_gmail_client_secret',
  'google_gmail_client_secret', 'accessToken', 'refreshToken', 'clientSecret',
  'client_assertion', 'microsoft_outlook_client_secret_next', 'microsoft_outlook_client_certificate', 'privateKey',
]

export const redactPaths = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  ...SECRET_FIELDS.map((f) => `*.*.${f}`),
  'req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]', 'req.query.code', 'req.query.state',
]

const secretParams = new Set(SECRET_FIELDS.map((f) => f.toLowerCase()))

/**
 * A URL for the log, with the values of secret-named query parameters masked: the OAuth callback arrives as
 * `/microsoft_outlook/confirm?code=…&state=…`, and fastify logs every request's URL.
 */
export function maskUrl(url: string): string {
  const q = url.indexOf('?')
  if (q < 0) return url
  const params = url
    .slice(q + 1)
    .split('&')
    .map((kv) => {
      const name = kv.split('=')[0]!
      return secretParams.has(decodeURIComponent(name).toLowerCase()) ? `${name}=[redacted]` : kv
    })
  return `${url.slice(0, q)}?${params.join('&')}`
}

interface LoggedRequest {
  method: string
  url: string
  host?: string
  ip?: string
  socket?: { remotePort?: number }
}

/** fastify's request serializer, with the URL masked (pino's redact paths cannot reach inside a string). */
const req = (r: LoggedRequest) => ({ method: r.method, url: maskUrl(r.url), host: r.host, remoteAddress: r.ip, remotePort: r.socket?.remotePort })

export function createLogger(level = 'info', destination?: pino.DestinationStream): Logger {
  const options = { level, redact: { paths: redactPaths, censor: '[redacted]' }, base: { svc: 'mailbridge' }, serializers: { req } }
  return destination ? pino(options, destination) : pino(options)
}

/**
 * An error's code for the log line, under a name of its own: `code` is among the redacted fields (the OAuth
 * code), so `{ err }` shows a database refusal as its message only ("database is locked") and not which one it is
 * (SQLITE_BUSY_SNAPSHOT, SQLITE_BUSY, 55P03).
 */
export function errorCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' || typeof code === 'number' ? String(code) : undefined
}
