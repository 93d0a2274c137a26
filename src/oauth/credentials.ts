import type { Kysely } from 'kysely'
import type { Logger } from '../log.ts'
import type { SecretBox } from '../crypto/secret-box.ts'
import type { Secret } from '../crypto/secret.ts'
import { type DB, isoIn, newId, now } from '../db/index.ts'
import type { CredentialRow } from '../db/schema.ts'
import { MailbridgeError } from '../errors.ts'
import type { SettingsService } from '../settings/service.ts'
import { tokenRefreshes } from '../metrics.ts'
import { ProviderError, refreshGrant, type ClientAuth, type Identity, type TokenSet } from './protocol.ts'
import type { ProviderSpec } from './providers.ts'

export type TokenStatus = 'valid' | 'missing' | 'expired' | 'invalid'

/** The `token` object every server shows (design.md §6). */
export interface TokenView {
  status: TokenStatus
  valid: boolean
  label: string
  expires_at: string | null
  last_error: string | null
}

const LOCK_MS = 30_000
const WAIT_STEP_MS = 100

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Codes after which only a new consent helps: stop asking the provider until the admin reconnects. */
const isDead = (row: CredentialRow): boolean => row.last_error_code?.startsWith('reconnect:') ?? false

export function tokenView(p: ProviderSpec, row: CredentialRow | undefined): TokenView {
  if (!row?.refresh_token) {
    return { status: 'missing', valid: false, label: `${p.label} Token Missing: click Connect your ${p.label} account`, expires_at: null, last_error: null }
  }
  if (row.last_error_code?.startsWith('transient:')) {
    // The provider could not be reached or was briefly unavailable: the link itself is fine, mails wait and retry.
    return { status: 'valid', valid: true, label: `${p.label} Token Valid (the last refresh could not reach ${p.label}; it is retried)`, expires_at: row.access_expires_at, last_error: row.last_error }
  }
  if (row.last_error) {
    const expired = /700082|70008|expired/i.test(row.last_error_code ?? '')
    return {
      status: expired ? 'expired' : 'invalid',
      valid: false,
      label: `${p.label} Token ${expired ? 'Expired' : 'Invalid'}: ${row.last_error}`,
      expires_at: row.access_expires_at,
      last_error: row.last_error,
    }
  }
  return { status: 'valid', valid: true, label: `${p.label} Token Valid`, expires_at: row.access_expires_at, last_error: null }
}

/**
 * The tokens of connected mailboxes, keyed by (provider, mailbox). Features ask `accessToken()`; this is the
 * only place that refreshes, at most once at a time per credential across every process sharing the database.
 */
export class CredentialService {
  readonly #inflight = new Map<string, Promise<Secret>>()

  constructor(
    private readonly deps: {
      db: Kysely<DB>
      box: SecretBox
      settings: SettingsService
      log: Logger
      refreshMarginSeconds: number
      /** How long one token request may take (MAILBRIDGE_TOKEN_TIMEOUT_S). */
      tokenTimeoutMs?: number
    },
  ) {}

  /** The app's client id and secret, and the endpoint, or a clear refusal naming what to fill in. */
  async client(p: ProviderSpec): Promise<ClientAuth & { endpoint: string }> {
    const { settings } = this.deps
    const clientId = await settings.get(`${p.route}_client_id`)
    const clientSecret = await settings.secret(`${p.route}_client_secret`)
    if (!clientId || !clientSecret) throw new MailbridgeError('credentials_missing', { provider: p.label })
    const endpoint = (await settings.parameter(p.endpointParam))!
    return { clientId, clientSecret, endpoint, timeoutMs: this.deps.tokenTimeoutMs }
  }

  async find(p: ProviderSpec, mailbox: string): Promise<CredentialRow | undefined> {
    return this.deps.db
      .selectFrom('credentials')
      .selectAll()
      .where('provider', '=', p.id)
      .where('mailbox', '=', mailbox.toLowerCase())
      .executeTakeFirst()
  }

  async view(p: ProviderSpec, mailbox: string): Promise<TokenView> {
    return tokenView(p, mailbox ? await this.find(p, mailbox) : undefined)
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
      .values({ id: newId(), provider: p.id, mailbox: key, created_at: at, ...sealed })
      .onConflict((oc) => oc.columns(['provider', 'mailbox']).doUpdateSet(sealed))
      .execute()
    this.deps.log.info({ provider: p.id, mailbox: key, expires_at: sealed.access_expires_at }, 'credential stored')
  }

  /**
   * An access token with more than the refresh margin left. `rejected`: the token a server just refused
   * (SMTP 535): refresh unless another caller already replaced it.
   */
  async accessToken(p: ProviderSpec, mailbox: string, o: { rejected?: Secret } = {}): Promise<Secret> {
    const key = `${p.id}:${mailbox.toLowerCase()}`
    const running = this.#inflight.get(key)
    if (running) return running
    const work = this.#accessToken(p, mailbox.toLowerCase(), o.rejected).finally(() => this.#inflight.delete(key))
    this.#inflight.set(key, work)
    return work
  }

  #fresh(row: CredentialRow, rejected?: Secret): Secret | null {
    if (!row.access_token || !row.access_expires_at) return null
    const token = this.deps.box.open(row.access_token, 'credentials.access_token')
    if (rejected && rejected.reveal() === token.reveal()) return null
    const margin = this.deps.refreshMarginSeconds * 1000
    return Date.parse(row.access_expires_at) - margin > Date.now() ? token : null
  }

  async #accessToken(p: ProviderSpec, mailbox: string, rejected?: Secret): Promise<Secret> {
    const { db, log } = this.deps
    const deadline = Date.now() + LOCK_MS + 5_000
    for (;;) {
      const row = await this.find(p, mailbox)
      if (!row?.refresh_token) throw new MailbridgeError('token_error', { message: `${mailbox} is not connected to ${p.label}: click Connect your ${p.label} account.` })
      if (isDead(row)) throw new MailbridgeError('token_error', { message: `${mailbox}: ${row.last_error}` })
      const fresh = this.#fresh(row, rejected)
      if (fresh) return fresh
      // Take the refresh lease: one refresh per credential across all nodes (the conditional UPDATE is atomic).
      const at = now()
      const taken = await db
        .updateTable('credentials')
        .set({ refresh_lock_until: isoIn(LOCK_MS) })
        .where('id', '=', row.id)
        .where((eb) => eb.or([eb('refresh_lock_until', 'is', null), eb('refresh_lock_until', '<', at)]))
        .executeTakeFirst()
      if (taken.numUpdatedRows > 0n) return this.#refresh(p, row.id, log.child({ provider: p.id, mailbox }), rejected)
      if (Date.now() > deadline) throw new MailbridgeError('token_error', { message: `${mailbox}: another refresh of this token did not finish in time` })
      await sleep(WAIT_STEP_MS)
    }
  }

  async #refresh(p: ProviderSpec, id: string, log: Logger, rejected?: Secret): Promise<Secret> {
    const { db, box } = this.deps
    // Re-read under the lease: another node may have refreshed between our read and our lease.
    const row = await db.selectFrom('credentials').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
    const fresh = this.#fresh(row, rejected)
    if (fresh) {
      await db.updateTable('credentials').set({ refresh_lock_until: null }).where('id', '=', id).execute()
      return fresh
    }
    try {
      const client = await this.client(p)
      const tokens = await refreshGrant(p, {
        tokenUrl: p.tokenUrl(client.endpoint),
        client,
        refreshToken: box.open(row.refresh_token!, 'credentials.refresh_token'),
      })
      // Refresh tokens rotate: save the new one in the same step, or the link dies (AADSTS700082).
      // https://learn.microsoft.com/entra/identity-platform/refresh-tokens
      await db
        .updateTable('credentials')
        .set((eb) => ({
          access_token: box.seal(tokens.accessToken, 'credentials.access_token'),
          access_expires_at: tokens.expiresAt.toISOString(),
          refresh_token: box.sealOrNull(tokens.refreshToken, 'credentials.refresh_token'),
          last_refresh_at: now(),
          last_error: null,
          last_error_code: null,
          refresh_lock_until: null,
          refresh_count: eb('refresh_count', '+', 1),
          updated_at: now(),
        }))
        .where('id', '=', id)
        .execute()
      tokenRefreshes.inc({ provider: p.id, result: 'ok' })
      log.info({ expires_at: tokens.expiresAt.toISOString() }, 'access token refreshed')
      return tokens.accessToken
    } catch (e) {
      const pe = e instanceof ProviderError ? e : undefined
      const code = pe ? (pe.reconnect ? `reconnect:${pe.shortCode}` : pe.transient ? `transient:${pe.shortCode}` : pe.shortCode) : 'error'
      await db
        .updateTable('credentials')
        .set({ last_error: (e as Error).message, last_error_code: code, refresh_lock_until: null, updated_at: now() })
        .where('id', '=', id)
        .execute()
      tokenRefreshes.inc({ provider: p.id, result: pe?.shortCode ?? 'error' })
      log.warn({ err_code: code, cause: (e as Error).message }, 'token refresh failed')
      throw e
    }
  }

  /** A server refused a token we believed good (e.g. 535 after a refresh): the badge must turn red. */
  async recordUseFailure(p: ProviderSpec, mailbox: string, message: string): Promise<void> {
    await this.deps.db
      .updateTable('credentials')
      .set({ last_error: message, last_error_code: 'use_failed', updated_at: now() })
      .where('provider', '=', p.id)
      .where('mailbox', '=', mailbox.toLowerCase())
      .execute()
  }

  /** A use that worked proves the token: clears a use failure (not a dead refresh token). */
  async recordUseSuccess(p: ProviderSpec, mailbox: string): Promise<void> {
    await this.deps.db
      .updateTable('credentials')
      .set({ last_error: null, last_error_code: null })
      .where('provider', '=', p.id)
      .where('mailbox', '=', mailbox.toLowerCase())
      .where('last_error_code', '=', 'use_failed')
      .execute()
  }
}
