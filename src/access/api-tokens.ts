import { timingSafeEqual } from 'node:crypto'
import type { Kysely } from 'kysely'
import { Type, type Static } from 'typebox'
import { hashToken, randomToken } from '../crypto/passwords.ts'
import { type DB, newId, now } from '../db/index.ts'
import type { ApiTokenRow } from '../db/schema.ts'
import { MailbridgeError, invalid, notFound } from '../errors.ts'

/** The token MAILBRIDGE_API_TOKEN sets is stored under this name; no other token may take it. */
export const BOOTSTRAP = 'MAILBRIDGE_API_TOKEN'

/**
 * What a token may do (design.md §10): send (POST /mail), read the queue (GET /mail…), read fetched messages
 * (GET /messages…); `admin` is everything else, and everything these three allow.
 */
export const ScopeSchema = Type.Union([Type.Literal('mail:send'), Type.Literal('mail:read'), Type.Literal('messages:read'), Type.Literal('admin')])
export type Scope = Static<typeof ScopeSchema>
export const SCOPES: readonly Scope[] = ['mail:send', 'mail:read', 'messages:read', 'admin']

export const ApiToken = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    scopes: Type.Array(ScopeSchema),
    server_ids: Type.Union([Type.Array(Type.String()), Type.Null()], { description: 'The outgoing and incoming servers this token is limited to; null: every server' }),
    created_at: Type.String(),
    last_used_at: Type.Union([Type.String(), Type.Null()], { description: 'Last request with this token, to the minute' }),
  },
  { additionalProperties: false },
)
export type ApiToken = Static<typeof ApiToken>

export const CreatedApiToken = Type.Object({ ...ApiToken.properties, token: Type.String({ description: 'The bearer token: shown this once, stored only as a hash' }) }, { additionalProperties: false })
export type CreatedApiToken = Static<typeof CreatedApiToken>

export const ApiTokenInput = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200, description: 'Which application holds it (shown in the audit log)' }),
    scopes: Type.Array(ScopeSchema, { minItems: 1, maxItems: SCOPES.length }),
    server_ids: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 100, description: 'Limit the token to these outgoing and incoming servers; leave out for every server' })),
  },
  { additionalProperties: false },
)
export type ApiTokenInput = Static<typeof ApiTokenInput>

/** The token a request came with, as the scope and server checks read it. */
export interface ApiAccess {
  id: string
  name: string
  scopes: readonly Scope[]
  /** null: every server. */
  server_ids: readonly string[] | null
}

/** Does this token have the scope (admin has them all)? */
export const hasScope = (a: Pick<ApiAccess, 'scopes'>, scope: Scope): boolean => a.scopes.includes(scope) || a.scopes.includes('admin')

/** May this token touch what belongs to this server? */
export const reachesServer = (a: Pick<ApiAccess, 'server_ids'>, serverId: string | null): boolean => a.server_ids === null || (serverId !== null && a.server_ids.includes(serverId))

/** last_used_at is written at most this often per token: reads must not turn every API call into a write. */
const LAST_USED_EVERY_MS = 60_000

const toApi = (r: ApiTokenRow): ApiToken => ({
  id: r.id,
  name: r.name,
  scopes: JSON.parse(r.scopes),
  server_ids: r.server_ids === null ? null : JSON.parse(r.server_ids),
  created_at: r.created_at,
  last_used_at: r.last_used_at,
})

/** Same length (two SHA-256 hex digests), compared in constant time. */
const sameHash = (a: string, b: string): boolean => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b))

/**
 * Bearer tokens for /api/v1, one per application, each with its scopes and optionally its servers. Stored as
 * SHA-256 hashes: a database copy does not leak a usable token. A revoked token keeps its row (the audit log
 * names it) and is refused from the next request on, on every node: each request reads its row by hash.
 */
export class ApiTokenService {
  constructor(private readonly db: Kysely<DB>) {}

  /** Make sure a token given from outside (the tests', the bootstrap one) is accepted, as an admin token. */
  async ensure(token: string, name: string, db: Kysely<DB> = this.db): Promise<void> {
    const token_hash = hashToken(token)
    const exists = await db.selectFrom('api_tokens').select('id').where('token_hash', '=', token_hash).executeTakeFirst()
    if (!exists) await db.insertInto('api_tokens').values(this.#row(name, token_hash, ['admin'], null)).execute()
  }

  /**
   * The bootstrap token (MAILBRIDGE_API_TOKEN) is one admin token, named after the variable: a new value revokes
   * the previous one, as rotating a leaked token needs (design.md §10). A value revoked before (through the API,
   * or by an earlier rotation) stays revoked: a restart must not bring a revoked token back. Resolves to false then.
   */
  async replaceBootstrap(token: string): Promise<boolean> {
    const hash = hashToken(token)
    return this.db.transaction().execute(async (tx) => {
      await tx.updateTable('api_tokens').set({ revoked_at: now() }).where('name', '=', BOOTSTRAP).where('token_hash', '!=', hash).where('revoked_at', 'is', null).execute()
      await this.ensure(token, BOOTSTRAP, tx)
      const row = await tx.selectFrom('api_tokens').select('revoked_at').where('token_hash', '=', hash).executeTakeFirstOrThrow()
      return row.revoked_at === null
    })
  }

  /** A new token; the value is in the answer only, the database keeps its hash. */
  async create(input: ApiTokenInput): Promise<CreatedApiToken> {
    const name = input.name.trim()
    if (!name) throw invalid('name', 'Give the token a name: the application that will use it, such as "billing".')
    if (name === BOOTSTRAP) throw invalid('name', `${BOOTSTRAP} is the name of the token the environment sets; pick another name.`)
    const scopes = [...new Set(input.scopes)]
    const serverIds = input.server_ids ? [...new Set(input.server_ids)] : null
    if (serverIds && scopes.includes('admin')) {
      throw invalid('server_ids', 'An admin token may change every server, so it cannot be limited to some: leave server_ids out, or choose the scopes mail:send, mail:read and messages:read instead of admin.')
    }
    if (serverIds) await this.#checkServers(serverIds)
    const taken = await this.db.selectFrom('api_tokens').select('id').where('name', '=', name).where('revoked_at', 'is', null).executeTakeFirst()
    if (taken) throw new MailbridgeError('conflict', { field: 'name', message: `An API token named ${name} already exists; revoke it first or pick another name.` })
    const token = `mb_${randomToken(30)}`
    const row = this.#row(name, hashToken(token), scopes, serverIds)
    await this.db.insertInto('api_tokens').values(row).execute()
    return { ...toApi(row), token }
  }

  async #checkServers(ids: string[]): Promise<void> {
    const [outgoing, incoming] = await Promise.all([
      this.db.selectFrom('outgoing_servers').select('id').where('id', 'in', ids).execute(),
      this.db.selectFrom('incoming_servers').select('id').where('id', 'in', ids).execute(),
    ])
    const known = new Set([...outgoing, ...incoming].map((r) => r.id))
    const i = ids.findIndex((id) => !known.has(id))
    if (i >= 0) throw invalid(`server_ids[${i}]`, `No outgoing or incoming server has the id ${ids[i]}: list them with GET /api/v1/outgoing-servers and /api/v1/incoming-servers.`)
  }

  #row(name: string, token_hash: string, scopes: readonly Scope[], serverIds: readonly string[] | null): ApiTokenRow {
    return { id: newId(), name, token_hash, scopes: JSON.stringify(scopes), server_ids: serverIds ? JSON.stringify(serverIds) : null, created_at: now(), last_used_at: null, revoked_at: null }
  }

  /** The tokens in use (revoked ones are left out), oldest first. */
  async list(): Promise<ApiToken[]> {
    return (await this.db.selectFrom('api_tokens').selectAll().where('revoked_at', 'is', null).orderBy('created_at').orderBy('id').execute()).map(toApi)
  }

  /** Revoke a token: it gets 401 from its next request on. Resolves to what it was, for the audit log. */
  async revoke(id: string): Promise<ApiToken> {
    const row = await this.db.selectFrom('api_tokens').selectAll().where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst()
    if (!row) throw notFound('API token', id)
    await this.db.updateTable('api_tokens').set({ revoked_at: now() }).where('id', '=', id).execute()
    return toApi(row)
  }

  /** Tokens ever made, revoked ones too: only a first start, not one after revoking them all, prints a new one. */
  async count(): Promise<number> {
    const r = await this.db.selectFrom('api_tokens').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
    return Number(r.n)
  }

  /** The token a bearer value names, if it exists and is not revoked; its last use is recorded to the minute. */
  async verify(token: string): Promise<ApiAccess | undefined> {
    if (token.length < 16 || token.length > 200) return undefined
    const hash = hashToken(token)
    const row = await this.db.selectFrom('api_tokens').selectAll().where('token_hash', '=', hash).executeTakeFirst()
    if (!row || !sameHash(row.token_hash, hash) || row.revoked_at !== null) return undefined
    if (!row.last_used_at || Date.parse(row.last_used_at) < Date.now() - LAST_USED_EVERY_MS) {
      await this.db.updateTable('api_tokens').set({ last_used_at: now() }).where('id', '=', row.id).execute()
    }
    const t = toApi(row)
    return { id: t.id, name: t.name, scopes: t.scopes, server_ids: t.server_ids }
  }
}
