import type { FastifyRequest } from 'fastify'
import { invalid } from '../errors.ts'

// Checks every API request passes before its schema: what no schema says, once for all routes
// (web/app.ts registers them as preValidation hooks).

/** No string the API takes may hold a NUL: no mail header, address, name or id has one, and PostgreSQL refuses it. */
export async function refuseNul(req: FastifyRequest): Promise<void> {
  const walk = (v: unknown, path: string): void => {
    if (typeof v === 'string') {
      if (v.includes('\0')) throw invalid(path, `${path} contains a NUL character (\\u0000); remove it.`)
    } else if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`))
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k)
  }
  walk(req.params, '')
  walk(req.query, '')
  walk(req.body, '')
}

/**
 * An action that takes no body (connect, test, retry, DELETE…) refuses one with fields instead of ignoring
 * them: a client that thinks it passes options should learn that it does not. `{}` is fine (many clients send it).
 */
export async function refuseUnexpectedBody(req: FastifyRequest): Promise<void> {
  if (req.routeOptions.schema?.body || req.body === undefined || req.body === null) return
  const keys = typeof req.body === 'object' && !Array.isArray(req.body) ? Object.keys(req.body) : undefined
  if (keys?.length === 0) return
  const field = keys?.[0] ?? 'body'
  throw invalid(field, `${req.method} ${req.routeOptions.url} takes no body; remove ${keys ? `"${field}"` : 'it'}.`)
}

/**
 * An integer in a query string is digits: TypeBox's conversion would read `limit=1.5` as 1 and `limit=1e2` as
 * 100, answering a request the client did not make.
 */
export async function refuseNonIntegerQuery(req: FastifyRequest): Promise<void> {
  const fields = (req.routeOptions.schema?.querystring as { properties?: Record<string, { type?: string }> } | undefined)?.properties
  if (!fields || !req.query || typeof req.query !== 'object') return
  for (const [k, v] of Object.entries(req.query)) {
    if (fields[k]?.type === 'integer' && typeof v === 'string' && !/^-?\d+$/.test(v.trim())) throw invalid(k, `${k} must be integer, got "${v}"; send whole digits.`)
  }
}
