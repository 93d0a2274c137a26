import { fileURLToPath } from 'node:url'
import { Worker, isMainThread, parentPort } from 'node:worker_threads'
import { addCounterSource } from './metrics.ts'
import { threadEntry, threadExecArgv } from './thread-entry.ts'
import type { Services } from './services.ts'

export type Role = 'web' | 'worker' | 'all'

/** Background work of one node: the mail queue today; fetching and webhooks join it here. */
export interface Background {
  /** A mail was queued on this node: look now instead of at the next poll. */
  nudge(): void
  stop(): Promise<void>
}

/** Start the background loops of a node: the heartbeat first, so a dead predecessor's work comes back at once. */
export function startBackground(s: Services): void {
  s.heartbeat.start()
  s.mailWorker.start()
  s.scheduler.start()
  void s.dispatcher.start()
  s.deviceCodes.start()
}

export async function stopBackground(s: Services): Promise<void> {
  await Promise.all([s.mailWorker.stop(), s.scheduler.stop(), s.dispatcher.stop(), s.deviceCodes.stop()])
  await s.heartbeat.stop()
}

/** Run the background work on this thread (role `worker`, and tests). */
export function runInline(s: Services): Background {
  startBackground(s)
  return {
    nudge: () => s.mails.events.emit('queued'),
    stop: () => stopBackground(s),
  }
}

/**
 * Run the background work on a worker thread with its own database connection (role `all`): a burst of API
 * requests cannot starve SMTP conversations that need many round trips, and the second core gets used.
 */
export async function runInThread(s: Services): Promise<Background> {
  // One node id for both threads: the web thread's Fetch Now leases are this node's, released with the rest if it dies.
  const worker = new Worker(fileURLToPath(threadEntry('worker-thread', import.meta.url)), { execArgv: threadExecArgv(), workerData: { nodeId: s.heartbeat.nodeId } })
  const ready = new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve())
    worker.once('error', reject)
  })
  worker.on('error', (e) => s.log.fatal({ err: e }, 'the background thread died'))
  // Serve only once the queue runs: a node that answers /healthz does its whole job.
  await ready
  // One nudge per 20 ms at most: a burst of accepted mails needs one look at the queue, not one per mail.
  let pending: NodeJS.Timeout | undefined
  const nudge = () => {
    pending ??= setTimeout(() => {
      pending = undefined
      worker.postMessage('queued')
    }, 20)
  }
  s.mails.events.on('queued', nudge)
  // Deliveries written here (Fetch Now, token.invalid): the dispatcher runs on the other thread. PostgreSQL's NOTIFY
  // reaches it anyway; on SQLite this is the wake-up.
  const stopRelay = s.deliveriesWritten.onLocal(() => worker.postMessage('deliveries'))
  let asked = 0
  const removeSource = addCounterSource(
    () =>
      new Promise((resolve, reject) => {
        const seq = ++asked
        const answer = (m: { metrics?: number; snapshot?: never }) => {
          if (m.metrics !== seq) return
          worker.off('message', answer)
          clearTimeout(timer)
          resolve(m.snapshot!)
        }
        // A scrape must not hang on a busy or dead thread: its counters are then left out of this one.
        const timer = setTimeout(() => {
          worker.off('message', answer)
          reject(new Error('the background thread did not answer'))
        }, 2000)
        worker.on('message', answer)
        worker.postMessage({ metrics: seq })
      }),
  )
  return {
    nudge,
    stop: async () => {
      removeSource()
      stopRelay()
      await ready.catch(() => undefined)
      clearTimeout(pending)
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
      worker.postMessage('stop')
      await exited
    },
  }
}

export const inWorkerThread = (): boolean => !isMainThread && parentPort !== null
