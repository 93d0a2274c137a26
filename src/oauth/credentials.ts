import type { Kysely } from 'kysely'
import type { SecretBox } from '../crypto/secret-box.ts'
import type { Secret } from '../crypto/secret.ts'
import type { DB } from '../db/index.ts'
import type { CredentialRow } from '../db/schema.ts'
import { MailbridgeError } from '../errors.ts'
import { allowedHost, type TrustedHosts } from '../host-policy.ts'
import type { Logger } from '../log.ts'
import type { SettingsStore } from '../settings-store.ts'
import { checkClient, type ClientCheck } from './client-check.ts'
import { CLOUD_IDS, type Cloud } from './clouds.ts'
import { type Account, CredentialStore, mailboxOf, type ServerAccount } from './credential-store.ts'
import { type ClientCandidate, type ProviderClient, ProviderClients } from './provider-client.ts'
import type { Identity, TokenSet } from './protocol.ts'
import type { ProviderSpec } from './providers.ts'
import { anyFailing, recordUseFailure, recordUseSuccess } from './token-health.ts'
import { TokenRefresher } from './token-refresh.ts'
import { type SignInFlow, SignInStore } from './sign-ins.ts'
import { tokenView, withSignIn, type TokenView } from './token-view.ts'

export { accountOf, type Account, type ServerAccount } from './credential-store.ts'

/**
 * The tokens of connected mailboxes, keyed by (provider, mailbox): what features ask of OAuth. Each job has its
 * module: the app's client (provider-client.ts) and its secret check (client-check.ts), the stored tokens and
 * their badge (credential-store.ts, token-view.ts), the refresh under its lease (token-refresh.ts), and the
 * record of each use (token-health.ts).
 */
export class CredentialService {
  readonly #clients: ProviderClients
  readonly #store: CredentialStore
  readonly #refresher: TokenRefresher
  /** The mailboxes' sign-ins: a device code being polled, or how the last sign-in ended (sign-ins.ts). */
  readonly signIns: SignInStore

  constructor(
    private readonly deps: {
      db: Kysely<DB>
      box: SecretBox
      settings: SettingsStore
      log: Logger
      refreshMarginSeconds: number
      /** How long one token request may take (MAILBRIDGE_TOKEN_TIMEOUT_S). */
      tokenTimeoutMs?: number
      /** MAILBRIDGE_TRUSTED_HOSTS: endpoints and mail hosts allowed beside the providers' own. */
      trustedHosts: TrustedHosts
    },
  ) {
    const { db, box, log } = deps
    this.#clients = new ProviderClients({ settings: deps.settings, tokenTimeoutMs: deps.tokenTimeoutMs, trustedHosts: deps.trustedHosts })
    this.#store = new CredentialStore({ db, box, log })
    this.signIns = new SignInStore(db)
    this.#refresher = new TokenRefresher({ db, box, log, store: this.#store, clients: this.#clients, refreshMarginSeconds: deps.refreshMarginSeconds })
  }

  /** The national cloud a provider runs in (Microsoft's setting; 'global' for the others). */
  cloud(p: ProviderSpec): Promise<Cloud> {
    return this.#clients.cloud(p)
  }

  /** The app's client id and secret, endpoints and scopes; `candidate`: an id or secret about to be saved. */
  client(p: ProviderSpec, o: { tenant?: string | null; candidate?: ClientCandidate } = {}): Promise<ProviderClient> {
    return this.#clients.client(p, o)
  }

  /** Try a client secret with the provider before it is saved (client-check.ts). */
  checkClient(prefix: ProviderSpec['settingsPrefix'], candidate: ClientCandidate): Promise<ClientCheck> {
    return checkClient({ store: this.#store, refresher: this.#refresher, log: this.deps.log }, prefix, candidate)
  }

  /** Whether any credential has a failure on record. */
  anyFailing(): Promise<boolean> {
    return anyFailing(this.deps.db)
  }

  find(p: ProviderSpec, account: Account): Promise<CredentialRow | undefined> {
    return this.#store.find(p, account)
  }

  async view(p: ProviderSpec, account: Account): Promise<TokenView> {
    const mailbox = mailboxOf(account)
    const row = mailbox ? await this.find(p, account) : undefined
    const view = tokenView(p, row)
    return p.grant === 'authorization_code' ? withSignIn(view, row, mailbox ? await this.signIns.find(p, mailbox) : undefined) : view
  }

  /** Store a fresh consent: replaces the tokens and clears past errors; the mailbox's sign-in is complete. */
  async save(p: ProviderSpec, mailbox: string, tokens: TokenSet, identity: Identity, flow: SignInFlow = 'authorization_code'): Promise<void> {
    await this.#store.save(p, mailbox, tokens, identity)
    await this.signIns.completed(p, mailbox, flow)
  }

  /**
   * An access token with more than the refresh margin left, for the server host it is presented to. `rejected`:
   * the token a server just refused: refresh unless another caller already replaced it. `renew`: a new one even if
   * the stored token is fresh (Test Connection). Servers pass `accountOf(row)`, which names their host: a host the
   * provider does not run (and nobody trusted) gets nothing, checked at every use, not only when the server was
   * saved, since rows older than the rule exist. A bare account (no host) is for callers that send no mail.
   */
  async accessToken(p: ProviderSpec, account: Account | ServerAccount, o: { rejected?: Secret; renew?: boolean } = {}): Promise<Secret> {
    if (typeof account === 'object' && 'host' in account) {
      // Any cloud's hosts: the exact cloud was checked on save, and this runs for every mail without a settings read.
      const hosts = CLOUD_IDS.flatMap((c) => p.mailHosts(c))
      if (!allowedHost(account.host, hosts, this.deps.trustedHosts)) {
        throw new MailbridgeError('untrusted_host', {
          message: `${account.host} is not one of ${p.company}'s mail hosts (${p.mailHosts('global').join(', ')}, or a host in MAILBRIDGE_TRUSTED_HOSTS): the token of ${account.mailbox} is not sent there. Set the server's host to ${p.company}'s.`,
        })
      }
    }
    return this.#refresher.accessToken(p, account, o)
  }

  /** A server refused a token we believed good (e.g. 535 after a refresh): the badge must turn red. */
  async recordUseFailure(p: ProviderSpec, account: Account, message: string): Promise<void> {
    await recordUseFailure(this.deps.db, p, account, message)
    this.#store.noteUse(p, account, true)
  }

  /** A use that worked proves the token: clears a use failure (not a dead refresh token); no write when none is on record. */
  async recordUseSuccess(p: ProviderSpec, account: Account): Promise<void> {
    if (!this.#store.useFailed(p, account)) return
    await recordUseSuccess(this.deps.db, p, account)
    this.#store.noteUse(p, account, false)
  }
}
