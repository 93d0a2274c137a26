import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ADMIN_USERNAME } from '../access/admin-sessions.ts'
import type { Actor, AuditDetail, AuditEntry, AuditLog } from '../access/audit-log.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** What a handler adds to its audit entry (a token's name): names and ids only, never a secret. */
    auditNote?: AuditDetail
    /** The id of what a handler created, where neither its answer's JSON nor its redirect names it. */
    auditTarget?: string
  }
}

/** `outgoing-servers` → `outgoing_server`: the thing an URL's first segment names. */
const thing = (segment: string): string => {
  const s = segment.replace(/-/g, '_')
  return s === 'settings' || s.endsWith('ss') || !s.endsWith('s') ? s : s.slice(0, -1)
}

/** What a request to a route did, from its method and URL segments: created, updated, deleted, or its own verb. */
function actionOf(method: string, segments: string[]): string {
  const what = thing(segments[0]!)
  const sub = segments[2]
  // The admin UI deletes and revokes with POST …/delete, …/revoke: HTML forms cannot send DELETE.
  if (method === 'DELETE' || sub === 'delete' || sub === 'revoke') return `${what}.${what === 'api_token' ? 'revoked' : 'deleted'}`
  if (sub) return `${what}.${sub.replace(/-/g, '_')}`
  return `${what}.${method === 'POST' && segments.length === 1 && what !== 'settings' ? 'created' : 'updated'}`
}

const fieldsOf = (body: unknown): string[] | undefined => (body && typeof body === 'object' && !Array.isArray(body) ? Object.keys(body) : undefined)

/** The id of what a POST created: in its JSON answer (API) or in the page it sends to (admin UI). */
function createdId(reply: FastifyReply, payload: unknown): string | undefined {
  const location = reply.getHeader('location')
  const fromPage = typeof location === 'string' ? /^\/admin\/[\w-]+\/([0-9a-f]{32})\b/.exec(location)?.[1] : undefined
  if (fromPage) return fromPage
  if (typeof payload !== 'string' || !payload.startsWith('{')) return undefined
  try {
    const id = (JSON.parse(payload) as { id?: unknown }).id
    return typeof id === 'string' ? id : undefined
  } catch {
    return undefined
  }
}

const actorOf = (req: FastifyRequest): Actor | undefined =>
  req.apiToken ? { type: 'api_token', name: req.apiToken.name, id: req.apiToken.id } : req.admin ? { type: 'admin', name: req.admin.username, id: req.admin.id } : undefined

/**
 * The audit entry of an answered request, or undefined when it changed nothing an admin should see: the admin
 * actions of the API (every non-GET route of the `admin` scope) and of the admin UI (its forms), sign-ins and
 * sign-outs, and a finished Connect (the OAuth callback). Only what succeeded is recorded, and only names and ids:
 * which fields a change named, never their values.
 */
export function auditEntryFor(req: FastifyRequest, reply: FastifyReply, payload: unknown): { actor: Actor; entry: AuditEntry } | undefined {
  const url = req.routeOptions.url
  const status = reply.statusCode
  if (!url) return undefined
  const client = req.ip
  const params = req.params as { id?: string; key?: string }
  const note = req.auditNote

  if (url === '/admin/login' && req.method === 'POST') {
    if (status === 303) return { actor: { type: 'admin', name: ADMIN_USERNAME }, entry: { action: 'admin.signed_in', client } }
    // The typed username is not kept: people paste passwords into it.
    if (status === 401 || status === 429) return { actor: { type: 'anonymous', name: 'sign-in form' }, entry: { action: status === 401 ? 'admin.sign_in_failed' : 'admin.sign_in_refused', client } }
    return undefined
  }
  if (status >= 400) return undefined

  // A Connect finished: the callback sends the browser to the server's page.
  if (req.method === 'GET' && url.endsWith('/confirm') && status === 302) {
    const to = /^\/admin\/([\w-]+)\/([0-9a-f]{32})\?connected=1/.exec(String(reply.getHeader('location') ?? ''))
    if (!to) return undefined
    return { actor: actorOf(req) ?? { type: 'anonymous', name: 'consent link' }, entry: { action: `${thing(to[1]!)}.connected`, target: to[2], client } }
  }
  if (req.method === 'GET' || req.method === 'HEAD') return undefined

  const actor = actorOf(req)
  if (!actor) return undefined
  let segments: string[]
  const api = url.startsWith('/api/v1/')
  if (api) {
    if (req.routeOptions.config.scope !== 'admin') return undefined
    segments = url.slice('/api/v1/'.length).split('/')
  } else if (url.startsWith('/admin/')) {
    if (url === '/admin/logout') return { actor, entry: { action: 'admin.signed_out', client } }
    segments = url.slice('/admin/'.length).split('/')
  } else return undefined

  let action = actionOf(req.method, segments)
  const body = req.body as Record<string, unknown> | undefined
  // The admin UI saves a server and sends the admin to Microsoft or Google with one button.
  if (body?.then === 'connect') action = `${thing(segments[0]!)}.connect`
  const target = req.auditTarget ?? params.id ?? params.key ?? (typeof body?.key === 'string' ? body.key : undefined) ?? (action.endsWith('.created') ? createdId(reply, payload) : undefined)
  // A JSON body names only what changes; a form posts every field it has, so naming them would say nothing.
  const fields = api && action.endsWith('.updated') ? fieldsOf(body) : undefined
  const detail: AuditDetail = { ...(fields?.length ? { fields } : {}), ...note }
  return { actor, entry: { action, target, detail: Object.keys(detail).length ? detail : undefined, client } }
}

/**
 * Record the audit entry of every answered request (audit-log.ts), before the answer leaves: whoever reads the
 * log after an answer finds the entry. A failed write is logged and does not undo the action, which is done.
 */
export function auditTrail(app: FastifyInstance, audit: AuditLog): void {
  app.decorateRequest('auditNote', undefined)
  app.decorateRequest('auditTarget', undefined)
  app.addHook('onSend', async (req, reply, payload) => {
    const e = auditEntryFor(req, reply, payload)
    if (e) {
      try {
        await audit.record(e.actor, e.entry)
      } catch (err) {
        req.log.error({ err, action: e.entry.action }, 'audit entry not written')
      }
    }
    return payload
  })
}
