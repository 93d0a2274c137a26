import type { FastifyRequest } from 'fastify'
import { invalid } from '../errors.ts'

/**
 * A check every API request passes before its schema: what no schema says, once for all routes
 * (web/app.ts registers it as a preValidation hook).
 */

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
