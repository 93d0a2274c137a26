import { type Kysely, sql } from 'kysely'
import type { DB } from '../db/index.ts'
import type { IncomingServerRow, MailState, OutgoingServerRow } from '../db/schema.ts'
import { providerFor } from '../oauth/providers.ts'
import { type TokenHealth, tokenView, type TokenView } from '../oauth/token-view.ts'
import type { HourlyCounts } from './hourly.ts'

export interface OutgoingSide {
  id: string
  name: string
  authentication: string
  /** Null for a server that uses no OAuth. */
  token: TokenView | null
  paused_until: string | null
  pause_reason: string | null
  last_sent_at: string | null
}

export interface IncomingSide {
  id: string
  name: string
  authentication: string
  token: TokenView | null
  state: IncomingServerRow['state']
  last_fetch_at: string | null
  last_fetch_ok_at: string | null
  last_error: string | null
  /** A running fetch: how many of its new messages are stored. */
  sync: { done: number; total: number } | null
}

/** One mailbox (a username) with its outgoing and incoming servers and what the console shows of them. */
export interface MailboxOverview {
  mailbox: string
  outgoing: OutgoingSide[]
  incoming: IncomingSide[]
  /** Mails queued or being sent, failed (exception), bounced. */
  waiting: number
  failed: number
  bounced: number
  /** Attempts that did not deliver, over the last 24 hours. */
  failures_24h: number
}

/** "1200 of 5000 new messages stored" (incoming/fetcher.ts) → the bar's numbers. */
export function syncOf(progress: string | null): { done: number; total: number } | null {
  const m = progress ? /^(\d+) of (\d+)/.exec(progress) : null
  return m ? { done: Number(m[1]), total: Number(m[2]) } : null
}

const tokenOf = (credentials: Map<string, TokenHealth>, s: { authentication: string; username: string }): TokenView | null => {
  const p = providerFor(s.authentication)
  return p ? tokenView(p, credentials.get(`${p.id}:${s.username.toLowerCase()}`)) : null
}

/**
 * Every mailbox of the install, grouped by username, from one query per table (the servers with each one's newest
 * sent mail, the credentials, the mails' states) and the hourly counts: never a query per mailbox. `mailbox`: only
 * that one.
 */
export async function mailboxOverview(db: Kysely<DB>, hourly: HourlyCounts, o: { mailbox?: string } = {}): Promise<MailboxOverview[]> {
  const only = o.mailbox?.toLowerCase()
  const [outgoing, incoming, credentials, states] = await Promise.all([
    db
      .selectFrom('outgoing_servers as s')
      .select(['s.id', 's.name', 's.authentication', 's.username', 's.paused_until', 's.pause_reason'])
      // A correlated max per server is one index seek each (mails_sent), not a scan of every mail ever sent.
      .select((eb) => eb.selectFrom('mails').select((m) => m.fn.max('mails.sent_at').as('at')).whereRef('mails.server_id', '=', 's.id').as('last_sent_at'))
      .$if(only !== undefined, (q) => q.where(sql<string>`lower(s.username)`, '=', only!))
      .orderBy('s.username')
      .execute() as Promise<Array<Pick<OutgoingServerRow, 'id' | 'name' | 'authentication' | 'username' | 'paused_until' | 'pause_reason'> & { last_sent_at: string | null }>>,
    db
      .selectFrom('incoming_servers')
      .select(['id', 'name', 'authentication', 'username', 'state', 'last_fetch_at', 'last_fetch_ok_at', 'last_error', 'sync_progress'])
      .$if(only !== undefined, (q) => q.where(sql<string>`lower(username)`, '=', only!))
      .execute(),
    // The badge needs to know whether tokens exist, never the sealed tokens themselves: they are not read at all.
    db
      .selectFrom('credentials')
      .select(['provider', 'mailbox', 'access_expires_at', 'last_error', 'last_error_code'])
      .select([
        sql<string | null>`case when refresh_token is null then null else 'present' end`.as('refresh_token'),
        sql<string | null>`case when access_token is null then null else 'present' end`.as('access_token'),
      ])
      .$if(only !== undefined, (q) => q.where('mailbox', '=', only!))
      .execute(),
    db
      .selectFrom('mails')
      .select(['server_id', 'state', (eb) => eb.fn.countAll().as('n')])
      .where('state', 'in', ['outgoing', 'sending', 'exception', 'bounced'] satisfies MailState[])
      .$if(only !== undefined, (q) => q.where('server_id', 'in', db.selectFrom('outgoing_servers').select('id').where(sql<string>`lower(username)`, '=', only!)))
      .groupBy(['server_id', 'state'])
      .execute(),
  ])
  const byCredential = new Map(credentials.map((c) => [`${c.provider}:${c.mailbox}`, c]))
  const boxes = new Map<string, MailboxOverview>()
  const box = (username: string) => {
    const key = username.toLowerCase()
    return boxes.get(key) ?? boxes.set(key, { mailbox: key, outgoing: [], incoming: [], waiting: 0, failed: 0, bounced: 0, failures_24h: 0 }).get(key)!
  }
  const serverBox = new Map<string, MailboxOverview>()
  for (const s of outgoing) {
    const b = box(s.username)
    serverBox.set(s.id, b)
    b.outgoing.push({ id: s.id, name: s.name, authentication: s.authentication, token: tokenOf(byCredential, s), paused_until: s.paused_until, pause_reason: s.pause_reason, last_sent_at: s.last_sent_at ?? null })
    b.failures_24h += hourly.byServer.get(s.id)?.failed.reduce((a, n) => a + n, 0) ?? 0
  }
  for (const s of incoming) {
    box(s.username).incoming.push({
      id: s.id,
      name: s.name,
      authentication: s.authentication,
      token: tokenOf(byCredential, s),
      state: s.state,
      last_fetch_at: s.last_fetch_at,
      last_fetch_ok_at: s.last_fetch_ok_at,
      last_error: s.last_error,
      sync: syncOf(s.sync_progress),
    })
  }
  for (const r of states) {
    const b = serverBox.get(r.server_id)
    if (!b) continue
    const n = Number(r.n)
    if (r.state === 'exception') b.failed += n
    else if (r.state === 'bounced') b.bounced += n
    else b.waiting += n
  }
  return [...boxes.values()].sort((a, b) => a.mailbox.localeCompare(b.mailbox))
}

/** The fetches running now and how far each is. */
export async function syncsRunning(db: Kysely<DB>): Promise<Array<{ id: string; done: number; total: number }>> {
  const rows = await db.selectFrom('incoming_servers').select(['id', 'sync_progress']).where('sync_progress', 'is not', null).execute()
  return rows.flatMap((r) => {
    const s = syncOf(r.sync_progress)
    return s ? [{ id: r.id, ...s }] : []
  })
}
