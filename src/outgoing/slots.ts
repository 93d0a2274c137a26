import type { Kysely } from 'kysely'
import { type DB, isoIn, now } from '../db/index.ts'
import { MAX_CONNECTIONS_PER_MAILBOX } from './transport.ts'


/**
 * SMTP connection slots per outgoing server, leased in the database, so that every node together opens at most
 * 3 connections to one mailbox (Exchange answers a 4th with 432 4.3.2). A node takes the free or expired
 * slots while it has mail for the server, renews what it holds, and lets go when it has none; a node that
 * dies loses its slots when their leases run out.
 */
export class SmtpSlots {
  readonly #held = new Map<string, Set<number>>()
  #renewedAt = 0

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

  /**
   * Renew every held lease (at most every 10 s) and, for a server with mail due, take every free slot at once:
   * the pool is sized by the slots, and resizing it means replacing it.
   */
  async refresh(serverId: string, wantMore: boolean): Promise<number> {
    const held = this.#held.get(serverId) ?? new Set<number>()
    this.#held.set(serverId, held)
    if (Date.now() - this.#renewedAt > this.leaseMs / 3) await this.#renew()
    if (wantMore && held.size < MAX_CONNECTIONS_PER_MAILBOX) {
      const at = now()
      for (let slot = 0; slot < MAX_CONNECTIONS_PER_MAILBOX; slot++) {
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
    const r = await this.db.updateTable('smtp_slots').set({ lease_until: isoIn(this.leaseMs) }).where('holder', '=', this.holder).returning(['server_id', 'slot']).execute()
    // Whatever did not renew was taken over after our lease ran out (a long pause): forget it.
    const still = new Set(r.map((x) => `${x.server_id}:${x.slot}`))
    for (const [serverId, slots] of this.#held) for (const slot of slots) if (!still.has(`${serverId}:${slot}`)) slots.delete(slot)
  }

  /** Give a server's slots back (no mail for it, or the server paused). */
  async release(serverId: string): Promise<void> {
    if (!this.count(serverId)) return
    this.#held.delete(serverId)
    await this.db.deleteFrom('smtp_slots').where('server_id', '=', serverId).where('holder', '=', this.holder).execute()
  }

  async releaseAll(): Promise<void> {
    this.#held.clear()
    await this.db.deleteFrom('smtp_slots').where('holder', '=', this.holder).execute()
  }
}
