import type { Kysely } from 'kysely'
import type { SecretBox } from '../crypto/secret-box.ts'
import { type DB, newId, now } from '../db/index.ts'
import type { CredentialRow } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import type { Identity, TokenSet } from './protocol.ts'
import type { ProviderSpec } from './providers.ts'

/**
 * Who a token is for: the mailbox (the XOAUTH2 user) and, for app-only access, the tenant the app asks in.
 * A bare string is a mailbox.
 */
export type Account = string | { mailbox: string; tenant: string | null }

/** An account as a server uses it: the mail host its tokens are presented to comes along, and is checked (§10). */
export interface ServerAccount {
  mailbox: string
  tenant: string | null
  host: string
}

/** The account of a server row: its username, its tenant for app-only access, and its host. */
export const accountOf = (row: { username: string; tenant_id: string | null; host: string }): ServerAccount => ({ mailbox: row.username, tenant: row.tenant_id, host: row.host })

export const mailboxOf = (a: Account): string => (typeof a === 'string' ? a : a.mailbox).toLowerCase()
export const tenantOf = (a: Account): string | null => (typeof a === 'string' ? null : a.tenant?.toLowerCase() || null)

/** Codes after which only a new consent helps: stop asking the provider until the admin reconnects. */
export const isDead = (row: CredentialRow): boolean => row.last_error_code?.startsWith('reconnect:') ?? false

/** The credentials table: one row per (provider, mailbox), its tokens sealed, shared by the mailbox's servers. */
export class CredentialStore {
  /** Credentials whose last read (or last use here) showed a use failure: see `useFailed`. */
  readonly #useFailed = new Set<string>()

  constructor(private readonly deps: { db: Kysely<DB>; box: SecretBox; log: Logger }) {}

  async find(p: ProviderSpec, account: Account): Promise<CredentialRow | undefined> {
    const row = await this.deps.db
      .selectFrom('credentials')
      .selectAll()
      .where('provider', '=', p.id)
      .where('mailbox', '=', mailboxOf(account))
      .executeTakeFirst()
    this.noteUse(p, account, row?.last_error_code === 'use_failed')
    return row
  }

  /**
   * Whether a use failure was on record when this process last read the credential (every access token request
   * reads it) or last recorded one. A successful use clears the failure only then, so a queue sending thousands of
   * mails writes nothing per mail, and a failure another node recorded is still cleared by the next use here.
   */
  useFailed(p: ProviderSpec, account: Account): boolean {
    return this.#useFailed.has(`${p.id}:${mailboxOf(account)}`)
  }

  noteUse(p: ProviderSpec, account: Account, failed: boolean): void {
    const key = `${p.id}:${mailboxOf(account)}`
    if (failed) this.#useFailed.add(key)
    else this.#useFailed.delete(key)
  }

  async byId(id: string): Promise<CredentialRow> {
    return this.deps.db.selectFrom('credentials').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
  }

  /** The credentials of these providers, the most recently refreshed first. */
  async ofProviders(ps: readonly ProviderSpec[]): Promise<CredentialRow[]> {
    return this.deps.db
      .selectFrom('credentials')
      .selectAll()
      .where('provider', 'in', ps.map((p) => p.id))
      .orderBy('last_refresh_at', 'desc')
      .execute()
  }

  /** Store a fresh consent: replaces the tokens and clears past errors (one row per mailbox, shared by its servers). */
  async save(p: ProviderSpec, mailbox: string, tokens: TokenSet, identity: Identity): Promise<void> {
    const { db, box } = this.deps
    const key = mailbox.toLowerCase()
    const at = now()
    const sealed = {
      refresh_token: box.sealOrNull(tokens.refreshToken, 'credentials.refresh_token'),
      access_token: box.seal(tokens.accessToken, 'credentials.access_token'),
      access_expires_at: tokens.expiresAt.toISOString(),
      // A new consent may name other Graph permissions: its Graph token is requested afresh (oauth/connect.ts).
      graph_access_token: null,
      graph_access_expires_at: null,
      graph_scopes: null,
      scopes: tokens.scopes.join(' '),
      identity: JSON.stringify(identity),
      last_refresh_at: at,
      last_error: null,
      last_error_code: null,
      refresh_lock_until: null,
      updated_at: at,
    }
    await db
      .insertInto('credentials')
      .values({ id: newId(), provider: p.id, mailbox: key, tenant_id: null, created_at: at, ...sealed })
      .onConflict((oc) => oc.columns(['provider', 'mailbox']).doUpdateSet(sealed))
      .execute()
    this.deps.log.info({ provider: p.id, mailbox: key, expires_at: sealed.access_expires_at }, 'credential stored')
  }

  /** App-only needs no consent: its first use creates the credential, still without a token. */
  async createAppOnly(p: ProviderSpec, mailbox: string, tenant: string | null): Promise<void> {
    const at = now()
    await this.deps.db
      .insertInto('credentials')
      .values({ id: newId(), provider: p.id, mailbox, refresh_token: null, access_token: null, access_expires_at: null, scopes: '', identity: '{}', last_refresh_at: null, last_error: null, last_error_code: null, refresh_lock_until: null, tenant_id: tenant, created_at: at, updated_at: at })
      .onConflict((oc) => oc.columns(['provider', 'mailbox']).doNothing())
      .execute()
  }
}
