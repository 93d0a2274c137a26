import { timingSafeEqual } from 'node:crypto'
import type { Kysely } from 'kysely'
import { hashToken, randomToken, verifyPassword } from '../crypto/passwords.ts'
import { type DB, isoIn, newId, now } from '../db/index.ts'
import type { AdminSessionRow } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import { LoginThrottle } from './login-throttle.ts'
import type { SettingsStore } from '../settings-store.ts'

export const ADMIN_USERNAME = 'admin'
/** A session ends after this long without a request… */
const IDLE_MS = 12 * 3600_000
/** …and after a week whatever happens, so a stolen cookie does not live for ever. */
const ABSOLUTE_MS = 7 * 24 * 3600_000
/** Failed sign-ins allowed per client address in the window; scrypt already makes each guess slow. */
export const LOGIN_FAILURES_ALLOWED = 10
const FAILURE_WINDOW_MS = 15 * 60_000

export type AdminSession = Pick<AdminSessionRow, 'id' | 'username' | 'csrf_token' | 'expires_at'>

export type LoginResult =
  | { ok: true; token: string; session: AdminSession }
  | { ok: false; reason: 'wrong' | 'limited'; retryAfterS?: number }

const same = (a: string, b: string): boolean => {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/**
 * Admin UI sessions, stored server-side (hashed) in the database so several nodes share them, with a
 * per-session synchronizer CSRF token (OWASP CSRF Prevention Cheat Sheet, "Synchronizer Token Pattern") and
 * failed sign-ins counted per client address in the database too, so the limit holds across nodes.
 * @see https://cheatsheetseries.owasp.org/cheatsheets/Session_Management_Cheat_Sheet.html
 */
export class AdminSessionService {
  constructor(private readonly deps: { db: Kysely<DB>; settings: SettingsStore; log: Logger }) {
    this.#throttle = new LoginThrottle(deps.db, { allowed: LOGIN_FAILURES_ALLOWED, windowMs: FAILURE_WINDOW_MS })
  }

  readonly #throttle: LoginThrottle

  async login(username: string, password: string, client: string): Promise<LoginResult> {
    const { db } = this.deps
    const checked = await this.#throttle.check(client, async () => {
      const stored = await this.deps.settings.get('admin_password_hash')
      // Verify even for a wrong username, so the answer takes as long either way.
      const passwordOk = stored ? await verifyPassword(password, stored) : false
      return passwordOk && username.trim() === ADMIN_USERNAME
    })
    if (checked.retryAfterS !== undefined) {
      this.deps.log.warn({ client }, 'admin sign-in refused: too many failed attempts')
      return { ok: false, reason: 'limited', retryAfterS: checked.retryAfterS }
    }
    if (!checked.ok) {
      // The typed username is not logged: people paste passwords into it.
      this.deps.log.warn({ client, username_ok: username.trim() === ADMIN_USERNAME }, 'admin sign-in failed: wrong username or password')
      return { ok: false, reason: 'wrong' }
    }
    const token = randomToken(32)
    const at = now()
    const row: AdminSessionRow = {
      id: newId(),
      token_hash: hashToken(token),
      username: ADMIN_USERNAME,
      csrf_token: randomToken(32),
      created_at: at,
      last_seen_at: at,
      expires_at: isoIn(IDLE_MS),
    }
    await db.insertInto('admin_sessions').values(row).execute()
    await db.deleteFrom('admin_sessions').where('expires_at', '<', at).execute()
    this.deps.log.info({ session_id: row.id, client }, 'admin signed in')
    return { ok: true, token, session: row }
  }

  /** The live session a cookie token names, sliding its idle expiry (written at most once a minute). */
  async find(token: string | undefined): Promise<AdminSession | undefined> {
    if (!token || token.length < 20 || token.length > 100) return undefined
    const row = await this.deps.db.selectFrom('admin_sessions').selectAll().where('token_hash', '=', hashToken(token)).executeTakeFirst()
    if (!row) return undefined
    const t = Date.now()
    if (Date.parse(row.expires_at) <= t || Date.parse(row.created_at) + ABSOLUTE_MS <= t) return undefined
    if (Date.parse(row.last_seen_at) < t - 60_000) {
      const expires = new Date(Math.min(t + IDLE_MS, Date.parse(row.created_at) + ABSOLUTE_MS)).toISOString()
      await this.deps.db.updateTable('admin_sessions').set({ last_seen_at: now(), expires_at: expires }).where('id', '=', row.id).execute()
      row.expires_at = expires
    }
    return row
  }

  async logout(sessionId: string): Promise<void> {
    await this.deps.db.deleteFrom('admin_sessions').where('id', '=', sessionId).execute()
    this.deps.log.info({ session_id: sessionId }, 'admin signed out')
  }

  /** Constant-time comparison of a form's token with its session's. */
  checkCsrf(session: AdminSession, given: unknown): boolean {
    return typeof given === 'string' && same(given, session.csrf_token)
  }
}
