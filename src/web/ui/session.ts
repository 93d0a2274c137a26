import cookie from '@fastify/cookie'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { AdminSession, AdminSessionService } from '../../access/admin-sessions.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** The signed-in admin, when the request carries a live session cookie (web/ only decorates requests). */
    admin?: AdminSession
  }
}

export const SESSION_COOKIE = 'mb_session'

/**
 * HttpOnly (no script reads it), SameSite=Lax (sent on the top-level GET back from Microsoft, not on
 * cross-site POSTs), Secure when the public URL is https.
 * @see https://cheatsheetseries.owasp.org/cheatsheets/Session_Management_Cheat_Sheet.html#cookies
 */
export const cookieOptions = (baseUrl: URL) => ({ path: '/', httpOnly: true, sameSite: 'lax' as const, secure: baseUrl.protocol === 'https:' })

export function setSessionCookie(reply: FastifyReply, baseUrl: URL, token: string): void {
  reply.setCookie(SESSION_COOKIE, token, cookieOptions(baseUrl))
}

export function clearSessionCookie(reply: FastifyReply, baseUrl: URL): void {
  reply.clearCookie(SESSION_COOKIE, cookieOptions(baseUrl))
}

/** The admin session's id, for binding an OAuth state to the browser that started Connect (design.md §2). */
export const sessionOf = (req: FastifyRequest): string | undefined => req.admin?.id

/**
 * Reads the session cookie on every request outside the JSON API (the admin pages and the OAuth callback)
 * and sets `request.admin`. Wrapped with fastify-plugin so the hook reaches sibling plugins.
 */
export const adminSession = fp<{ sessions: AdminSessionService }>(
  async (app, { sessions }) => {
    await app.register(cookie)
    app.decorateRequest('admin', undefined)
    app.addHook('onRequest', async (req) => {
      if (req.url.startsWith('/api/')) return
      const token = req.cookies[SESSION_COOKIE]
      if (token) req.admin = await sessions.find(token)
    })
  },
  { fastify: '5.x', name: 'mailbridge-admin-session' },
)
