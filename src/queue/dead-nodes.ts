import { readlinkSync } from 'node:fs'
import { hostname } from 'node:os'
import type { Database } from '../db/index.ts'
import { isoIn, now } from '../db/index.ts'

/**
 * This machine as far as process ids go: its name and its process-id namespace (two containers on one host share
 * the name of neither a pid nor, usually, a hostname; the namespace tells them apart).
 */
export function machineOf(): string {
  let ns = ''
  try {
    ns = readlinkSync('/proc/self/ns/pid')
  } catch {
    /* not Linux: the host name alone */
  }
  return `${hostname()}${ns ? `/${ns}` : ''}`.slice(0, 255)
}

/** Whether a process of this machine is gone: ESRCH is the kernel's answer for no such process; EPERM means alive. */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return false
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

/**
 * The worker nodes that are dead: their heartbeat stopped `deadAfterMs` ago, or, where every node shares this
 * machine (SQLite, `traits.oneMachine`), their process no longer exists — a node started after `kill -9` knows at
 * once. A reused pid only makes a dead node look alive until its heartbeat runs out: the safe side.
 */
export async function deadNodes(database: Database, self: string, deadAfterMs: number): Promise<string[]> {
  const machine = machineOf()
  const rows = await database.db.selectFrom('worker_nodes').selectAll().where('id', '!=', self).execute()
  const stale = isoIn(-deadAfterMs)
  return rows
    .filter((n) => n.heartbeat_at < stale || (database.traits.oneMachine && n.host === machine && n.pid !== null && n.pid !== process.pid && processGone(n.pid)))
    .map((n) => n.id)
}

/**
 * Hand back everything a dead node held, at once rather than when each lease runs out: its mails go back to the
 * queue (still with their Message-ID; one that was on the wire when it died is sent again — at least once), its
 * webhook deliveries and incoming-server fetches become claimable, and its SMTP connection slots free. Idempotent:
 * two nodes may release the same dead one. Returns how many mails came back.
 */
export async function releaseNode(database: Database, node: string): Promise<{ mails: number; deliveries: number }> {
  return database.db.transaction().execute(async (tx) => {
    const at = now()
    const mails = await tx
      .updateTable('mails')
      .set({ state: 'outgoing', lease_owner: null, lease_until: null, updated_at: at })
      .where('state', '=', 'sending')
      .where('lease_owner', '=', node)
      .executeTakeFirst()
    const deliveries = await tx.updateTable('webhook_deliveries').set({ lease_owner: null, lease_until: null, updated_at: at }).where('lease_owner', '=', node).executeTakeFirst()
    await tx.updateTable('incoming_servers').set({ lease_owner: null, lease_until: null }).where('lease_owner', '=', node).execute()
    await tx.deleteFrom('smtp_slots').where('holder', '=', node).execute()
    await tx.deleteFrom('worker_nodes').where('id', '=', node).execute()
    return { mails: Number(mails.numUpdatedRows), deliveries: Number(deliveries.numUpdatedRows) }
  })
}
