import { randomBytes } from 'node:crypto'
import type { Database } from '../db/index.ts'
import { now } from '../db/index.ts'
import type { Logger } from '../log.ts'
import { PollLoop } from './poll-loop.ts'
import { deadNodes, machineOf, releaseNode } from './dead-nodes.ts'

/** A node's id: the lease owner of every mail, delivery, fetch and SMTP slot its background work holds. */
export const newNodeId = (): string => `n-${randomBytes(6).toString('hex')}`

/**
 * This node's heartbeat in `worker_nodes`, and the release of the nodes whose heartbeat stopped (queue/dead-nodes.ts):
 * beats every fifth of `deadAfterMs`, so a live node misses four beats before anyone gives its work away. The first
 * beat runs at start, so a node that replaces a killed one on SQLite takes its work back before its first claim.
 */
export class NodeHeartbeat {
  readonly #poll: PollLoop
  readonly #machine = machineOf()

  constructor(
    private readonly deps: {
      database: Database
      nodeId: string
      deadAfterMs: number
      log: Logger
      /** Work came back to the queues: look now. */
      onReleased: (r: { mails: number; deliveries: number }) => void
    },
  ) {
    this.#poll = new PollLoop({ pass: () => this.beat(), pollMs: Math.max(10, Math.round(deps.deadAfterMs / 5)), log: deps.log, what: 'node heartbeat' })
  }

  get nodeId(): string {
    return this.deps.nodeId
  }

  start(): void {
    this.#poll.start()
  }

  /** One beat: say this node is alive, then hand back what dead nodes held. */
  async beat(): Promise<void> {
    const { db } = this.deps.database
    const at = now()
    await db
      .insertInto('worker_nodes')
      .values({ id: this.deps.nodeId, started_at: at, heartbeat_at: at, pid: process.pid, host: this.#machine })
      .onConflict((oc) => oc.column('id').doUpdateSet({ heartbeat_at: at, pid: process.pid, host: this.#machine }))
      .execute()
    for (const node of await deadNodes(this.deps.database, this.deps.nodeId, this.deps.deadAfterMs)) {
      const r = await releaseNode(this.deps.database, node)
      this.deps.log.warn({ node, ...r }, 'a worker node stopped; its mails, deliveries, fetches and SMTP slots were handed back')
      if (r.mails || r.deliveries) this.deps.onReleased(r)
    }
  }

  /** Stop beating and leave: a node that stops cleanly is not mistaken for a dead one. */
  async stop(): Promise<void> {
    if (!this.#poll.started) return
    await this.#poll.stop()
    await this.deps.database.db.deleteFrom('worker_nodes').where('id', '=', this.deps.nodeId).execute()
  }
}
