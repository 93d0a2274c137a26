import type { Kysely } from 'kysely'
import { redirectUri, type Config } from '../config.ts'
import type { SecretBox } from '../crypto/secret-box.ts'
import { hashToken, randomToken } from '../crypto/passwords.ts'
import { Secret } from '../crypto/secret.ts'
import { type DB, isoIn, now } from '../db/index.ts'
import { MailbridgeError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { aadstsCode } from './aadsts.ts'
import type { CredentialService } from './credentials.ts'
import type { DeviceCodes, DeviceCodeStart } from './device-code.ts'
import { adminConsentUrl, authorizationUrl, createPkce, exchangeCode, identityMatches, ProviderError, readIdentity } from './protocol.ts'
import { providers, type ProviderId, type ProviderSpec } from './providers.ts'

export type ServerKind = 'outgoing' | 'incoming'

const STATE_TTL_MS = 10 * 60_000

export interface ConfirmQuery {
  code?: string
  state?: string
  error?: string
  error_description?: string
  /** Microsoft's "Return to the application without granting consent": `cancel`. */
  error_subcode?: string
  /** An admin consent's answer (v2-admin-consent): `True`, with `tenant` and `scope`, or with `error`. */
  admin_consent?: string
  tenant?: string
  scope?: string
}

/** What a callback did: a mailbox connected (Connect), or a tenant-wide consent granted (admin consent). */
export type ConfirmOutcome =
  | { kind: 'connected'; target: ConfirmTarget }
  | { kind: 'admin_consented'; target: ConfirmTarget; provider: ProviderSpec; mailbox: string; tenant: string; scopes: string[] }

/** Where the admin lands after the callback, whatever its outcome. */
export interface ConfirmTarget {
  serverKind: ServerKind
  serverId: string
}

/**
 * The consent flow: a single-use, expiring, server-bound state (design.md §2), PKCE S256, then the code
 * exchange and the identity check. The state alone authorises the callback; from the UI it is also bound
 * to the admin session.
 */
export class ConnectService {
  constructor(
    private readonly deps: { db: Kysely<DB>; box: SecretBox; credentials: CredentialService; config: Config; log: Logger; deviceCodes: DeviceCodes },
  ) {}

  redirectUri(p: ProviderSpec): string {
    if (!p.route) throw new Error(`${p.id} has no consent callback`)
    return redirectUri(this.deps.config, p.route)
  }

  async start(p: ProviderSpec, o: { serverKind: ServerKind; serverId: string; mailbox: string; session?: string }): Promise<string> {
    if (p.grant !== 'authorization_code') {
      throw new MailbridgeError('conflict', { message: `${p.article} ${p.label} server needs no consent: no one signs in. Click Test Connection instead.` })
    }
    if (!o.mailbox) throw new MailbridgeError('username_missing')
    const client = await this.deps.credentials.client(p)
    const pkce = createPkce()
    const state = await this.#newState(p, o, 'authorization_code', pkce.verifier)
    return authorizationUrl(p, {
      authorizeUrl: client.endpoints.authorize,
      scopes: client.scopes,
      clientId: client.clientId,
      redirectUri: this.redirectUri(p),
      state,
      challenge: pkce.challenge,
      loginHint: o.mailbox,
    })
  }

  /**
   * The admin consent URL for the tenant of this server's mailbox (design.md §10): an administrator grants the
   * consent's scopes for every user of the tenant, then Microsoft returns to the confirm route with the state, which
   * is single-use and expires like Connect's.
   * @see https://learn.microsoft.com/entra/identity-platform/v2-admin-consent
   */
  async startAdminConsent(p: ProviderSpec, o: { serverKind: ServerKind; serverId: string; mailbox: string; session?: string }): Promise<string> {
    if (!p.adminConsentBase || !p.route) {
      throw new MailbridgeError('conflict', {
        message: p.grant === 'client_credentials'
          ? `${p.article} ${p.label} server uses application permissions: grant admin consent in Azure (the app's API permissions → Grant admin consent for your tenant), then click Test Connection.`
          : `${p.company} has no admin consent for ${p.label}: click "Connect your ${p.label} account" and accept the permissions.`,
      })
    }
    if (!o.mailbox) throw new MailbridgeError('username_missing')
    const client = await this.deps.credentials.client(p)
    // No PKCE here, but the column is required: a fresh random verifier is sealed and never used.
    const state = await this.#newState(p, o, 'admin_consent', createPkce().verifier)
    return adminConsentUrl(p.adminConsentBase(client.endpoints, o.mailbox), { clientId: client.clientId, redirectUri: this.redirectUri(p), state, scopes: client.scopes })
  }

  /** Sign in with a code on another device, polled by Mailbridge (device-code.ts): for installs no redirect URI reaches. */
  startDeviceCode(p: ProviderSpec, o: { serverKind: ServerKind; serverId: string; mailbox: string }): Promise<DeviceCodeStart> {
    return this.deps.deviceCodes.begin(p, o)
  }

  /** A random state, stored as its hash with what it is for, 10 minutes to live (design.md §2). */
  async #newState(p: ProviderSpec, o: { serverKind: ServerKind; serverId: string; mailbox: string; session?: string }, flow: 'authorization_code' | 'admin_consent', verifier: Secret): Promise<Secret> {
    const state = new Secret(randomToken(32))
    await this.deps.db
      .insertInto('oauth_states')
      .values({
        state_hash: hashToken(state.reveal()),
        provider: p.id,
        server_kind: o.serverKind,
        server_id: o.serverId,
        mailbox: o.mailbox.toLowerCase(),
        code_verifier: this.deps.box.seal(verifier, 'oauth_states.code_verifier'),
        session: o.session ?? null,
        expires_at: isoIn(STATE_TTL_MS),
        used_at: null,
        created_at: now(),
        flow,
      })
      .execute()
    // Expired states are useless; sweep them so the table stays small.
    await this.deps.db.deleteFrom('oauth_states').where('expires_at', '<', isoIn(-STATE_TTL_MS)).execute()
    return state
  }

  /**
   * Consume the state (RFC 6749 §10.12; RFC 9700 §4.7): one conditional UPDATE makes it single-use even when
   * the callback is hit twice at once. Returns where to send the admin, or throws a page-ready error that
   * carries the same target.
   */
  async #consume(providerId: ProviderId, rawState: string | undefined, session: string | undefined, flow: 'authorization_code' | 'admin_consent') {
    const provider = providers[providerId].label
    if (!rawState || rawState.length > 200) throw new MailbridgeError('state_invalid', { provider })
    const hash = hashToken(rawState)
    const row = await this.deps.db.selectFrom('oauth_states').selectAll().where('state_hash', '=', hash).executeTakeFirst()
    // A state answers only the flow it was made for: an admin consent's answer never stands in for a Connect's.
    if (!row || row.provider !== providerId || (row.flow ?? 'authorization_code') !== flow) throw new MailbridgeError('state_invalid', { provider })
    const target: ConfirmTarget = { serverKind: row.server_kind as ServerKind, serverId: row.server_id }
    // Started from an admin session this browser does not send here: most often the UI was opened on another host
    // name than MAILBRIDGE_BASE_URL's, whose cookie the browser keeps apart. Say so, rather than "forged".
    if (row.session !== null && session === undefined) throw new MailbridgeError('state_session_missing', { provider, target })
    if (row.session !== null && row.session !== session) throw new MailbridgeError('state_invalid', { provider, target })
    if (row.used_at) throw new MailbridgeError('state_used', { target })
    if (Date.parse(row.expires_at) < Date.now()) throw new MailbridgeError('state_expired', { target })
    const took = await this.deps.db
      .updateTable('oauth_states')
      .set({ used_at: now() })
      .where('state_hash', '=', hash)
      .where('used_at', 'is', null)
      .executeTakeFirst()
    if (took.numUpdatedRows === 0n) throw new MailbridgeError('state_used', { target })
    return { row, target }
  }

  async confirm(providerId: ProviderId, q: ConfirmQuery, session?: string): Promise<ConfirmOutcome> {
    const p = providers[providerId]
    const flow = q.admin_consent !== undefined ? 'admin_consent' : 'authorization_code'
    const { row, target } = await this.#consume(providerId, q.state, session, flow)
    const log = this.deps.log.child({ provider: p.id, mailbox: row.mailbox, server_kind: row.server_kind, server_id: row.server_id })
    const failed = (e: MailbridgeError, errorCode: string | null) => this.#recordFailure(p, row.mailbox, target, flow, e, errorCode)
    if (q.error) {
      log.warn({ error: q.error, error_subcode: q.error_subcode }, 'consent refused by the provider')
      const code = aadstsCode({ error: q.error, error_description: q.error_description })
      throw await failed(new MailbridgeError('provider_refused', { provider: p.company, description: describeRefusal(p, q), target }), code ? `AADSTS${code}` : q.error_subcode === 'cancel' ? 'cancel' : q.error)
    }
    if (flow === 'admin_consent') return this.#adminConsented(p, row.mailbox, target, q, log)
    if (!q.code || q.code.length > 4096) throw new MailbridgeError('bad_request', { message: 'The callback has no code. Click Connect again.', target })
    const client = await this.deps.credentials.client(p)
    let tokens
    try {
      tokens = await exchangeCode(p, {
        tokenUrl: client.endpoints.token,
        scopes: client.scopes,
        client,
        code: new Secret(q.code),
        verifier: this.deps.box.open(row.code_verifier, 'oauth_states.code_verifier'),
        redirectUri: this.redirectUri(p),
      })
    } catch (e) {
      log.warn({ cause: (e as Error).message }, 'code exchange failed')
      if (e instanceof MailbridgeError) {
        throw await failed(new MailbridgeError('provider_refused', { provider: p.company, description: e.message, target }, { cause: e }), e instanceof ProviderError ? e.shortCode : e.code)
      }
      throw e
    }
    if (!tokens.refreshToken) {
      throw new MailbridgeError('provider_refused', { provider: p.company, description: 'no refresh token came back; offline access was not granted', target })
    }
    const identity = readIdentity(tokens.idToken)
    if (!identityMatches(identity, row.mailbox)) {
      const actual = identity.email ?? identity.preferred_username ?? 'an unknown account'
      log.warn({ actual }, 'consent given by another account')
      throw await failed(new MailbridgeError('identity_mismatch', { actual, expected: row.mailbox, provider: p.company, target }), 'identity_mismatch')
    }
    await this.deps.credentials.save(p, row.mailbox, tokens, identity)
    return { kind: 'connected', target }
  }

  /**
   * `admin_consent=True` with the tenant and scopes (v2-admin-consent, successful response). The state, not the
   * tenant parameter, is what authorises this answer: Microsoft warns the tenant value can be forged. The tenant is
   * only shown, and the mailbox's sign-in notes that an admin consented, so its page stops asking for one.
   */
  async #adminConsented(p: ProviderSpec, mailbox: string, target: ConfirmTarget, q: ConfirmQuery, log: Logger): Promise<ConfirmOutcome> {
    const tenant = (q.tenant ?? '').slice(0, 200)
    const scopes = (q.scope ?? '').split(/\s+/).filter(Boolean).slice(0, 50)
    await this.deps.credentials.signIns.record(p, mailbox, target, {
      flow: 'admin_consent',
      state: 'admin_consented',
      reason: `An administrator of tenant ${tenant || '(not named)'} granted the permissions for every user of it. Click "Connect your ${p.label} account": no consent prompt follows.`,
    })
    log.info({ tenant, scopes }, 'admin consent granted for the tenant')
    return { kind: 'admin_consented', target, provider: p, mailbox, tenant, scopes }
  }

  /** Note on the mailbox why its sign-in failed (its page shows it, and "Grant admin consent" where Microsoft asked). */
  async #recordFailure(p: ProviderSpec, mailbox: string, target: ConfirmTarget, flow: 'authorization_code' | 'admin_consent', e: MailbridgeError, errorCode: string | null): Promise<MailbridgeError> {
    await this.deps.credentials.signIns.record(p, mailbox, target, { flow, state: ['access_denied', 'cancel', 'AADSTS65004'].includes(errorCode ?? '') ? 'declined' : 'failed', reason: e.message, errorCode })
    return e
  }
}

/**
 * A refusal at the redirect, in words: the description's first line, or for Microsoft's "Return to the application
 * without granting consent" (`error_subcode=cancel`, no description) what that page most often means.
 */
function describeRefusal(p: ProviderSpec, q: ConfirmQuery): string {
  if (!q.error_description && q.error_subcode === 'cancel') {
    return `the sign-in was cancelled. If ${p.company} showed "Need admin approval", the tenant lets only administrators consent: an administrator must click "Grant admin consent" on the server's page first, then Connect works.`
  }
  return (q.error_description || q.error || '').split(/\r?\n/)[0]!.slice(0, 500)
}
