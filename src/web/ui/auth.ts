import { timingSafeEqual } from 'node:crypto'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { randomToken } from '../../crypto/passwords.ts'
import { html, page } from '../../html.ts'
import type { AdminSessionService } from '../../access/admin-sessions.ts'
import { banner, field, formValue, seeOther } from './kit.ts'
import { cookieOptions, setSessionCookie } from './session.ts'

const LOGIN_CSRF_COOKIE = 'mb_login_csrf'

/** Only a path inside the admin UI may follow a sign-in: never another site (an open redirect). */
export const safeNext = (next: unknown): string => (typeof next === 'string' && /^\/admin(\/[\w\-./?=&%]*)?$/.test(next) && !next.startsWith('//') ? next : '/admin')

const sameToken = (a: string | undefined, b: string | undefined): boolean =>
  !!a && !!b && a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b))

/**
 * Sign-in and sign-out. There is no session before sign-in, so the sign-in form's CSRF token is a
 * double-submit cookie (OWASP CSRF Prevention Cheat Sheet, "Signed Double-Submit Cookie" without the
 * signature: the cookie is HttpOnly and SameSite=Lax, which a cross-site form cannot set or read); it stops
 * login CSRF, where another site signs the admin's browser into a session the attacker chose.
 */
export const authRoutes: FastifyPluginAsync<{ sessions: AdminSessionService; baseUrl: URL }> = async (app, { sessions, baseUrl }) => {
  const loginPage = (reply: FastifyReply, o: { next: string; username?: string; message?: string; status?: number }) => {
    const token = randomToken(24)
    reply.setCookie(LOGIN_CSRF_COOKIE, token, { ...cookieOptions(baseUrl), path: '/admin/login' })
    const body = html`<section class="card narrow"><h1>Sign in to Mailbridge</h1>
${o.message ? banner('bad', o.message) : ''}
<form method="post" action="/admin/login">
<input type="hidden" name="_csrf" value="${token}"><input type="hidden" name="next" value="${o.next}">
${field({ name: 'username', label: 'Username', value: o.username ?? 'admin', autocomplete: 'username', required: true })}
${field({ name: 'password', label: 'Password', type: 'password', autocomplete: 'current-password', required: true, hint: 'Set with MAILBRIDGE_ADMIN_PASSWORD, or generated on first start into first-start-credentials.txt in the data folder.' })}
<button type="submit">Sign in</button>
</form></section>`
    return reply.code(o.status ?? 200).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(page('Sign in', body))
  }

  app.get<{ Querystring: { next?: string } }>('/admin/login', async (req, reply) => {
    if (req.admin) return seeOther(reply, safeNext(req.query.next))
    return loginPage(reply, { next: safeNext(req.query.next) })
  })

  app.post('/admin/login', async (req, reply) => {
    const next = safeNext(formValue(req.body, 'next'))
    const username = formValue(req.body, 'username') ?? ''
    if (!sameToken(formValue(req.body, '_csrf'), req.cookies[LOGIN_CSRF_COOKIE])) {
      return loginPage(reply, { next, username, status: 403, message: 'This sign-in form expired or did not come from Mailbridge. Sign in again.' })
    }
    const result = await sessions.login(username, formValue(req.body, 'password') ?? '', req.ip)
    if (!result.ok) {
      if (result.reason === 'limited') {
        reply.header('retry-after', String(result.retryAfterS))
        const minutes = Math.ceil((result.retryAfterS ?? 60) / 60)
        return loginPage(reply, { next, username, status: 429, message: `Too many failed sign-ins from your address. Wait ${minutes} minute${minutes === 1 ? '' : 's'} and try again.` })
      }
      return loginPage(reply, { next, username, status: 401, message: 'Wrong username or password. The username is "admin".' })
    }
    reply.clearCookie(LOGIN_CSRF_COOKIE, { ...cookieOptions(baseUrl), path: '/admin/login' })
    setSessionCookie(reply, baseUrl, result.token)
    return seeOther(reply, next)
  })

}
