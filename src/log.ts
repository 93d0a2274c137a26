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
]

export const redactPaths = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  ...SECRET_FIELDS.map((f) => `*.*.${f}`),
  'req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]', 'req.query.code', 'req.query.state',
]

export function createLogger(level = 'info', destination?: pino.DestinationStream): Logger {
  const options = { level, redact: { paths: redactPaths, censor: '[redacted]' }, base: { svc: 'mailbridge' } }
  return destination ? pino(options, destination) : pino(options)
}
