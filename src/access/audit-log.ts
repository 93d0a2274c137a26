import type { Kysely } from 'kysely'
import { Type, type Static } from 'typebox'
import { type DB, newId, now } from '../db/index.ts'
import type { AuditLogRow } from '../db/schema.ts'

/** Who acted: a signed-in admin session, an API token, or nobody known (a failed sign-in, a consent link). */
export interface Actor {
  type: AuditLogRow['actor_type']
  /** The admin's username, the token's name; for nobody known, what it was ("sign-in form"). */
  name: string
  id?: string
}

/** Names and ids only: a detail never holds a value that could be a secret. */
export type AuditDetail = Record<string, string | string[]>

export interface AuditEntry {
  /** `<thing>.<what happened>`: `outgoing_server.deleted`, `settings.updated`, `api_token.created`, `admin.signed_in`. */
  action: string
  target?: string
  detail?: AuditDetail
  /** The client's address (behind MAILBRIDGE_TRUST_PROXY, the forwarded one). */
  client?: string
}

export const AuditRecord = Type.Object(
  {
    id: Type.String(),
    at: Type.String(),
    actor_type: Type.Union([Type.Literal('admin'), Type.Literal('api_token'), Type.Literal('anonymous')], { description: 'admin: a signed-in admin session; api_token: the token named in actor' }),
    actor: Type.String({ description: "The admin's username or the API token's name, as it was then" }),
    action: Type.String({ description: '<thing>.<what happened>, such as outgoing_server.deleted or api_token.created' }),
    target: Type.Union([Type.String(), Type.Null()], { description: "The id of the server, token, webhook or mail acted on, or a parameter's key" }),
    detail: Type.Union([Type.Record(Type.String(), Type.Union([Type.String(), Type.Array(Type.String())])), Type.Null()], { description: 'Names and ids (the fields changed), never a value' }),
    client: Type.Union([Type.String(), Type.Null()], { description: 'The client address' }),
  },
  { additionalProperties: false },
)
export type AuditRecord = Static<typeof AuditRecord>

const toApi = (r: AuditLogRow): AuditRecord => ({
  id: r.id,
  at: r.at,
  actor_type: r.actor_type,
  actor: r.actor,
  action: r.action,
  target: r.target,
  detail: r.detail === null ? null : JSON.parse(r.detail),
  client: r.client,
})

/** Old entries are deleted at most this often per process, by the next entry written. */
const PRUNE_EVERY_MS = 3600_000

/** The audit log: who did which admin action, when, from where; kept MAILBRIDGE_AUDIT_DAYS days. */
export class AuditLog {
  #prunedAt = 0

  constructor(private readonly deps: { db: Kysely<DB>; retentionDays: number }) {}

  #cutoff(): string {
    return new Date(Date.now() - this.deps.retentionDays * 86_400_000).toISOString()
  }

  async record(actor: Actor, entry: AuditEntry): Promise<void> {
    const { db } = this.deps
    await db
      .insertInto('audit_log')
      .values({
        id: newId(),
        at: now(),
        actor_type: actor.type,
        actor: actor.name.slice(0, 200),
        actor_id: actor.id ?? null,
        action: entry.action.slice(0, 64),
        target: entry.target?.slice(0, 300) ?? null,
        detail: entry.detail ? JSON.stringify(entry.detail) : null,
        client: entry.client?.slice(0, 64) ?? null,
      })
      .execute()
    if (Date.now() - this.#prunedAt > PRUNE_EVERY_MS) {
      this.#prunedAt = Date.now()
      await db.deleteFrom('audit_log').where('at', '<', this.#cutoff()).execute()
    }
  }

  /** Newest first; the cursor is the last id of the page. Entries past the retention are left out before they are pruned. */
  async list(o: { limit?: number; cursor?: string } = {}): Promise<{ items: AuditRecord[]; next_cursor: string | null }> {
    const limit = o.limit ?? 50
    const rows = await this.deps.db
      .selectFrom('audit_log')
      .selectAll()
      .where('at', '>=', this.#cutoff())
      .$if(o.cursor !== undefined, (q) => q.where('id', '<', o.cursor!))
      .orderBy('id', 'desc')
      .limit(limit + 1)
      .execute()
    const items = rows.slice(0, limit).map(toApi)
    return { items, next_cursor: rows.length > limit ? items.at(-1)!.id : null }
  }
}
