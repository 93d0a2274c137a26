import { randomBytes } from 'node:crypto'
import type { FetchConfig } from '../config.ts'
import type { Secret } from '../crypto/secret.ts'
import { type Database, isoIn, now, type Tx } from '../db/index.ts'
import type { IncomingServerRow } from '../db/schema.ts'
import { MailbridgeError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { accountOf, type CredentialService } from '../oauth/credentials.ts'
import { ProviderError } from '../oauth/protocol.ts'
import { useToken } from '../oauth/token-use.ts'
import { tokenInvalid } from '../webhooks/events.ts'
import type { WebhookService } from '../webhooks/service.ts'
import type { Folder, FetchTransport } from './fetch-transport.ts'
import { ImapError } from './imap.ts'
import { imapTransport } from './imap-transport.ts'
import type { FetchResult } from './model.ts'
import { explainImapFailure, type IncomingServerService } from './service.ts'
import type { ParsePool } from './parse.ts'
import { FolderSync } from './folder-sync.ts'
import { SyncLedger } from './sync-ledger.ts'
import { fetches, messagesFetched } from '../metrics.ts'
import { PollLoop } from '../queue/poll-loop.ts'

/** Reconnects one fetch may make (a dropped session, `BYE ... AccessTokenExpired`) before it gives up. */
const MAX_RECONNECTS = 3
/** Fetch Now waits this long between looks at another node's lease on the same server. */
const LEASE_WAIT_STEP_MS = 200

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A lost session, and the token it presented when it got as far as the login. */
interface LostSession {
  error: Error
  tokenExpired: boolean
  token?: Secret
}

/** A test seam: awaited after each committed batch (tests cut the session there). */
export interface FetchHooks {
  afterBatch?: (batch: { uids: number[]; stored: number }) => Promise<void>
}

/**
 * The fetcher: one fetch at a time per server (an in-process queue, and a lease in the database across nodes),
 * new messages by UID in batches, each batch stored raw and parsed in one transaction with its webhook deliveries
 * and the folder's new last UID, and only then `\Seen` (design.md §2; Odoo marks first and loses what fails).
 */
export class Fetcher {
  readonly id: string
  readonly #running = new Map<string, Promise<unknown>>()
  #stopping = false

  constructor(
    private readonly deps: {
      database: Database
      credentials: CredentialService
      servers: IncomingServerService
      webhooks: WebhookService
      parser: ParsePool
      log: Logger
      config: FetchConfig
      /** How the servers are fetched: IMAP unless given. */
      transport?: FetchTransport
      /** This node's id (queue/heartbeat.ts), the owner of its fetch leases; one of its own when not given. */
      nodeId?: string
    },
  ) {
    this.id = deps.nodeId ?? `f-${randomBytes(4).toString('hex')}`
  }

  /** Shutdown: running fetches end after their current batch (committed batches stay; the rest waits for next time). */
  stop(): void {
    this.#stopping = true
  }

  /** True while this process fetches the server. */
  busy(serverId: string): boolean {
    return this.#running.has(serverId)
  }

  /**
   * Fetch a server now. A fetch of the same server already running here is waited for first; one running on
   * another node is waited for through its lease (unless `skipIfBusy`, the scheduler's choice).
   */
  async fetch(serverId: string, o: FetchHooks & { skipIfBusy?: boolean } = {}): Promise<FetchResult | null> {
    const before = this.#running.get(serverId)
    if (before && o.skipIfBusy) return null
    const run = (async () => {
      await before?.catch(() => undefined)
      return this.#leased(serverId, o)
    })()
    this.#running.set(serverId, run)
    try {
      return await run
    } finally {
      if (this.#running.get(serverId) === run) this.#running.delete(serverId)
    }
  }

  async #takeLease(id: string): Promise<boolean> {
    const at = now()
    const r = await this.deps.database.db
      .updateTable('incoming_servers')
      .set({ lease_owner: this.id, lease_until: isoIn(this.deps.config.leaseMs) })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', at), eb('lease_owner', '=', this.id)]))
      .executeTakeFirst()
    return r.numUpdatedRows > 0n
  }

  async #leased(serverId: string, o: FetchHooks & { skipIfBusy?: boolean }): Promise<FetchResult | null> {
    await this.deps.servers.row(serverId)
    while (!(await this.#takeLease(serverId))) {
      if (o.skipIfBusy) return null
      await sleep(LEASE_WAIT_STEP_MS)
    }
    const { db } = this.deps.database
    const result: FetchResult = { fetched: 0, stored: 0, duplicates: 0, failed: 0, parse_errors: 0 }
    let error: string | null = null
    const row = await this.deps.servers.row(serverId)
    const log = this.deps.log.child({ server_id: row.id, mailbox: row.username, host: row.host, folder: row.folder })
    try {
      await this.#run(row, result, log, o)
    } catch (e) {
      error = explainImapFailure(row, e)
      log.warn({ cause: (e as Error).message, ...result }, 'fetch failed; what was stored stays stored')
      const tokenDead = (e instanceof ImapError && e.stage === 'auth') || (e instanceof ProviderError ? !e.transient : e instanceof MailbridgeError && e.code === 'token_error')
      if (tokenDead) await this.deps.webhooks.enqueue(db, 'token.invalid', tokenInvalid('incoming', row, error))
    } finally {
      await db
        .updateTable('incoming_servers')
        .set({ lease_owner: null, lease_until: null, last_fetch_at: now(), ...(error ? {} : { last_fetch_ok_at: now() }), last_error: error, sync_progress: null })
        .where('id', '=', serverId)
        .where('lease_owner', '=', this.id)
        .execute()
    }
    result.failed = result.fetched - result.stored - result.duplicates
    fetches.inc({ result: error ? 'failed' : 'ok' })
    messagesFetched.inc({ outcome: 'stored' }, result.stored)
    messagesFetched.inc({ outcome: 'duplicate' }, result.duplicates)
    if (error && result.fetched === 0) throw new MailbridgeError('fetch_failed', { message: error })
    return result
  }

  /**
   * Sessions until the folder is synced: each one a use of the token (oauth/token-use.ts: a refused login gets one
   * refreshed token, Exchange refuses a token that expired moments ago). A lost session (a cut connection, a BYE)
   * comes back with a new login, up to MAX_RECONNECTS times; after `BYE ... AccessTokenExpired` with a new token.
   */
  async #run(row: IncomingServerRow, result: FetchResult, log: Logger, hooks: FetchHooks): Promise<void> {
    const transport = this.deps.transport ?? imapTransport
    let rejected: Secret | undefined
    for (let reconnects = 0; ; reconnects++) {
      let lost: LostSession | null
      try {
        lost = await useToken({
          credentials: this.deps.credentials,
          provider: this.deps.servers.provider(row),
          account: accountOf(row),
          log,
          peer: `${row.host}:${row.port}`,
          rejected,
          attempt: (token) => this.#session(transport, token, row, result, log, hooks),
          refused: (e) => transport.failure(e).refused,
          explain: (e) => explainImapFailure(row, e),
        })
      } catch (e) {
        // A server that could not be reached never saw the token: reconnect, with no use of the token to record.
        const f = transport.failure(e)
        if (!f.lost) throw e
        lost = { error: f.error, tokenExpired: f.tokenExpired }
      }
      if (!lost) return
      if (reconnects >= MAX_RECONNECTS) throw lost.error
      rejected = lost.tokenExpired ? lost.token : undefined
      log.warn({ cause: lost.error.message, reconnects: reconnects + 1, new_token: lost.tokenExpired }, 'IMAP session lost; reconnecting')
    }
  }

  /**
   * One session: open the folder and sync it. A session lost after its login is answered, not thrown: the token
   * was accepted.
   */
  async #session(transport: FetchTransport, token: Secret, row: IncomingServerRow, result: FetchResult, log: Logger, hooks: FetchHooks): Promise<LostSession | null> {
    let folder: Folder | undefined
    try {
      folder = await transport.open(row, token)
      const ledger = new SyncLedger({ db: this.deps.database.db, webhooks: this.deps.webhooks, server: row, progress: (q, text) => this.#progress(q, row.id, text) })
      const { parser, config } = this.deps
      const sync = new FolderSync({ folder, ledger, parse: (raw) => parser.parse(raw), markSeen: !!row.mark_seen, batchSize: config.batchSize, log, result, stopping: () => this.#stopping, afterBatch: hooks.afterBatch })
      await sync.run()
      return null
    } catch (e) {
      const f = transport.failure(e, folder)
      if (!f.lost || !folder) throw f.error
      return { error: f.error, tokenExpired: f.tokenExpired, token }
    } finally {
      await folder?.close()
    }
  }

  /** The server's status line ("n of m new messages stored"), and a longer lease: this fetch is alive. */
  #progress(db: Pick<Tx, 'updateTable'>, serverId: string, text: string) {
    return db.updateTable('incoming_servers').set({ sync_progress: text, lease_until: isoIn(this.deps.config.leaseMs) }).where('id', '=', serverId).where('lease_owner', '=', this.id).execute()
  }
}
