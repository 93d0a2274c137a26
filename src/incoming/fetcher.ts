import { randomBytes } from 'node:crypto'
import type { ImapFlow } from 'imapflow'
import type { FetchConfig } from '../config.ts'
import type { Secret } from '../crypto/secret.ts'
import { type Database, groupsOf, isoIn, newId, now, type Tx, whereIn } from '../db/index.ts'
import type { IncomingServerRow } from '../db/schema.ts'
import { MailbridgeError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { accountOf, type CredentialService } from '../oauth/credentials.ts'
import { ProviderError } from '../oauth/protocol.ts'
import { messageReceived, tokenInvalid } from '../webhooks/events.ts'
import type { WebhookService } from '../webhooks/service.ts'
import { ImapError, openSession, toImapError } from './imap.ts'
import type { FetchResult } from './model.ts'
import { explainImapFailure, type IncomingServerService } from './service.ts'
import type { ParsePool, Parsed } from './parse.ts'
import { linkThreads } from './threading.ts'
import { fetches, messagesFetched } from '../metrics.ts'
import { PollLoop } from '../queue/poll-loop.ts'

/** Reconnects one fetch may make (a dropped session, `BYE ... AccessTokenExpired`) before it gives up. */
const MAX_RECONNECTS = 3
/** Batches handed to the parser and the database but not yet committed, before the FETCH stream pauses. */
const MAX_PENDING_BATCHES = 4
/** Fetch Now waits this long between looks at another node's lease on the same server. */
const LEASE_WAIT_STEP_MS = 200

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

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
      if (e instanceof ImapError && e.stage === 'auth') await this.deps.credentials.recordUseFailure(this.deps.servers.provider(row), accountOf(row), error)
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

  async #run(row: IncomingServerRow, result: FetchResult, log: Logger, hooks: FetchHooks): Promise<void> {
    const p = this.deps.servers.provider(row)
    let rejected: Secret | undefined
    let authRetried = false
    for (let reconnects = 0; ; reconnects++) {
      const token = await this.deps.credentials.accessToken(p, accountOf(row), { rejected })
      let client: ImapFlow | undefined
      try {
        client = await openSession(row, token)
        await this.#sync(client, row, result, log, hooks)
        if (rejected) await this.deps.credentials.recordUseSuccess(p, accountOf(row))
        return
      } catch (e) {
        const err = toImapError(e, 'fetch', client)
        // A refused login gets one refreshed token (Exchange refuses a token that expired moments ago).
        if (err.stage === 'auth' && !authRetried) {
          authRetried = true
          rejected = token
          log.info('AUTHENTICATE refused: reconnecting with a refreshed token')
          continue
        }
        // A dropped session (BYE, EOF) comes back with a fresh login; AccessTokenExpired also wants a new token.
        const dropped = err.stage !== 'auth' && err.stage !== 'tls' && err.stage !== 'select' && (client ? !client.usable : err.stage === 'connect')
        if (!dropped || reconnects >= MAX_RECONNECTS) throw err
        if (err.tokenExpired) rejected = token
        log.warn({ cause: err.message, reconnects: reconnects + 1, new_token: err.tokenExpired }, 'IMAP session lost; reconnecting')
      } finally {
        if (client?.usable) await client.logout().catch(() => client?.close())
        else client?.close()
      }
    }
  }

  /**
   * SELECT, find the UIDs past the last stored one, and take them in chunks: one streamed UID FETCH per chunk,
   * cut into batches that are parsed (on the parser threads) and committed while the stream goes on; `\Seen` for
   * a chunk follows once its batches are committed. UIDs stored but not yet flagged (the session dropped) are
   * flagged first thing in the next session.
   */
  async #sync(client: ImapFlow, row: IncomingServerRow, result: FetchResult, log: Logger, hooks: FetchHooks): Promise<void> {
    const { db } = this.deps.database
    const box = await client.mailboxOpen(row.folder).catch((e: unknown) => {
      throw toImapError(e, 'select', client)
    })
    const uidvalidity = String(box.uidValidity)
    const flag = async (set: string) => {
      const stored = await client.messageFlagsAdd(set, ['\\Seen'], { uid: true }).catch((e: unknown) => {
        throw toImapError(e, 'fetch', client)
      })
      // imapflow answers a failed STORE with false, not an error. If the session ended under it (BYE, EOF),
      // counting it as flagged would move seen_uid past messages that stay unread for ever: reconnect instead.
      if (!stored && !client.usable) throw toImapError(new Error(`UID STORE ${set} +FLAGS (\\Seen) failed`), 'fetch', client)
      // A live session that refuses (a read-only folder) would refuse again: say so, and leave the flags.
      if (!stored) log.warn({ uids: set }, 'the server did not set \\Seen (a read-only folder?); the messages stay unread there')
    }
    /** After the flags are set: everything up to `uid` is stored and \Seen. */
    const flaggedUpTo = (uid: number) =>
      db.updateTable('incoming_sync').set({ seen_uid: uid }).where('server_id', '=', row.id).where('folder', '=', row.folder).where('uidvalidity', '=', uidvalidity).execute()
    const sync = await db.selectFrom('incoming_sync').selectAll().where('server_id', '=', row.id).where('folder', '=', row.folder).executeTakeFirst()
    let lastUid = sync?.last_uid ?? 0
    if (sync && sync.uidvalidity !== uidvalidity) {
      // RFC 3501 §2.3.1.1: a new UIDVALIDITY voids every UID we knew. Start over; Message-IDs keep us from storing twice.
      log.warn({ old: sync.uidvalidity, new: uidvalidity }, 'UIDVALIDITY changed: refetching the folder, deduplicating by Message-ID')
      lastUid = 0
      await db.updateTable('incoming_sync').set({ uidvalidity, last_uid: 0, seen_uid: 0, updated_at: now() }).where('server_id', '=', row.id).where('folder', '=', row.folder).execute()
    }
    // Stored before a crash or a dropped session, but not yet flagged: flag them first.
    const seenUid = sync && sync.uidvalidity === uidvalidity ? sync.seen_uid : 0
    if (row.mark_seen && seenUid < lastUid) {
      await flag(`${seenUid + 1}:${lastUid}`)
      await flaggedUpTo(lastUid)
    }
    const found = await client.search({ uid: `${lastUid + 1}:*` }, { uid: true })
    // `n:*` always matches the highest message, even below n (RFC 3501 §6.4.8): keep only the new ones.
    const uids = (found || []).filter((u) => u > lastUid).sort((a, b) => a - b)
    if (!uids.length) return
    const total = uids.length
    const { batchSize } = this.deps.config
    log.info({ new_messages: total, last_uid: lastUid, uidvalidity }, 'fetching new messages')
    let done = 0
    let lastLogged = Date.now()
    const progressText = () => `${done} of ${total} new messages stored`
    const logProgress = () => {
      if (Date.now() - lastLogged > 2000 || done === total) {
        lastLogged = Date.now()
        log.info({ done, total }, progressText())
      }
    }
    await this.#progress(db, row.id, progressText())
    const chunkSize = batchSize * 10
    // One chain of commits for the whole sync: batches commit in order, one after another, while the FETCH
    // streams go on; at most MAX_PENDING_BATCHES wait (the stream pauses, and TCP pauses the server).
    let commits: Promise<void> = Promise.resolve()
    let commitError: unknown
    const pending: Array<Promise<void>> = []
    // \Seen for a chunk once its batches are committed. imapflow runs one command at a time, so it follows the
    // next chunk's FETCH, which starts as soon as this chunk's stream ends: the session never waits for a commit.
    let flags: Promise<void> = Promise.resolve()
    let flagError: unknown
    /** The folder's last UID as committed: it never moves back, whatever order a chunk's UIDs arrive in. */
    let storedUpTo = lastUid
    for (let c = 0; c < uids.length && commitError === undefined && flagError === undefined; c += chunkSize) {
      const chunk = uids.slice(c, c + chunkSize)
      // The folder's last UID only moves past UIDs that are committed, so a server streaming out of UID order
      // cannot make us skip one.
      const committed: number[] = []
      const inChunk = new Set<number>()
      let safe = 0
      let upToCommitted = 0
      const commit = (batch: Array<{ uid: number; source: Buffer }>, final: boolean) => {
        const parsing = Promise.all(batch.map((m) => this.deps.parser.parse(m.source)))
        parsing.catch(() => undefined)
        commits = commits.then(async () => {
          const parsed = await parsing
          for (const m of batch) inChunk.add(m.uid)
          while (safe < chunk.length && inChunk.has(chunk[safe]!)) safe++
          const upTo = Math.max(storedUpTo, final ? chunk[chunk.length - 1]! : safe > 0 ? chunk[safe - 1]! : 0)
          const before = done
          done = c + (final ? chunk.length : safe)
          const stored = await this.#store(row, uidvalidity, batch, parsed, upTo, done !== before ? progressText() : null, result, log)
          storedUpTo = upToCommitted = upTo
          for (const m of batch) committed.push(m.uid)
          if (done !== before) logProgress()
          if (batch.length) await hooks.afterBatch?.({ uids: batch.map((m) => m.uid), stored })
        })
        // A failed commit stops the sync; the batches after it are not stored (the chain skips them).
        pending.push(
          commits.catch((e: unknown) => {
            commitError ??= e
          }),
        )
      }
      let streamError: unknown
      try {
        let batch: Array<{ uid: number; source: Buffer }> = []
        for await (const m of client.fetch(chunk.join(','), { uid: true, source: true }, { uid: true })) {
          if (!m.source) continue
          result.fetched++
          batch.push({ uid: m.uid, source: m.source })
          if (batch.length < batchSize) continue
          commit(batch, false)
          batch = []
          while (pending.length > MAX_PENDING_BATCHES) await pending.shift()
          if (commitError !== undefined) break
        }
        // The stream ended: messages of the chunk it did not return were deleted meanwhile; move past them.
        if (commitError === undefined) commit(batch, true)
      } catch (e) {
        streamError = toImapError(e, 'fetch', client)
      }
      // Only with them committed may the mailbox see those messages as read. A crash or a dropped session in
      // between leaves seen_uid behind last_uid: the next session flags that range first.
      const chunkCommitted = commits.catch(() => undefined)
      if (!streamError && row.mark_seen) {
        flags = flags.then(async () => {
          await chunkCommitted
          if (flagError !== undefined || !committed.length) return
          await flag(committed.join(','))
          await flaggedUpTo(upToCommitted)
        }).catch((e: unknown) => {
          flagError ??= e
        })
      }
      if (streamError) {
        // What was handed over is committed, up to the first batch that fails.
        await Promise.all([commits.catch(() => undefined), flags])
        throw commitError ?? streamError
      }
      if (this.#stopping) break
    }
    await Promise.all([commits.catch(() => undefined), flags])
    if (commitError !== undefined || flagError !== undefined) throw commitError ?? flagError
    if (this.#stopping && done < total) log.info({ done, total }, 'stopping: the rest is fetched next time')
  }

  /** The server's status line ("n of m new messages stored"), and a longer lease: this fetch is alive. */
  #progress(db: Pick<Tx, 'updateTable'>, serverId: string, text: string) {
    return db.updateTable('incoming_servers').set({ sync_progress: text, lease_until: isoIn(this.deps.config.leaseMs) }).where('id', '=', serverId).where('lease_owner', '=', this.id).execute()
  }

  /**
   * One transaction per batch: messages, raw, attachments, threads, webhook deliveries, the folder's last UID, the
   * progress. A few statements for the whole batch (duplicates, threads, then multi-row inserts), not a few per
   * message: on PostgreSQL each one is a round trip.
   */
  async #store(
    row: IncomingServerRow,
    uidvalidity: string,
    fetched: Array<{ uid: number; source: Buffer }>,
    parsed: Parsed[],
    lastUid: number,
    progress: string | null,
    result: FetchResult,
    log: Logger,
  ): Promise<number> {
    const { db } = this.deps.database
    let stored = 0
    await db.transaction().execute(async (tx: Tx) => {
      const at = now()
      // First, the counter row: its lock, held to commit, makes message stores (any server, any node) commit one
      // after another, so seq follows commit order and a reader's "after my cursor" can never skip a message.
      const counter = await tx.updateTable('counters').set((eb) => ({ value: eb('value', '+', 0) })).where('name', '=', 'messages').returning('value').executeTakeFirstOrThrow()
      const seq = Number(counter.value)
      // Already stored: the same UID of this folder, or the same Message-ID on this server (a copy in another
      // folder, a refetch after UIDVALIDITY changed, or twice in this very batch). Two lookups, each on its own
      // index: by Message-ID alone, the server compared here (with both in the WHERE, SQLite without ANALYZE walks
      // the server's index instead, every message of the mailbox).
      const sameUid = new Set(
        (
          await whereIn(
            fetched.map((m) => m.uid),
            (uids) => tx.selectFrom('messages').select('uid').where('server_id', '=', row.id).where('folder', '=', row.folder).where('uidvalidity', '=', uidvalidity).where('uid', 'in', uids).execute(),
          )
        ).map((r) => r.uid),
      )
      const sameId = new Set(
        (await whereIn(parsed.flatMap((p) => p.row.message_id ?? []), (ids) => tx.selectFrom('messages').select(['message_id', 'server_id']).where('message_id', 'in', ids).execute()))
          .filter((r) => r.server_id === row.id)
          .map((r) => r.message_id),
      )
      const fresh: Array<{ id: string; uid: number; source: Buffer; p: Parsed }> = []
      for (const [i, m] of fetched.entries()) {
        const p = parsed[i]!
        if (sameUid.has(m.uid) || (p.row.message_id && sameId.has(p.row.message_id))) {
          result.duplicates++
          continue
        }
        if (p.row.message_id) sameId.add(p.row.message_id)
        fresh.push({ id: newId(), uid: m.uid, source: m.source, p })
      }
      const links = await linkThreads(
        tx,
        fresh.map((f) => ({ id: f.id, messageId: f.p.row.message_id, inReplyTo: f.p.row.in_reply_to, references: JSON.parse(f.p.row.references) as string[] })),
      )
      const messages = fresh.map((f, i) => ({
        id: f.id,
        server_id: row.id,
        folder: row.folder,
        uidvalidity,
        uid: f.uid,
        ...f.p.row,
        thread_id: links[i]!.threadId,
        in_reply_to_mail_id: links[i]!.inReplyToMailId,
        size: f.source.length,
        received_at: at,
        seq: seq + i + 1,
      }))
      for (const g of groupsOf(messages)) await tx.insertInto('messages').values(g).execute()
      for (const g of groupsOf(fresh, 50)) await tx.insertInto('message_raws').values(g.map((f) => ({ message_id: f.id, raw: f.source }))).execute()
      const attachments = fresh.flatMap((f) => f.p.attachments.map((a, position) => ({ id: newId(), message_id: f.id, position, ...a })))
      for (const g of groupsOf(attachments)) await tx.insertInto('message_attachments').values(g).execute()
      await this.deps.webhooks.enqueueAll(
        tx,
        'message.received',
        messages.map((m) => messageReceived(row, m)),
      )
      for (const m of messages) {
        if (!m.parse_error) continue
        result.parse_errors++
        log.warn({ uid: m.uid, message_id: m.id, cause: m.parse_error }, 'message kept raw: it could not be parsed')
      }
      stored = fresh.length
      await tx
        .insertInto('incoming_sync')
        .values({ server_id: row.id, folder: row.folder, uidvalidity, last_uid: lastUid, updated_at: at })
        .onConflict((oc) => oc.columns(['server_id', 'folder']).doUpdateSet({ uidvalidity, last_uid: lastUid, updated_at: at }))
        .execute()
      if (progress) await this.#progress(tx, row.id, progress)
      if (stored) await tx.updateTable('counters').set({ value: seq + stored }).where('name', '=', 'messages').execute()
    })
    result.stored += stored
    return stored
  }
}

/**
 * The scheduler: every poll, each confirmed server whose poll interval has passed since its last fetch is queued
 * (most overdue first), unless a fetch of it runs or waits already (here or, by its lease, on another node). At
 * most `concurrency` queued fetches run at once on this node, each in its own IMAP session closed after: a node
 * that starts with a thousand servers due opens twenty sessions at a time, not a thousand (a connection storm
 * that Dovecot's login processes and Exchange's throttling both answer by refusing). Fetch Now is not queued.
 */
export class IncomingScheduler {
  readonly #runs = new Set<Promise<unknown>>()
  /** Due servers waiting for a free slot, in the order they are fetched. */
  #queue: string[] = []
  /** Servers queued or being fetched by this scheduler. */
  readonly #pending = new Set<string>()
  #stopping = false
  readonly #poll: PollLoop

  constructor(private readonly deps: { database: Database; fetcher: Fetcher; log: Logger; config: FetchConfig }) {
    this.#poll = new PollLoop({ pass: () => this.tick(), pollMs: deps.config.pollMs, log: deps.log, what: 'fetch scheduler' })
  }

  start(): void {
    this.#stopping = false
    this.#poll.start()
  }

  /** Queue the fetches that are due and start as many as there are free slots; returns how many were queued. */
  async tick(): Promise<number> {
    const at = Date.now()
    const nowIso = now()
    const servers = await this.deps.database.db
      .selectFrom('incoming_servers')
      .select(['id', 'poll_interval_s', 'last_fetch_at', 'lease_until'])
      .where('state', '=', 'confirmed')
      .execute()
    const due: Array<{ id: string; dueAt: number }> = []
    for (const s of servers) {
      if (this.#pending.has(s.id) || this.deps.fetcher.busy(s.id)) continue
      if (s.lease_until && s.lease_until > nowIso) continue
      // Never fetched: due since forever, so first in line.
      const dueAt = s.last_fetch_at ? Date.parse(s.last_fetch_at) + s.poll_interval_s * 1000 : 0
      if (dueAt > at) continue
      due.push({ id: s.id, dueAt })
    }
    due.sort((a, b) => a.dueAt - b.dueAt)
    for (const d of due) {
      this.#queue.push(d.id)
      this.#pending.add(d.id)
    }
    this.#fill()
    return due.length
  }

  /** Start queued fetches while slots are free; each one that ends starts the next. */
  #fill(): void {
    while (!this.#stopping && this.#runs.size < this.deps.config.concurrency && this.#queue.length) {
      const id = this.#queue.shift()!
      const run = this.#fetchIfConfirmed(id)
        .catch(() => undefined)
        .finally(() => {
          this.#runs.delete(run)
          this.#pending.delete(id)
          this.#fill()
        })
      this.#runs.add(run)
    }
  }

  /** A server may have been edited back to draft (or deleted) while it waited in the queue. */
  async #fetchIfConfirmed(id: string): Promise<unknown> {
    const row = await this.deps.database.db.selectFrom('incoming_servers').select('state').where('id', '=', id).executeTakeFirst()
    if (row?.state !== 'confirmed') return null
    return this.deps.fetcher.fetch(id, { skipIfBusy: true })
  }

  /** Wait until the queue is empty and no scheduled fetch runs. */
  async idle(): Promise<void> {
    while (this.#runs.size) await Promise.allSettled([...this.#runs])
  }

  /** Stop starting fetches (the queued ones wait for the next start); the running ones finish their batch. */
  async stop(): Promise<void> {
    this.#stopping = true
    for (const id of this.#queue) this.#pending.delete(id)
    this.#queue = []
    this.deps.fetcher.stop()
    await this.#poll.stop()
    await this.idle()
  }
}
