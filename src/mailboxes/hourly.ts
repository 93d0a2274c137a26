import { type Kysely, sql } from 'kysely'
import type { DB } from '../db/index.ts'

export const HOURS = 24

/** Per hour over the last 24 (oldest first): mails sent, attempts that did not deliver, messages received. */
export interface Hourly {
  sent: number[]
  failed: number[]
  received: number[]
}

export interface HourlyCounts {
  /** The hours' starts, ISO 8601 UTC, oldest first; the last one is the current hour. */
  hours: string[]
  /** Each server's counts (outgoing servers: sent and failed; incoming servers: received). */
  byServer: Map<string, Hourly>
}

const empty = (): Hourly => ({ sent: Array(HOURS).fill(0), failed: Array(HOURS).fill(0), received: Array(HOURS).fill(0) })

/** The 24 hour starts ending with the current hour. */
export function lastHours(at = Date.now()): string[] {
  const current = Math.floor(at / 3_600_000) * 3_600_000
  return Array.from({ length: HOURS }, (_, i) => new Date(current - (HOURS - 1 - i) * 3_600_000).toISOString())
}

// 'YYYY-MM-DDTHH' of an ISO timestamp: the same text function on both dialects, so the grouping happens in SQL.
const hourOf = (column: string) => sql<string>`substr(${sql.ref(column)}, 1, 13)`

/**
 * Two grouped queries for every server at once (attempts by server, hour and outcome; messages by server and
 * hour), never one per server: the home page shows a thousand mailboxes.
 */
export async function hourlyCounts(db: Kysely<DB>, at = Date.now()): Promise<HourlyCounts> {
  const hours = lastHours(at)
  const since = hours[0]!
  const index = new Map(hours.map((h, i) => [h.slice(0, 13), i]))
  const [attempts, received] = await Promise.all([
    db
      .selectFrom('mail_attempts')
      .select(['server_id', 'outcome', hourOf('at').as('hour'), (eb) => eb.fn.countAll().as('n')])
      .where('at', '>=', since)
      .groupBy(['server_id', 'outcome', hourOf('at')])
      .execute(),
    db
      .selectFrom('messages')
      .select(['server_id', hourOf('received_at').as('hour'), (eb) => eb.fn.countAll().as('n')])
      .where('received_at', '>=', since)
      .groupBy(['server_id', hourOf('received_at')])
      .execute(),
  ])
  const byServer = new Map<string, Hourly>()
  const of = (id: string) => byServer.get(id) ?? byServer.set(id, empty()).get(id)!
  for (const r of attempts) {
    const i = index.get(r.hour)
    if (i !== undefined) of(r.server_id)[r.outcome === 'sent' ? 'sent' : 'failed'][i]! += Number(r.n)
  }
  for (const r of received) {
    const i = index.get(r.hour)
    if (i !== undefined) of(r.server_id).received[i]! += Number(r.n)
  }
  return { hours, byServer }
}

/** The sum of these servers' counts (all servers when none are named). */
export function sumOf(counts: HourlyCounts, serverIds?: readonly string[]): Hourly {
  const total = empty()
  for (const [id, h] of counts.byServer) {
    if (serverIds && !serverIds.includes(id)) continue
    for (let i = 0; i < HOURS; i++) {
      total.sent[i]! += h.sent[i]!
      total.failed[i]! += h.failed[i]!
      total.received[i]! += h.received[i]!
    }
  }
  return total
}
