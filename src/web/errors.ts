import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { databaseErrorCode, MailbridgeError } from '../errors.ts'
import { drainThenClose, refusedBodyMessage } from './refused-body.ts'

export interface ErrorBody {
  error: { code: string; message: string; field?: string }
}

export const EMPTY_JSON_BODY = 'The JSON body is empty: send an object, or no Content-Type header.'

const envelope = (code: string, message: string, field?: string): ErrorBody => ({ error: { code, message, ...(field ? { field } : {}) } })

interface SchemaError {
  keyword: string
  instancePath?: string
  schemaPath?: string
  message?: string
  params?: { additionalProperty?: string; missingProperty?: string; requiredProperties?: string[]; allowedValue?: unknown; type?: string }
}

const fieldOf = (path: string | undefined): string | undefined => path?.replace(/^\//, '').replace(/\//g, '.') || undefined

/**
 * `body/port must be integer` → field `port`, message `port must be integer`. Reads ajv's errors (pages) and
 * TypeBox's (the API), which list every branch of a union: those are folded into one "must be a or b".
 */
function fromValidation(e: FastifyError): ErrorBody {
  const errors = (e.validation ?? []) as SchemaError[]
  const context = e.validationContext ?? 'body'
  const v = errors[0]
  let field = fieldOf(v?.instancePath)
  const join = (...parts: Array<string | undefined>) => parts.filter(Boolean).join('.')
  let message: string
  const unknown = v?.params?.additionalProperty ?? (v?.keyword === 'boolean' && v.schemaPath?.endsWith('/additionalProperties') ? '' : undefined)
  const missing = v?.params?.missingProperty ?? v?.params?.requiredProperties?.[0]
  if (unknown !== undefined) {
    field = unknown ? join(field, unknown) : field
    message = `${field} is not a known field of the ${context}; remove it`
  } else if (missing !== undefined) {
    field = join(field, missing)
    message = `${field} is required in the ${context}`
  } else {
    // A union's branches fail one by one, then the union itself: say what the branches allow.
    const siblings = errors.filter((x) => x.instancePath === v?.instancePath && x.keyword !== 'anyOf')
    const union = errors.some((x) => x.instancePath === v?.instancePath && x.keyword === 'anyOf')
    const allowed = siblings.map((x) => (x.keyword === 'const' ? JSON.stringify(x.params?.allowedValue) : x.keyword === 'type' ? x.params?.type : undefined))
    const what = union && allowed.every(Boolean) ? `must be ${siblings[0]!.keyword === 'const' ? 'one of ' : ''}${allowed.join(siblings[0]!.keyword === 'const' ? ', ' : ' or ')}` : (v?.message ?? 'is invalid')
    message = `${field ?? context} ${what}`
  }
  return envelope('validation', message, field ?? context)
}

/** The router's own refusals (a badly encoded path, a path segment too long), in the same envelope. */
export function frameworkErrors(e: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  const message =
    e.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'A part of the path is over 256 characters; ids are at most 64, parameter keys 200.' : 'The path is not valid percent-encoded UTF-8; encode it with encodeURIComponent.'
  void reply.code(e.statusCode ?? 400).send(envelope('bad_request', message))
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
    if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      drainThenClose(req, reply)
      return reply.code(413).header('connection', 'close').send(envelope('too_large', refusedBodyMessage(req)))
    }
    if (status < 500) {
      const byCode: Record<string, [string, string]> = {
        FST_ERR_CTP_INVALID_MEDIA_TYPE: ['unsupported_media_type', 'Send JSON with Content-Type: application/json.'],
        FST_ERR_CTP_EMPTY_JSON_BODY: ['bad_request', EMPTY_JSON_BODY],
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
