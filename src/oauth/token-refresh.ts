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
import { graphConsentMissing } from './graph-use.ts'
import { grantsPermission, type ProviderSpec, type TokenResource } from './providers.ts'

const LOCK_MS = 30_000
const WAIT_STEP_MS = 100

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** What to ask for a token: refuse this one, renew anyway, which resource (Exchange Online by default). */
export interface TokenRequest {
  rejected?: Secret
  renew?: boolean
  resource?: TokenResource
}

const resourceKey = (r: TokenResource = 'outlook'): string => (r === 'outlook' ? 'outlook' : `graph:${r.graph}`)

/** The columns of a resource's access token, and the context its seal is bound to. */
function slotOf(r: TokenResource = 'outlook') {
  return r === 'outlook'
    ? ({ token: 'access_token', expires: 'access_expires_at', context: 'credentials.access_token' } as const)
    : ({ token: 'graph_access_token', expires: 'graph_access_expires_at', context: 'credentials.graph_access_token' } as const)
}

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
  async accessToken(p: ProviderSpec, account: Account, o: TokenRequest = {}): Promise<Secret> {
    const key = `${p.id}:${mailboxOf(account)}:${tenantOf(account) ?? ''}:${resourceKey(o.resource)}${o.renew ? ':renew' : ''}`
    const running = this.#inflight.get(key)
    if (running) return running
    const work = this.#accessToken(p, mailboxOf(account), tenantOf(account), o).finally(() => this.#inflight.delete(key))
    this.#inflight.set(key, work)
    return work
  }

  #fresh(row: CredentialRow, o: TokenRequest, tenant?: string | null): Secret | null {
    const slot = slotOf(o.resource)
    const sealed = row[slot.token]
    const expires = row[slot.expires]
    if (o.renew || !sealed || !expires) return null
    // An app-only token is good only in the tenant it came from.
    if (tenant !== undefined && (row.tenant_id ?? null) !== tenant) return null
    // A delegated Graph token serves a permission only if it carries it: the consent may predate the server.
    if (o.resource && o.resource !== 'outlook' && tenant === undefined && !grantsPermission(row.graph_scopes, o.resource.graph)) return null
    const token = this.deps.box.open(sealed, slot.context)
    if (o.rejected && o.rejected.reveal() === token.reveal()) return null
    const margin = this.deps.refreshMarginSeconds * 1000
    return Date.parse(expires) - margin > Date.now() ? token : null
  }

  async #accessToken(p: ProviderSpec, mailbox: string, tenant: string | null, o: TokenRequest): Promise<Secret> {
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
      const fresh = this.#fresh(row, o, appOnly ? tenant : undefined)
      if (fresh) return fresh
      if (await this.lease(row.id)) return this.refresh(p, row.id, tenant, log.child({ provider: p.id, mailbox }), o)
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
  async refresh(p: ProviderSpec, id: string, tenant: string | null, log: Logger, o: TokenRequest & { candidate?: ClientCandidate } = {}): Promise<Secret> {
    const { db, box } = this.deps
    const appOnly = p.grant === 'client_credentials'
    const graph = o.resource && o.resource !== 'outlook' ? o.resource : undefined
    // Re-read under the lease: another node may have refreshed between our read and our lease.
    const row = await this.deps.store.byId(id)
    const fresh = this.#fresh(row, { ...o, renew: o.renew || o.candidate !== undefined }, appOnly ? tenant : undefined)
    if (fresh) {
      await this.#release(id)
      return fresh
    }
    try {
      if (graph && !p.graph) throw new MailbridgeError('conflict', { message: `${p.label} has no Microsoft Graph: choose transport "smtp" or "imap".` })
      // Each token request names one resource: Exchange Online's scopes, or Graph's (two would be AADSTS28000).
      // https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow#refresh-the-access-token
      const graphScopesOf = (cloud: Parameters<NonNullable<typeof p.graph>['scopes']>[0]) => (graph ? p.graph!.scopes(cloud, [graph.graph]) : [])
      const { tokens, client } = await this.deps.clients.withClient(p, { tenant, candidate: o.candidate, log }, async (client) => ({
        client,
        tokens: appOnly
          ? await clientCredentialsGrant(p, { tokenUrl: client.endpoints.token, client, scopes: graph ? graphScopesOf(client.cloud) : client.scopes })
          : await refreshGrant(p, {
              tokenUrl: client.endpoints.token,
              client,
              scopes: graph ? ['offline_access', ...graphScopesOf(client.cloud)] : client.refreshScopes,
              refreshToken: box.open(row.refresh_token!, 'credentials.refresh_token'),
            }),
      }))
      const graphScopes = graphScopesOf(client.cloud)
      const slot = slotOf(o.resource)
      const granted = tokens.scopes.join(' ') || (graph ? graphScopes : client.scopes).join(' ')
      // App-only: a token of another tenant than the stored one's makes the other resource's token stale too.
      const otherSlot = slotOf(graph ? 'outlook' : { graph: 'Mail.Send' })
      const tenantMoved = appOnly && (row.tenant_id ?? null) !== tenant
      // Refresh tokens rotate: save the new one in the same step, or the link dies (AADSTS700082).
      // https://learn.microsoft.com/entra/identity-platform/refresh-tokens
      await db
        .updateTable('credentials')
        .set((eb) => ({
          [slot.token]: box.seal(tokens.accessToken, slot.context),
          [slot.expires]: tokens.expiresAt.toISOString(),
          ...(graph ? { graph_scopes: granted } : {}),
          ...(tenantMoved ? { [otherSlot.token]: null, [otherSlot.expires]: null } : {}),
          refresh_token: box.sealOrNull(tokens.refreshToken, 'credentials.refresh_token'),
          ...(appOnly ? { tenant_id: tenant, ...(graph ? {} : { scopes: granted }) } : {}),
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
      log.info({ expires_at: tokens.expiresAt.toISOString(), resource: graph ? 'graph' : 'outlook' }, 'access token refreshed')
      return tokens.accessToken
    } catch (e) {
      const pe = e instanceof ProviderError ? e : undefined
      // The grant is fine but its consent lacks this Graph permission (a Graph server added after Connect): the
      // Outlook token keeps working, so nothing is recorded on the credential; the server's badge says Reconnect.
      if (graph && !appOnly && pe?.aadsts === 65001) {
        await this.#release(id)
        tokenRefreshes.inc({ provider: p.id, result: pe.shortCode })
        log.warn({ err_code: pe.shortCode, permission: graph.graph }, 'Graph permission not consented')
        throw new MailbridgeError('token_error', { message: graphConsentMissing(row.mailbox, p, graph) }, { cause: e })
      }
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
