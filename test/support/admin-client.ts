import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { hashPassword } from '../../src/crypto/passwords.ts'
import type { Services } from '../../src/services.ts'

export interface AdminClient {
  cookie: string
  csrf: string
  get(url: string): Promise<LightMyRequestResponse>
  /** A form post as the browser sends it; the session's CSRF token is added unless `_csrf` is given. */
  post(url: string, fields?: Record<string, string>): Promise<LightMyRequestResponse>
}

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString()
const FORM = 'application/x-www-form-urlencoded'

export const cookieOf = (res: LightMyRequestResponse, name: string): string | undefined => {
  const all = ([] as string[]).concat(res.headers['set-cookie'] ?? [])
  return all.find((c) => c.startsWith(`${name}=`))
}

/** Sign-in page → form post with its CSRF cookie and token, as a browser does. */
export async function signInForm(app: FastifyInstance, o: { username?: string; password: string; next?: string; ip?: string; forwardedFor?: string }): Promise<LightMyRequestResponse> {
  const forwarded = o.forwardedFor ? { 'x-forwarded-for': o.forwardedFor } : {}
  const page = await app.inject({ url: '/admin/login', remoteAddress: o.ip, headers: forwarded })
  const token = /name="_csrf" value="([^"]+)"/.exec(page.body)![1]!
  const loginCookie = cookieOf(page, 'mb_login_csrf')!.split(';')[0]!
  return app.inject({
    method: 'POST',
    url: '/admin/login',
    remoteAddress: o.ip,
    headers: { cookie: loginCookie, 'content-type': FORM, ...forwarded },
    payload: form({ _csrf: token, username: o.username ?? 'admin', password: o.password, next: o.next ?? '/admin/settings' }),
  })
}

/** Set the admin password, sign in, and return a client carrying the session cookie and its CSRF token. */
export async function adminClient(app: FastifyInstance, services: Services, password = 'admin-password-for-tests'): Promise<AdminClient> {
  await services.settings.set('admin_password_hash', await hashPassword(password))
  const res = await signInForm(app, { password })
  if (res.statusCode !== 303) throw new Error(`sign-in failed: ${res.statusCode} ${res.body}`)
  const cookie = cookieOf(res, 'mb_session')!.split(';')[0]!
  const settings = await app.inject({ url: '/admin/settings', headers: { cookie } })
  const csrf = /name="_csrf" value="([^"]+)"/.exec(settings.body)![1]!
  return {
    cookie,
    csrf,
    get: (url) => app.inject({ url, headers: { cookie } }),
    post: (url, fields = {}) => app.inject({ method: 'POST', url, headers: { cookie, 'content-type': FORM }, payload: form({ _csrf: csrf, ...fields }) }),
  }
}
