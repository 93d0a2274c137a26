import type { Kysely } from 'kysely'
import { type DB, isoIn, now } from '../db/index.ts'
import { MAX_CONNECTIONS_PER_MAILBOX } from './transport.ts'


/**
 * SMTP connection slots per outgoing server, leased in the database, so that every node together opens at most
 * 3 connections to one mailbox (Exchange answers a 4th with 432 4.3.2). A node takes up to its fair share of the
 * free or expired slots (3 ÷ live worker nodes, rounded up) while it has mail for the server, renews what it
 * holds, gives back what exceeds its share when other nodes join, and lets go when it has no mail; a node that
 * dies loses its slots when their leases run out.
 */
/** Long enough for a closed pool's connection to finish its message and QUIT, even on a busy machine. */
const RELEASE_DELAY_MS = 10_000

export class SmtpSlots {
  readonly #held = new Map<string, Set<number>>()
  #renewedAt = 0
  #liveNodes = 1

  /** @param leaseMs how long a slot outlives a node that stopped renewing it; renewed every third of that. */
  constructor(
    private readonly db: Kysely<DB>,
    private readonly holder: string,
    private readonly leaseMs = 30_000,
  ) {}

  /** How many connections this node may open to the server now. */
  count(serverId: string): number {
    return this.#held.get(serverId)?.size ?? 0
  }

  /** The slots this node holds for a server: one connection each. */
  held(serverId: string): number[] {
    return [...(this.#held.get(serverId) ?? [])]
  }

  /**
   * Renew every held lease (at most every 10 s) and, for a server with mail due, take every free slot at once:
   * the pool is sized by the slots, and resizing it means replacing it.
   */
  async refresh(serverId: string, wantMore: boolean): Promise<number> {
    const held = this.#held.get(serverId) ?? new Set<number>()
    this.#held.set(serverId, held)
    if (Date.now() - this.#renewedAt > this.leaseMs / 3) await this.#renew()
    const share = Math.ceil(MAX_CONNECTIONS_PER_MAILBOX / this.#liveNodes)
    if (held.size > share) {
      const extra = [...held].slice(share)
      for (const slot of extra) held.delete(slot)
      this.#releaseLater(serverId, extra)
    }
    if (wantMore && held.size < share) {
      const at = now()
      for (let slot = 0; slot < MAX_CONNECTIONS_PER_MAILBOX && held.size < share; slot++) {
        if (held.has(slot)) continue
        // Take the slot if nobody has it or its lease ran out; the conditional upsert is atomic in both dialects.
        const r = await this.db
          .insertInto('smtp_slots')
          .values({ server_id: serverId, slot, holder: this.holder, lease_until: isoIn(this.leaseMs) })
          .onConflict((oc) =>
            oc
              .columns(['server_id', 'slot'])
              .doUpdateSet({ holder: this.holder, lease_until: isoIn(this.leaseMs) })
              .where((eb) => eb.or([eb('smtp_slots.lease_until', '<', at), eb('smtp_slots.holder', '=', this.holder)])),
          )
          .executeTakeFirst()
        if (Number(r.numInsertedOrUpdatedRows ?? 0n) > 0) held.add(slot)
      }
    }
    return held.size
  }

  async #renew(): Promise<void> {
    this.#renewedAt = Date.now()
    // The heartbeat that tells the other nodes this one is alive, and the count of live nodes for the share.
    const at = now()
    await this.db
      .insertInto('worker_nodes')
      .values({ id: this.holder, started_at: at, heartbeat_at: at })
      .onConflict((oc) => oc.column('id').doUpdateSet({ heartbeat_at: at }))
      .execute()
    await this.db.deleteFrom('worker_nodes').where('heartbeat_at', '<', isoIn(-3 * this.leaseMs)).execute()
    const live = await this.db
      .selectFrom('worker_nodes')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('heartbeat_at', '>', isoIn(-this.leaseMs))
      .executeTakeFirstOrThrow()
    this.#liveNodes = Math.max(1, Number(live.n))
    const r = await this.db.updateTable('smtp_slots').set({ lease_until: isoIn(this.leaseMs) }).where('holder', '=', this.holder).returning(['server_id', 'slot']).execute()
    // Whatever did not renew was taken over after our lease ran out (a long pause): forget it.
    const still = new Set(r.map((x) => `${x.server_id}:${x.slot}`))
    for (const [serverId, slots] of this.#held) for (const slot of slots) if (!still.has(`${serverId}:${slot}`)) slots.delete(slot)
  }

  /** Give a server's slots back (no mail for it, or the server paused), once its connections had time to close. */
  release(serverId: string): void {
    const slots = [...(this.#held.get(serverId) ?? [])]
    if (slots.length === 0) return
    this.#held.delete(serverId)
    this.#releaseLater(serverId, slots)
  }

  /**
   * The pool that used these slots is being replaced or closed; its connections end after their current message
   * (QUIT included). Keep the rows (and renew them) 10 seconds more, so another node cannot open a 4th
   * connection while ours are still closing.
   */
  #releaseLater(serverId: string, slots: number[]): void {
    const timer = setTimeout(() => {
      const still = this.#held.get(serverId)
      const free = slots.filter((s) => !still?.has(s))
      if (free.length === 0) return
      this.db
        .deleteFrom('smtp_slots')
        .where('server_id', '=', serverId)
        .where('holder', '=', this.holder)
        .where('slot', 'in', free)
        .execute()
        .catch(() => undefined) // the lease runs out on its own
    }, RELEASE_DELAY_MS)
    timer.unref()
  }

  async releaseAll(): Promise<void> {
    this.#held.clear()
    await this.db.deleteFrom('smtp_slots').where('holder', '=', this.holder).execute()
    await this.db.deleteFrom('worker_nodes').where('id', '=', this.holder).execute()
  }
}
