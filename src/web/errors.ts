import type { FastifyError, FastifyInstance } from 'fastify'
import { databaseErrorCode, MailbridgeError } from '../errors.ts'

export interface ErrorBody {
  error: { code: string; message: string; field?: string }
}

const envelope = (code: string, message: string, field?: string): ErrorBody => ({ error: { code, message, ...(field ? { field } : {}) } })

/** `body/port must be integer` → field `port`, message `port must be integer`. */
function fromValidation(e: FastifyError): ErrorBody {
  const v = e.validation?.[0]
  const context = e.validationContext ?? 'body'
  let field = v?.instancePath?.replace(/^\//, '').replace(/\//g, '.') || undefined
  const params = v?.params as { additionalProperty?: string; missingProperty?: string } | undefined
  if (params?.additionalProperty) field = [field, params.additionalProperty].filter(Boolean).join('.')
  if (params?.missingProperty) field = [field, params.missingProperty].filter(Boolean).join('.')
  let message: string
  if (v?.keyword === 'additionalProperties') message = `${field} is not a known field of the ${context}; remove it`
  else if (v?.keyword === 'required') message = `${field} is required in the ${context}`
  else message = `${field ?? context} ${v?.message ?? 'is invalid'}`
  return envelope('validation', message, field ?? context)
}

/** One handler writes the JSON envelope (design.md §6); a 5xx shows a generic message and logs the detail. */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((e: FastifyError | MailbridgeError | Error, req, reply) => {
    const fromDatabase = databaseErrorCode(e)
    if (fromDatabase) e = new MailbridgeError(fromDatabase, {}, { cause: e })
    if (e instanceof MailbridgeError) {
      if (e.status >= 500) req.log.error({ err: e }, 'request failed')
      const field = typeof e.detail.field === 'string' ? e.detail.field : undefined
      return reply.code(e.status).send(envelope(e.code, e.publicMessage, field))
    }
    const fe = e as FastifyError
    if (fe.validation) return reply.code(400).send(fromValidation(fe))
    const status = fe.statusCode ?? 500
    if (status < 500) {
      const byCode: Record<string, [string, string]> = {
        FST_ERR_CTP_BODY_TOO_LARGE: ['too_large', 'The request body is too large.'],
        FST_ERR_CTP_INVALID_MEDIA_TYPE: ['unsupported_media_type', 'Send JSON with Content-Type: application/json.'],
        FST_ERR_CTP_EMPTY_JSON_BODY: ['bad_request', 'The JSON body is empty: send an object, or no Content-Type header.'],
        FST_ERR_CTP_INVALID_JSON_BODY: ['bad_request', 'The body is not valid JSON.'],
      }
      const [code, message] = byCode[fe.code] ?? ['bad_request', fe.message]
      return reply.code(status).send(envelope(code, status === 400 && fe.code === undefined ? fe.message : message))
    }
    req.log.error({ err: e }, 'request failed')
    return reply.code(500).send(envelope('internal', 'Something went wrong inside Mailbridge; the details are in its log.'))
  })
  app.setNotFoundHandler((req, reply) => reply.code(404).send(envelope('not_found', `No route ${req.method} ${req.url.split('?')[0]}.`)))
}
