import type { Kysely } from 'kysely'
import type { SecretBox } from '../crypto/secret-box.ts'
import type { Secret } from '../crypto/secret.ts'
import { type DB, isoIn, now } from '../db/index.ts'
import type { CredentialRow } from '../db/schema.ts'
import { MailbridgeError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { tokenRefreshes } from '../metrics.ts'
import { type Account, type CredentialStore, isDead, mailboxOf, tenantOf } from './credential-store.ts'
import type { ClientCandidate, ProviderClients } from './provider-client.ts'
import { ProviderError, clientCredentialsGrant, refreshGrant } from './protocol.ts'
import type { ProviderSpec } from './providers.ts'

const LOCK_MS = 30_000
const WAIT_STEP_MS = 100

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Access tokens kept fresh: the only place that refreshes, at most once at a time per credential across every
 * process sharing the database (a lease on the credential row), and once per process for concurrent callers.
 */
export class TokenRefresher {
  readonly #inflight = new Map<string, Promise<Secret>>()

  constructor(
    private readonly deps: {
      db: Kysely<DB>
      box: SecretBox
      log: Logger
      store: CredentialStore
      clients: ProviderClients
      refreshMarginSeconds: number
    },
  ) {}

  /**
   * An access token with more than the refresh margin left. `rejected`: the token a server just refused
   * (SMTP 535): refresh unless another caller already replaced it. `renew`: ask the provider for a new one
   * even if the stored token is fresh, so the request proves the client secret (Test Connection).
   */
  async accessToken(p: ProviderSpec, account: Account, o: { rejected?: Secret; renew?: boolean } = {}): Promise<Secret> {
    const key = `${p.id}:${mailboxOf(account)}:${tenantOf(account) ?? ''}${o.renew ? ':renew' : ''}`
    const running = this.#inflight.get(key)
    if (running) return running
    const work = this.#accessToken(p, mailboxOf(account), tenantOf(account), o.rejected, o.renew).finally(() => this.#inflight.delete(key))
    this.#inflight.set(key, work)
    return work
  }

  #fresh(row: CredentialRow, rejected?: Secret, tenant?: string | null, renew?: boolean): Secret | null {
    if (renew || !row.access_token || !row.access_expires_at) return null
    // An app-only token is good only in the tenant it came from.
    if (tenant !== undefined && (row.tenant_id ?? null) !== tenant) return null
    const token = this.deps.box.open(row.access_token, 'credentials.access_token')
    if (rejected && rejected.reveal() === token.reveal()) return null
    const margin = this.deps.refreshMarginSeconds * 1000
    return Date.parse(row.access_expires_at) - margin > Date.now() ? token : null
  }

  async #accessToken(p: ProviderSpec, mailbox: string, tenant: string | null, rejected?: Secret, renew?: boolean): Promise<Secret> {
    const { store, log } = this.deps
    const deadline = Date.now() + LOCK_MS + 5_000
    const appOnly = p.grant === 'client_credentials'
    for (;;) {
      let row = await store.find(p, mailbox)
      if (!row && appOnly) {
        // App-only needs no consent: the first use creates the credential, then takes the lease like a refresh.
        await store.createAppOnly(p, mailbox, tenant)
        row = await store.find(p, mailbox)
      }
      if (!row || (!appOnly && !row.refresh_token)) throw new MailbridgeError('token_error', { message: `${mailbox} is not connected to ${p.label}: click Connect your ${p.label} account.` })
      // App-only has no consent to redo: every use may try again once the admin fixed the app in Azure.
      if (!appOnly && isDead(row)) throw new MailbridgeError('token_error', { message: `${mailbox}: ${row.last_error}` })
      const fresh = this.#fresh(row, rejected, appOnly ? tenant : undefined, renew)
      if (fresh) return fresh
      if (await this.lease(row.id)) return this.refresh(p, row.id, tenant, log.child({ provider: p.id, mailbox }), { rejected, renew })
      if (Date.now() > deadline) throw new MailbridgeError('token_error', { message: `${mailbox}: another refresh of this token did not finish in time` })
      await sleep(WAIT_STEP_MS)
    }
  }

  /** Take the refresh lease: one refresh per credential across all nodes (the conditional UPDATE is atomic). */
  async lease(id: string): Promise<boolean> {
    const at = now()
    const taken = await this.deps.db
      .updateTable('credentials')
      .set({ refresh_lock_until: isoIn(LOCK_MS) })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('refresh_lock_until', 'is', null), eb('refresh_lock_until', '<', at)]))
      .executeTakeFirst()
    return taken.numUpdatedRows > 0n
  }

  async #release(id: string): Promise<void> {
    await this.deps.db.updateTable('credentials').set({ refresh_lock_until: null }).where('id', '=', id).execute()
  }

  /**
   * One token request under the lease (take it with `lease()` first). `candidate`: a client secret not saved yet;
   * its refusal is not the stored credential's failure, so it is not recorded (the stored secret may still be good).
   */
  async refresh(p: ProviderSpec, id: string, tenant: string | null, log: Logger, o: { rejected?: Secret; renew?: boolean; candidate?: ClientCandidate } = {}): Promise<Secret> {
    const { db, box } = this.deps
    const appOnly = p.grant === 'client_credentials'
    // Re-read under the lease: another node may have refreshed between our read and our lease.
    const row = await this.deps.store.byId(id)
    const fresh = this.#fresh(row, o.rejected, appOnly ? tenant : undefined, o.renew || o.candidate !== undefined)
    if (fresh) {
      await this.#release(id)
      return fresh
    }
    try {
      const { tokens, client } = await this.deps.clients.withClient(p, { tenant, candidate: o.candidate, log }, async (client) => ({
        client,
        tokens: appOnly
          ? await clientCredentialsGrant(p, { tokenUrl: client.endpoints.token, client, scopes: client.scopes })
          : await refreshGrant(p, {
              tokenUrl: client.endpoints.token,
              client,
              scopes: client.refreshScopes,
              refreshToken: box.open(row.refresh_token!, 'credentials.refresh_token'),
            }),
      }))
      // Refresh tokens rotate: save the new one in the same step, or the link dies (AADSTS700082).
      // https://learn.microsoft.com/entra/identity-platform/refresh-tokens
      await db
        .updateTable('credentials')
        .set((eb) => ({
          access_token: box.seal(tokens.accessToken, 'credentials.access_token'),
          access_expires_at: tokens.expiresAt.toISOString(),
          refresh_token: box.sealOrNull(tokens.refreshToken, 'credentials.refresh_token'),
          ...(appOnly ? { tenant_id: tenant, scopes: tokens.scopes.join(' ') || client.scopes.join(' ') } : {}),
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
      if (o.candidate) {
        await this.#release(id)
        log.warn({ err_code: code, cause: (e as Error).message }, 'client secret check failed')
        throw e
      }
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
}
