import type { FastifyInstance, FastifyRequest } from 'fastify'
import { hasScope, reachesServer, type ApiAccess, type ApiTokenService, type Scope } from '../access/api-tokens.ts'
import { MailbridgeError } from '../errors.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** The API token a /api/v1 request authenticated with (web/ only decorates requests). */
    apiToken?: ApiAccess
  }
  interface FastifyContextConfig {
    /** The scope a route needs; left out, scopeFor() decides from its method and URL. */
    scope?: Scope
  }
}

/**
 * The scope a route needs (design.md §10): POST /mail sends, GET /mail… reads the queue, GET /messages… reads
 * fetched messages, and everything else (servers, settings, retry and cancel, tokens, the audit log) is admin.
 */
export function scopeFor(method: string, url: string): Scope {
  const path = url.replace(/^\/api\/v1/, '')
  const read = method === 'GET' || method === 'HEAD'
  const under = (p: string) => path === p || path.startsWith(`${p}/`)
  if (method === 'POST' && path === '/mail') return 'mail:send'
  if (read && under('/mail')) return 'mail:read'
  if (read && under('/messages')) return 'messages:read'
  return 'admin'
}

/** Which server a mail or a message belongs to, by its id: a token limited to servers reads only theirs. */
export interface Owners {
  mail(id: string): Promise<string | null>
  messages(id: string): Promise<string | null>
}

const bearer = (req: FastifyRequest): string | undefined => {
  const h = req.headers.authorization
  return h?.startsWith('Bearer ') ? h.slice(7).trim() : undefined
}

const forbidden = (message: string) => new MailbridgeError('forbidden', { message })

const limitedTo = (a: ApiAccess) => `This API token (${a.name}) is limited to the servers ${a.server_ids!.join(', ')}`

/**
 * The one gate of /api/v1: every route needs a live API token (401), the scope its route declares (403), and a
 * token limited to servers may name only those (`server_id` in the query or body) and read only the mails and
 * messages that belong to them (403). Each route's scope is written into the OpenAPI document, as its security
 * requirement and in its description. Lists and server selection narrow themselves to `request.apiToken`.
 */
export function guardApi(api: FastifyInstance, deps: { tokens: ApiTokenService; owners: Owners }): void {
  api.decorateRequest('apiToken', undefined)
  api.addHook('onRoute', (route) => {
    const method = Array.isArray(route.method) ? route.method[0]! : route.method
    const scope = (route.config ??= {}).scope ?? scopeFor(method, route.url)
    route.config.scope = scope
    const schema = route.schema ?? {}
    const description = [(schema as { description?: string }).description, `Needs an API token with the scope \`${scope}\`${scope === 'admin' ? '' : ' (or `admin`)'}.`].filter(Boolean).join('\n\n')
    route.schema = { ...schema, description, security: [{ bearer: [scope] }] } as typeof schema
  })
  api.addHook('onRequest', async (req) => {
    const token = bearer(req)
    const access = token ? await deps.tokens.verify(token) : undefined
    if (!access) throw new MailbridgeError('unauthorized')
    req.apiToken = access
    // Before the body is read: a token without the scope learns nothing about what the route would accept.
    const scope = req.routeOptions.config.scope
    if (scope && !hasScope(access, scope)) {
      throw forbidden(`This API token (${access.name}) lacks the scope ${scope}, which ${req.method} ${req.routeOptions.url} needs: create a token with it (Settings → Technical → API Tokens, or POST /api/v1/api-tokens).`)
    }
  })
  // After validation: the ids below are the ones the schemas accepted.
  api.addHook('preHandler', async (req) => {
    const access = req.apiToken!
    if (access.server_ids === null) return
    for (const [where, value] of [['query', req.query], ['body', req.body]] as const) {
      const named = (value as { server_id?: unknown } | undefined)?.server_id
      if (typeof named === 'string' && !reachesServer(access, named)) throw forbidden(`${limitedTo(access)}; server ${named} (server_id in the ${where}) is not one of them.`)
    }
    const id = (req.params as { id?: unknown }).id
    const kind = /^\/api\/v1\/(mail|messages)\/:id/.exec(req.routeOptions.url ?? '')?.[1] as keyof Owners | undefined
    if (kind && typeof id === 'string') {
      const owner = await deps.owners[kind](id)
      if (!reachesServer(access, owner)) throw forbidden(`${limitedTo(access)}; ${kind === 'mail' ? 'mail' : 'message'} ${id} belongs to server ${owner ?? '(none)'}.`)
    }
  })
}
