import type { Kysely } from 'kysely'
import type { Logger } from '../log.ts'
import type { SecretBox } from '../crypto/secret-box.ts'
import type { Secret } from '../crypto/secret.ts'
import { type DB, isoIn, newId, now } from '../db/index.ts'
import type { CredentialRow } from '../db/schema.ts'
import { MailbridgeError } from '../errors.ts'
import type { SettingsService } from '../settings/service.ts'
import { tokenRefreshes } from '../metrics.ts'
import { isCloud, type Cloud } from './clouds.ts'
import { ProviderError, clientCredentialsGrant, refreshGrant, type ClientAuth, type Identity, type TokenSet } from './protocol.ts'
import { providers, type Endpoints, type ProviderId, type ProviderSpec } from './providers.ts'

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

/**
 * Who a token is for: the mailbox (the XOAUTH2 user) and, for app-only access, the tenant the app asks in.
 * A bare string is a mailbox.
 */
export type Account = string | { mailbox: string; tenant: string | null }

/** The account of a server row: its username, and its tenant for app-only access. */
export const accountOf = (row: { username: string; tenant_id: string | null }): Account => ({ mailbox: row.username, tenant: row.tenant_id })

const mailboxOf = (a: Account): string => (typeof a === 'string' ? a : a.mailbox).toLowerCase()
const tenantOf = (a: Account): string | null => (typeof a === 'string' ? null : a.tenant?.toLowerCase() || null)

/** A client id and secret not saved yet, to be tried with the provider first. */
export interface ClientCandidate {
  clientId?: string
  clientSecret: Secret
}

/**
 * What a provider said of a client secret when a real token request carried it. `refused`: the provider
 * authenticated the app and said no (`invalid_client`, RFC 6749 §5.2); `unchecked`: nothing could prove it either way.
 */
export type ClientCheck =
  | { result: 'accepted'; mailbox: string; message: string }
  | { result: 'refused'; mailbox: string; company: string; code: string; message: string }
  | { result: 'unchecked'; message: string }

/** A provider's app as configured here: its client, its endpoints and scopes in the chosen cloud. */
export interface ProviderClient extends ClientAuth {
  endpoints: Endpoints
  scopes: string[]
  refreshScopes: string[] | null
  cloud: Cloud
}

export function tokenView(p: ProviderSpec, row: CredentialRow | undefined): TokenView {
  // The provider could not be reached or was briefly unavailable: the link itself is fine, mails wait and retry.
  const unreachable = row?.last_error_code?.startsWith('transient:') ? row.last_error : null
  const retried = { status: 'valid', valid: true, label: `${p.label} Token Valid (the last ${p.grant === 'client_credentials' ? 'token request' : 'refresh'} could not reach ${p.label}; it is retried)`, expires_at: row?.access_expires_at ?? null, last_error: unreachable } as const
  if (p.grant === 'client_credentials') {
    // No consent, no refresh token: a token is requested on first use (or Test Connection).
    if (row?.last_error && !unreachable) return { status: 'invalid', valid: false, label: `${p.label} Token Invalid: ${row.last_error}`, expires_at: row.access_expires_at, last_error: row.last_error }
    if (!row?.access_token) {
      return { status: 'missing', valid: false, label: `${p.label} Token Missing: click Test Connection to request one`, expires_at: null, last_error: unreachable }
    }
    return unreachable ? retried : { status: 'valid', valid: true, label: `${p.label} Token Valid`, expires_at: row.access_expires_at, last_error: null }
  }
  if (!row?.refresh_token) {
    return { status: 'missing', valid: false, label: `${p.label} Token Missing: click Connect your ${p.label} account`, expires_at: null, last_error: null }
  }
  if (unreachable) return retried
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

  /** The national cloud a provider runs in (Microsoft's setting; 'global' for the others). */
  async cloud(p: ProviderSpec): Promise<Cloud> {
    const stored = p.cloudAware ? await this.deps.settings.get('microsoft_outlook_cloud') : undefined
    return isCloud(stored) ? stored : 'global'
  }

  /**
   * The app's client id and secret, endpoints and scopes, or a clear refusal naming what to fill in. `candidate`:
   * an id or secret about to be saved, used instead of the stored one.
   */
  async client(p: ProviderSpec, o: { tenant?: string | null; candidate?: ClientCandidate } = {}): Promise<ProviderClient> {
    const { settings } = this.deps
    const clientId = o.candidate?.clientId || (await settings.get(`${p.settingsPrefix}_client_id`))
    const clientSecret = o.candidate?.clientSecret ?? (await settings.secret(`${p.settingsPrefix}_client_secret`))
    if (!clientId || !clientSecret) throw new MailbridgeError('credentials_missing', { provider: p.credentialsLabel })
    if (p.needsTenant && !o.tenant) throw new MailbridgeError('conflict', { message: `${p.article} ${p.label} server needs its Tenant ID (the Directory (tenant) ID from the app's Overview page in Azure).` })
    const cloud = await this.cloud(p)
    const values: Record<string, string> = {}
    for (const key of p.endpointParams) values[key] = (await settings.parameter(key))!
    return {
      clientId,
      clientSecret,
      endpoints: p.endpoints(values, { tenant: o.tenant ?? null }),
      scopes: p.scopes(cloud),
      refreshScopes: p.refreshScopes(cloud),
      cloud,
      timeoutMs: this.deps.tokenTimeoutMs,
    }
  }

  /** Whether any credential has a failure on record: one cheap query before anything lists every server's token. */
  async anyFailing(): Promise<boolean> {
    return (await this.deps.db.selectFrom('credentials').select('id').where('last_error', 'is not', null).limit(1).executeTakeFirst()) !== undefined
  }

  async find(p: ProviderSpec, account: Account): Promise<CredentialRow | undefined> {
    return this.deps.db
      .selectFrom('credentials')
      .selectAll()
      .where('provider', '=', p.id)
      .where('mailbox', '=', mailboxOf(account))
      .executeTakeFirst()
  }

  async view(p: ProviderSpec, account: Account): Promise<TokenView> {
    return tokenView(p, mailboxOf(account) ? await this.find(p, account) : undefined)
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
      .values({ id: newId(), provider: p.id, mailbox: key, tenant_id: null, created_at: at, ...sealed })
      .onConflict((oc) => oc.columns(['provider', 'mailbox']).doUpdateSet(sealed))
      .execute()
    this.deps.log.info({ provider: p.id, mailbox: key, expires_at: sealed.access_expires_at }, 'credential stored')
  }

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
    const { db, log } = this.deps
    const deadline = Date.now() + LOCK_MS + 5_000
    const appOnly = p.grant === 'client_credentials'
    for (;;) {
      let row = await this.find(p, mailbox)
      if (!row && appOnly) {
        // App-only needs no consent: the first use creates the credential, then takes the lease like a refresh.
        const at = now()
        await db
          .insertInto('credentials')
          .values({ id: newId(), provider: p.id, mailbox, refresh_token: null, access_token: null, access_expires_at: null, scopes: '', identity: '{}', last_refresh_at: null, last_error: null, last_error_code: null, refresh_lock_until: null, tenant_id: tenant, created_at: at, updated_at: at })
          .onConflict((oc) => oc.columns(['provider', 'mailbox']).doNothing())
          .execute()
        row = await this.find(p, mailbox)
      }
      if (!row || (!appOnly && !row.refresh_token)) throw new MailbridgeError('token_error', { message: `${mailbox} is not connected to ${p.label}: click Connect your ${p.label} account.` })
      // App-only has no consent to redo: every use may try again once the admin fixed the app in Azure.
      if (!appOnly && isDead(row)) throw new MailbridgeError('token_error', { message: `${mailbox}: ${row.last_error}` })
      const fresh = this.#fresh(row, rejected, appOnly ? tenant : undefined, renew)
      if (fresh) return fresh
      if (await this.#lease(row.id)) return this.#refresh(p, row.id, tenant, log.child({ provider: p.id, mailbox }), { rejected, renew })
      if (Date.now() > deadline) throw new MailbridgeError('token_error', { message: `${mailbox}: another refresh of this token did not finish in time` })
      await sleep(WAIT_STEP_MS)
    }
  }

  /** Take the refresh lease: one refresh per credential across all nodes (the conditional UPDATE is atomic). */
  async #lease(id: string): Promise<boolean> {
    const at = now()
    const taken = await this.deps.db
      .updateTable('credentials')
      .set({ refresh_lock_until: isoIn(LOCK_MS) })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('refresh_lock_until', 'is', null), eb('refresh_lock_until', '<', at)]))
      .executeTakeFirst()
    return taken.numUpdatedRows > 0n
  }

  /**
   * One token request under the lease. `candidate`: a client secret not saved yet; its refusal is not the stored
   * credential's failure, so it is not recorded (the stored secret may still be good).
   */
  async #refresh(p: ProviderSpec, id: string, tenant: string | null, log: Logger, o: { rejected?: Secret; renew?: boolean; candidate?: ClientCandidate } = {}): Promise<Secret> {
    const { db, box } = this.deps
    const appOnly = p.grant === 'client_credentials'
    // Re-read under the lease: another node may have refreshed between our read and our lease.
    const row = await db.selectFrom('credentials').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
    const fresh = this.#fresh(row, o.rejected, appOnly ? tenant : undefined, o.renew || o.candidate !== undefined)
    if (fresh) {
      await db.updateTable('credentials').set({ refresh_lock_until: null }).where('id', '=', id).execute()
      return fresh
    }
    try {
      const client = await this.client(p, { tenant, candidate: o.candidate })
      const tokens = appOnly
        ? await clientCredentialsGrant(p, { tokenUrl: client.endpoints.token, client, scopes: client.scopes })
        : await refreshGrant(p, {
            tokenUrl: client.endpoints.token,
            client,
            scopes: client.refreshScopes,
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
        await db.updateTable('credentials').set({ refresh_lock_until: null }).where('id', '=', id).execute()
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

  /**
   * Try a client secret before it is saved: refresh one connected mailbox of the app with it (or, for app-only
   * access, request a token in its tenant). A wrong secret gets AADSTS7000215, an expired one AADSTS7000222, both
   * `invalid_client`; a success saves the new tokens as any refresh does (refresh tokens rotate).
   * @see https://learn.microsoft.com/entra/identity-platform/reference-error-codes
   */
  async checkClient(prefix: ProviderSpec['settingsPrefix'], candidate: ClientCandidate): Promise<ClientCheck> {
    const ps = Object.values(providers).filter((p) => p.settingsPrefix === prefix)
    const rows = await this.deps.db
      .selectFrom('credentials')
      .selectAll()
      .where('provider', 'in', ps.map((p) => p.id))
      .orderBy('last_refresh_at', 'desc')
      .execute()
    const label = ps[0]!.credentialsLabel
    for (const row of rows) {
      const p = providers[row.provider as ProviderId]
      const usable = p.grant === 'client_credentials' ? row.tenant_id !== null : row.refresh_token !== null && !isDead(row)
      if (!usable || !(await this.#lease(row.id))) continue
      const log = this.deps.log.child({ provider: p.id, mailbox: row.mailbox })
      try {
        await this.#refresh(p, row.id, row.tenant_id, log, { candidate })
        log.info('client secret checked: accepted')
        return { result: 'accepted', mailbox: row.mailbox, message: `${p.company} accepted the Client Secret: a token request for ${row.mailbox} with it succeeded.` }
      } catch (e) {
        if (e instanceof ProviderError && e.error === 'invalid_client') {
          return { result: 'refused', mailbox: row.mailbox, company: p.company, code: e.shortCode, message: p.explain({ error: e.error, error_codes: e.aadsts ? [e.aadsts] : undefined }).action }
        }
        return { result: 'unchecked', message: `The Client Secret could not be checked: the token request for ${row.mailbox} failed (${(e as Error).message}). Test Connection checks it again.` }
      }
    }
    return { result: 'unchecked', message: `No mailbox is connected with the ${label} Credentials yet: connecting one (or Test Connection) checks the Client Secret.` }
  }

  /** A server refused a token we believed good (e.g. 535 after a refresh): the badge must turn red. */
  async recordUseFailure(p: ProviderSpec, account: Account, message: string): Promise<void> {
    await this.deps.db
      .updateTable('credentials')
      .set({ last_error: message, last_error_code: 'use_failed', updated_at: now() })
      .where('provider', '=', p.id)
      .where('mailbox', '=', mailboxOf(account))
      .execute()
  }

  /** A use that worked proves the token: clears a use failure (not a dead refresh token). */
  async recordUseSuccess(p: ProviderSpec, account: Account): Promise<void> {
    await this.deps.db
      .updateTable('credentials')
      .set({ last_error: null, last_error_code: null })
      .where('provider', '=', p.id)
      .where('mailbox', '=', mailboxOf(account))
      .where('last_error_code', '=', 'use_failed')
      .execute()
  }
}
