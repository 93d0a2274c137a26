import { parentPort, workerData } from 'node:worker_threads'
import { boot } from './boot.ts'
import { counters } from './metrics.ts'
import { startBackground, stopBackground } from './roles.ts'

// The background half of a `serve --role all` node (see roles.ts): same config, its own database connection,
// whose writes are all redone if a power loss undoes them (db/index.ts).
const { services } = await boot(undefined, undefined, { redoable: true, nodeId: (workerData as { nodeId?: string } | null)?.nodeId })
startBackground(services)
parentPort!.on('message', async (m: string | { metrics: number }) => {
  // The web thread serves /metrics: it asks for this thread's counters at each scrape.
  if (typeof m === 'object') parentPort!.postMessage({ metrics: m.metrics, snapshot: await counters.getMetricsAsJSON() })
  if (m === 'queued') services.mails.events.emit('queued')
  if (m === 'deliveries') services.deliveriesWritten.raiseHere()
  if (m === 'stop') {
    await stopBackground(services)
    await services.database.close()
    // In a worker thread, exit ends this thread only.
    process.exit(0)
  }
})
parentPort!.postMessage('ready')
