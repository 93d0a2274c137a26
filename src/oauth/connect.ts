import type { Kysely } from 'kysely'
import { redirectUri, type Config } from '../config.ts'
import type { SecretBox } from '../crypto/secret-box.ts'
import { hashToken, randomToken } from '../crypto/passwords.ts'
import { Secret } from '../crypto/secret.ts'
import { type DB, isoIn, now } from '../db/index.ts'
import { MailbridgeError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { CredentialService } from './credentials.ts'
import { graphPermissionsOf } from './graph-use.ts'
import { authorizationUrl, createPkce, exchangeCode, identityMatches, readIdentity } from './protocol.ts'
import { providers, type ProviderId, type ProviderSpec } from './providers.ts'

export type ServerKind = 'outgoing' | 'incoming'

const STATE_TTL_MS = 10 * 60_000

export interface ConfirmQuery {
  code?: string
  state?: string
  error?: string
  error_description?: string
}

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
    private readonly deps: { db: Kysely<DB>; box: SecretBox; credentials: CredentialService; config: Config; log: Logger },
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
    // One consent for every server of the mailbox: the Outlook scopes, and the Graph permissions its Graph servers need
    // (/authorize may name several resources; each token request then names one).
    const graph = await graphPermissionsOf(this.deps.db, p, o.mailbox)
    const scopes = [...client.scopes, ...(graph.length ? p.graph!.scopes(client.cloud, graph) : [])]
    const state = new Secret(randomToken(32))
    const pkce = createPkce()
    await this.deps.db
      .insertInto('oauth_states')
      .values({
        state_hash: hashToken(state.reveal()),
        provider: p.id,
        server_kind: o.serverKind,
        server_id: o.serverId,
        mailbox: o.mailbox.toLowerCase(),
        code_verifier: this.deps.box.seal(pkce.verifier, 'oauth_states.code_verifier'),
        session: o.session ?? null,
        expires_at: isoIn(STATE_TTL_MS),
        used_at: null,
        created_at: now(),
      })
      .execute()
    // Expired states are useless; sweep them so the table stays small.
    await this.deps.db.deleteFrom('oauth_states').where('expires_at', '<', isoIn(-STATE_TTL_MS)).execute()
    return authorizationUrl(p, {
      authorizeUrl: client.endpoints.authorize,
      scopes,
      clientId: client.clientId,
      redirectUri: this.redirectUri(p),
      state,
      challenge: pkce.challenge,
      loginHint: o.mailbox,
    })
  }

  /**
   * Consume the state (RFC 6749 §10.12; RFC 9700 §4.7): one conditional UPDATE makes it single-use even when
   * the callback is hit twice at once. Returns where to send the admin, or throws a page-ready error that
   * carries the same target.
   */
  async #consume(providerId: ProviderId, rawState: string | undefined, session?: string) {
    const provider = providers[providerId].label
    if (!rawState || rawState.length > 200) throw new MailbridgeError('state_invalid', { provider })
    const hash = hashToken(rawState)
    const row = await this.deps.db.selectFrom('oauth_states').selectAll().where('state_hash', '=', hash).executeTakeFirst()
    if (!row || row.provider !== providerId) throw new MailbridgeError('state_invalid', { provider })
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

  /**
   * The code buys Exchange Online's token; a mailbox with Graph servers gets its Graph token at once from the new
   * refresh token, so its badge knows whether the consent covered the Graph permissions. A refusal is only logged:
   * the server's badge says what to do.
   */
  async #graphToken(p: ProviderSpec, mailbox: string, log: Logger): Promise<void> {
    const [permission] = await graphPermissionsOf(this.deps.db, p, mailbox)
    if (!permission) return
    await this.deps.credentials.accessToken(p, mailbox, { resource: { graph: permission } }).catch((e: unknown) => {
      log.warn({ cause: (e as Error).message }, 'no Microsoft Graph token after the consent')
    })
  }

  async confirm(providerId: ProviderId, q: ConfirmQuery, session?: string): Promise<ConfirmTarget> {
    const p = providers[providerId]
    const { row, target } = await this.#consume(providerId, q.state, session)
    const log = this.deps.log.child({ provider: p.id, mailbox: row.mailbox, server_kind: row.server_kind, server_id: row.server_id })
    if (q.error) {
      const description = (q.error_description || q.error).split(/\r?\n/)[0]!.slice(0, 500)
      log.warn({ error: q.error }, 'consent refused by the provider')
      throw new MailbridgeError('provider_refused', { provider: p.company, description, target })
    }
    if (!q.code || q.code.length > 4096) throw new MailbridgeError('bad_request', { message: 'The callback has no code. Click Connect again.', target })
    let tokens
    try {
      tokens = await this.deps.credentials.withClient(p, { log }, (client) =>
        exchangeCode(p, {
          tokenUrl: client.endpoints.token,
          scopes: client.scopes,
          client,
          code: new Secret(q.code!),
          verifier: this.deps.box.open(row.code_verifier, 'oauth_states.code_verifier'),
          redirectUri: this.redirectUri(p),
        }),
      )
    } catch (e) {
      log.warn({ cause: (e as Error).message }, 'code exchange failed')
      if (e instanceof MailbridgeError) throw new MailbridgeError('provider_refused', { provider: p.company, description: e.message, target }, { cause: e })
      throw e
    }
    if (!tokens.refreshToken) {
      throw new MailbridgeError('provider_refused', { provider: p.company, description: 'no refresh token came back; offline access was not granted', target })
    }
    const identity = readIdentity(tokens.idToken)
    if (!identityMatches(identity, row.mailbox)) {
      const actual = identity.email ?? identity.preferred_username ?? 'an unknown account'
      log.warn({ actual }, 'consent given by another account')
      throw new MailbridgeError('identity_mismatch', { actual, expected: row.mailbox, provider: p.company, target })
    }
    await this.deps.credentials.save(p, row.mailbox, tokens, identity)
    await this.#graphToken(p, row.mailbox, log)
    return target
  }
}
