import type { Kysely } from 'kysely'
import { Type, type Static } from 'typebox'
import { hashPassword, verifyPassword } from '../crypto/passwords.ts'
import type { Secret } from '../crypto/secret.ts'
import { type DB, newId, now } from '../db/index.ts'
import type { RelayUserRow } from '../db/schema.ts'
import { MailbridgeError, invalid, notFound } from '../errors.ts'
import { LoginThrottle } from '../access/login-throttle.ts'
import { domainOf, isEmailAddress } from '../mail-address.ts'

export const RelayUser = Type.Object(
  {
    id: Type.String(),
    username: Type.String(),
    allowed_from: Type.Array(Type.String(), { description: 'Addresses and domains this user may send as; empty allows any sender' }),
    last_used_at: Type.Union([Type.String(), Type.Null()], { description: 'Last successful AUTH' }),
    last_used_from: Type.Union([Type.String(), Type.Null()], { description: 'The client IP address of that AUTH' }),
    created_at: Type.String(),
  },
  { additionalProperties: false },
)
export type RelayUser = Static<typeof RelayUser>

export const RelayUserInput = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 200 }),
    password: Type.String({ minLength: 1, maxLength: 1000, description: 'Write-only; stored as an scrypt hash' }),
    allowed_from: Type.Optional(Type.Array(Type.String({ maxLength: 320 }), { maxItems: 100 })),
  },
  { additionalProperties: false },
)
export type RelayUserInput = Static<typeof RelayUserInput>

/** Short passwords are guessed over SMTP AUTH; printers' forms usually take at least this many characters. */
export const MIN_PASSWORD = 10
// SASL PLAIN and LOGIN carry the username as UTF-8 without NUL (RFC 4616 §2); keep it printable and unspaced.
const USERNAME = /^[^\s\u0000-\u001f\u007f]+$/u
const DOMAIN = /^([\p{L}\p{N}]([\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?\.)+[\p{L}]{2,63}$/u

const toApi = (r: RelayUserRow): RelayUser => ({
  id: r.id,
  username: r.username,
  allowed_from: JSON.parse(r.allowed_from),
  last_used_at: r.last_used_at,
  last_used_from: r.last_used_from,
  created_at: r.created_at,
})

/** May this user send as this address? An entry is an exact address or a whole domain (no subdomains), like from_filter. */
export function senderAllowed(user: Pick<RelayUser, 'allowed_from'>, address: string): boolean {
  if (user.allowed_from.length === 0) return true
  const a = address.toLowerCase()
  return user.allowed_from.some((p) => (p.includes('@') ? p.toLowerCase() === a : p.toLowerCase() === domainOf(a)))
}

/** Failed AUTHs allowed per client address in the window: a device with a wrong password retries for ever. */
export const AUTH_FAILURES_ALLOWED = 10
const AUTH_FAILURE_WINDOW_MS = 15 * 60_000

/** What an AUTH came to: the user, an unknown user or wrong password, or a client over the limit. */
export type AuthOutcome = { user: RelayUser; refused?: undefined } | { user?: undefined; refused: 'wrong' } | { user?: undefined; refused: 'limited'; retryAfterS: number }

/** A hash of a password nobody has: unknown usernames cost as much as wrong passwords, so timing tells nothing. */
let decoy: Promise<string> | undefined

/** Relay users: the logins legacy applications use on the SMTP relay (passwords hashed with scrypt). */
export class RelayUserService {
  /** Failed AUTHs per client address, apart from the admin sign-in's (ASVS V2.2.1). */
  readonly #throttle: LoginThrottle

  constructor(private readonly db: Kysely<DB>) {
    this.#throttle = new LoginThrottle(db, { allowed: AUTH_FAILURES_ALLOWED, windowMs: AUTH_FAILURE_WINDOW_MS, scope: 'smtp' })
  }

  async list(): Promise<RelayUser[]> {
    return (await this.db.selectFrom('relay_users').selectAll().orderBy('username').execute()).map(toApi)
  }

  async create(body: RelayUserInput): Promise<RelayUser> {
    const username = body.username.trim()
    if (!USERNAME.test(username)) throw invalid('username', 'The username may not contain spaces or control characters (an address such as scanner@contoso.com works well).')
    if (body.password.length < MIN_PASSWORD) throw invalid('password', `The password must have at least ${MIN_PASSWORD} characters; generate one (for example: openssl rand -base64 18).`)
    if (/[\u0000\r\n]/.test(body.password)) throw invalid('password', 'The password may not contain NUL or line breaks: SMTP AUTH cannot carry them.')
    const allowed = (body.allowed_from ?? []).map((v, i) => {
      const entry = v.trim().toLowerCase()
      if (!isEmailAddress(entry) && !DOMAIN.test(entry)) throw invalid(`allowed_from[${i}]`, `Each allowed_from entry is an address (printer@contoso.com) or a domain (contoso.com), got ${JSON.stringify(v.slice(0, 100))}.`)
      return entry
    })
    const exists = await this.db.selectFrom('relay_users').select('id').where('username', '=', username).executeTakeFirst()
    if (exists) throw new MailbridgeError('conflict', { field: 'username', message: `A relay user named ${username} already exists; delete it first or pick another name.` })
    const row: RelayUserRow = {
      id: newId(),
      username,
      password_hash: await hashPassword(body.password),
      allowed_from: JSON.stringify([...new Set(allowed)]),
      last_used_at: null,
      last_used_from: null,
      created_at: now(),
    }
    await this.db.insertInto('relay_users').values(row).execute()
    return toApi(row)
  }

  async delete(id: string): Promise<void> {
    const r = await this.db.deleteFrom('relay_users').where('id', '=', id).executeTakeFirst()
    if (r.numDeletedRows === 0n) throw notFound('Relay user', id)
  }

  /** Check a login (SMTP AUTH PLAIN/LOGIN) and record its use; a client over the limit gets `retryAfterS` and no check at all. */
  async authenticate(username: string, password: Secret, remoteAddress: string): Promise<AuthOutcome> {
    let row: RelayUserRow | undefined
    const checked = await this.#throttle.check(remoteAddress, async () => {
      row = await this.db.selectFrom('relay_users').selectAll().where('username', '=', username).executeTakeFirst()
      decoy ??= hashPassword('decoy password that matches nothing')
      const ok = await verifyPassword(password.reveal(), row?.password_hash ?? (await decoy))
      return !!row && ok
    })
    if (checked.retryAfterS !== undefined) return { refused: 'limited', retryAfterS: checked.retryAfterS }
    if (!checked.ok || !row) return { refused: 'wrong' }
    const at = now()
    await this.db.updateTable('relay_users').set({ last_used_at: at, last_used_from: remoteAddress }).where('id', '=', row.id).execute()
    return { user: toApi({ ...row, last_used_at: at, last_used_from: remoteAddress }) }
  }
}
