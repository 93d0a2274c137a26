import type { Logger } from '../log.ts'
import type { FetchedMessage, Folder, UidSet } from './fetch-transport.ts'
import type { FetchResult } from './model.ts'
import type { Parsed } from './parse.ts'
import type { BatchOutcome, ParsedMessage } from './store-batch.ts'

/** Batches handed to the parser and the database but not yet committed, before the FETCH stream pauses. */
const MAX_PENDING_BATCHES = 4
/** Batches per streamed UID FETCH. */
const BATCHES_PER_CHUNK = 10
/** The progress goes to the log at most this often (and once at the end). */
const PROGRESS_LOG_MS = 2000

/** Where the folder's last sync stopped (incoming_sync). */
export interface SyncMark {
  uidvalidity: string
  /** Every UID up to it is committed (or was deleted before it was fetched). */
  last_uid: number
  /** Every UID up to it is committed and `\Seen`; lags last_uid when a session ended between commit and STORE. */
  seen_uid: number
}

/** The database side of a folder sync (sync-ledger.ts; tests give an in-memory one). */
export interface FolderLedger {
  read(): Promise<SyncMark | undefined>
  /** A new UIDVALIDITY: every known UID is void, last_uid and seen_uid go back to 0. */
  restart(uidvalidity: string): Promise<void>
  /** In one transaction: store the batch, move last_uid to `lastUid`, write the progress line when given. */
  commit(uidvalidity: string, batch: ParsedMessage[], lastUid: number, progress: string | null): Promise<BatchOutcome>
  /** Every UID up to `uid` is committed and `\Seen`. */
  seen(uidvalidity: string, uid: number): Promise<void>
  /** The progress line, outside a commit (the start of a sync). */
  progress(text: string): Promise<void>
}

export interface FolderSyncDeps {
  folder: Folder
  ledger: FolderLedger
  parse(raw: Buffer): Promise<Parsed>
  /** The server's mark_seen. */
  markSeen: boolean
  batchSize: number
  log: Logger
  /** The counts of the whole fetch (several sessions when one is lost); this sync adds to them. */
  result: FetchResult
  /** True once the node shuts down: the sync ends after the chunk it is in. */
  stopping(): boolean
  /** A test seam: awaited after each committed batch. */
  afterBatch?(batch: { uids: number[]; stored: number }): Promise<void>
}

/** One streamed UID FETCH of a sync: which of its UIDs are committed. */
class Chunk {
  /** Its UIDs committed so far, in commit order: what its `\Seen` covers. */
  readonly committed: number[] = []
  /** The folder's last UID as of this chunk's latest commit: where seen_uid goes once the chunk is flagged. */
  committedUpTo = 0
  readonly #handed = new Set<number>()
  /** How many of its UIDs, from the lowest, have all been handed to a commit. */
  #prefix = 0

  constructor(
    readonly uids: number[],
    readonly offset: number,
  ) {}

  /**
   * A batch is being committed: the highest UID below which every UID of the chunk is in this or an earlier
   * commit, so a server streaming out of UID order cannot make the sync skip one. Once the stream ended (`final`),
   * every UID of the chunk: those it did not return were deleted meanwhile. And how many UIDs of the sync that is.
   */
  reach(batch: readonly FetchedMessage[], final: boolean): { upTo: number; done: number } {
    for (const m of batch) this.#handed.add(m.uid)
    while (this.#prefix < this.uids.length && this.#handed.has(this.uids[this.#prefix]!)) this.#prefix++
    const covered = final ? this.uids.length : this.#prefix
    return { upTo: covered > 0 ? this.uids[covered - 1]! : 0, done: this.offset + covered }
  }
}

/**
 * One sync of one folder in one session: the UIDs past the folder's last UID, taken in chunks (one streamed UID
 * FETCH each) cut into batches that are parsed (on the parser threads) and committed in order while the stream
 * goes on; `\Seen` for a chunk follows once its batches are committed, queued behind the next chunk's FETCH.
 *
 * Its invariant: **the folder's last UID and `\Seen` only move past committed messages** (design.md §2; Odoo marks
 * first and loses what fails). `#lastUid` moves only in a commit of the ledger, and never back; `\Seen` is set only
 * on UIDs a commit returned from, and seen_uid moves only after the server set it. A failed commit stops the
 * sync and moves neither; what was committed but not flagged (a session lost before its STORE) is flagged first
 * thing in the next sync.
 */
export class FolderSync {
  /** The folder's last UID as committed. */
  #lastUid = 0
  /** The chain of commits, in the order the batches were handed over; a failed one stops it (the rest are skipped). */
  #commits: Promise<void> = Promise.resolve()
  #commitError: unknown
  /** Commits not yet settled: the stream pauses while more than MAX_PENDING_BATCHES wait (and TCP pauses the server). */
  readonly #pending: Array<Promise<void>> = []
  /** The chain of `\Seen` STOREs, each after the commits of its chunk. */
  #flags: Promise<void> = Promise.resolve()
  #flagError: unknown
  #done = 0
  #total = 0
  #lastLogged = 0

  constructor(private readonly o: FolderSyncDeps) {}

  get #failed(): boolean {
    return this.#commitError !== undefined || this.#flagError !== undefined
  }

  async run(): Promise<void> {
    const { folder, ledger, log } = this.o
    const uidvalidity = folder.uidValidity
    const mark = await ledger.read()
    if (mark && mark.uidvalidity !== uidvalidity) {
      // RFC 3501 §2.3.1.1: a new UIDVALIDITY voids every UID we knew. Start over; Message-IDs keep us from storing twice.
      log.warn({ old: mark.uidvalidity, new: uidvalidity }, 'UIDVALIDITY changed: refetching the folder, deduplicating by Message-ID')
      await ledger.restart(uidvalidity)
    }
    const known = mark?.uidvalidity === uidvalidity ? mark : undefined
    this.#lastUid = known?.last_uid ?? 0
    // Committed before a crash or a lost session, but not yet flagged: flag them first.
    if (this.o.markSeen && known && known.seen_uid < this.#lastUid) await this.#flag({ from: known.seen_uid + 1, to: this.#lastUid }, this.#lastUid)
    const uids = await folder.listNew(this.#lastUid)
    if (!uids.length) return
    this.#total = uids.length
    this.#lastLogged = Date.now()
    log.info({ new_messages: this.#total, last_uid: this.#lastUid, uidvalidity }, 'fetching new messages')
    await ledger.progress(this.#progressText(0))
    const chunkSize = this.o.batchSize * BATCHES_PER_CHUNK
    for (let c = 0; c < uids.length && !this.#failed; c += chunkSize) {
      await this.#chunk(new Chunk(uids.slice(c, c + chunkSize), c))
      if (this.o.stopping()) break
    }
    await this.#settled()
    if (this.#failed) throw this.#commitError ?? this.#flagError
    if (this.o.stopping() && this.#done < this.#total) log.info({ done: this.#done, total: this.#total }, 'stopping: the rest is fetched next time')
  }

  async #chunk(chunk: Chunk): Promise<void> {
    let streamError: unknown
    try {
      let batch: FetchedMessage[] = []
      for await (const m of this.o.folder.fetch(chunk.uids)) {
        this.o.result.fetched++
        batch.push(m)
        if (batch.length < this.o.batchSize) continue
        this.#commit(chunk, batch, false)
        batch = []
        while (this.#pending.length > MAX_PENDING_BATCHES) await this.#pending.shift()
        if (this.#commitError !== undefined) break
      }
      if (this.#commitError === undefined) this.#commit(chunk, batch, true)
    } catch (e) {
      streamError = e
    }
    // Only once they are committed may the mailbox see those messages as read. imapflow runs one command at a
    // time, so the STORE follows the next chunk's FETCH, which starts now: the session never waits for a commit.
    if (!streamError && this.o.markSeen) {
      const committed = this.#commits.catch(() => undefined)
      this.#flags = this.#flags
        .then(async () => {
          await committed
          if (this.#flagError === undefined && chunk.committed.length) await this.#flag(chunk.committed, chunk.committedUpTo)
        })
        .catch((e: unknown) => {
          this.#flagError ??= e
        })
    }
    if (streamError) {
      // What was handed over is committed, up to the first batch that fails.
      await this.#settled()
      throw this.#commitError ?? streamError
    }
  }

  /** Parse now (beside the stream), commit in order after the batches handed over before. */
  #commit(chunk: Chunk, batch: FetchedMessage[], final: boolean): void {
    const parsing = Promise.all(batch.map((m) => this.o.parse(m.source)))
    parsing.catch(() => undefined)
    this.#commits = this.#commits.then(async () => {
      const parsed = await parsing
      const { upTo, done } = chunk.reach(batch, final)
      const lastUid = Math.max(this.#lastUid, upTo)
      const progressed = done !== this.#done
      const outcome = await this.o.ledger.commit(
        this.o.folder.uidValidity,
        batch.map((m, i) => ({ ...m, parsed: parsed[i]! })),
        lastUid,
        progressed ? this.#progressText(done) : null,
      )
      this.#lastUid = chunk.committedUpTo = lastUid
      for (const m of batch) chunk.committed.push(m.uid)
      this.#count(outcome)
      if (progressed) this.#progressed(done)
      if (batch.length) await this.o.afterBatch?.({ uids: batch.map((m) => m.uid), stored: outcome.stored })
    })
    this.#pending.push(
      this.#commits.catch((e: unknown) => {
        this.#commitError ??= e
      }),
    )
  }

  /** `\Seen` on the server, then seen_uid: the order that never counts as read what the server did not flag. */
  async #flag(uids: UidSet, upTo: number): Promise<void> {
    // A live session that refuses (a read-only folder) would refuse again: say so, and leave the flags.
    if (!(await this.o.folder.markSeen(uids))) this.o.log.warn({ uids }, 'the server did not set \\Seen (a read-only folder?); the messages stay unread there')
    await this.o.ledger.seen(this.o.folder.uidValidity, upTo)
  }

  #settled(): Promise<unknown> {
    return Promise.all([this.#commits.catch(() => undefined), this.#flags])
  }

  #count(outcome: BatchOutcome): void {
    const { result, log } = this.o
    result.stored += outcome.stored
    result.duplicates += outcome.duplicates
    result.parse_errors += outcome.keptRaw.length
    for (const m of outcome.keptRaw) log.warn({ uid: m.uid, message_id: m.id, cause: m.cause }, 'message kept raw: it could not be parsed')
  }

  #progressText(done: number): string {
    return `${done} of ${this.#total} new messages stored`
  }

  #progressed(done: number): void {
    this.#done = done
    if (Date.now() - this.#lastLogged <= PROGRESS_LOG_MS && done !== this.#total) return
    this.#lastLogged = Date.now()
    this.o.log.info({ done, total: this.#total }, this.#progressText(done))
  }
}
