import type { FetchConfig } from '../config.ts'
import { type Database, now } from '../db/index.ts'
import type { Logger } from '../log.ts'
import { PollLoop } from '../queue/poll-loop.ts'
import type { Fetcher } from './fetcher.ts'

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
  /** The last state check started: checks run one after another, so fetches start in the queue's order. */
  #checked: Promise<unknown> = Promise.resolve()

  constructor(private readonly deps: { database: Database; fetcher: Pick<Fetcher, 'fetch' | 'busy' | 'stop'>; log: Logger; config: FetchConfig }) {
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
    const check = this.#checked.then(() => this.deps.database.db.selectFrom('incoming_servers').select('state').where('id', '=', id).executeTakeFirst())
    this.#checked = check.catch(() => undefined)
    const row = await check
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
