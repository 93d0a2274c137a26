import type { Config } from './config.ts'
import { SecretBox } from './crypto/secret-box.ts'
import type { Database } from './db/index.ts'
import { TrustedHosts } from './host-policy.ts'
import type { Logger } from './log.ts'
import { ConnectService } from './oauth/connect.ts'
import { CredentialService } from './oauth/credentials.ts'
import { DeviceCodes } from './oauth/device-code.ts'
import { MailService } from './outgoing/mail-service.ts'
import { OutgoingServerService } from './outgoing/service.ts'
import { MailWorker } from './outgoing/worker.ts'
import { RelayUserService } from './relay/users.ts'
import { SettingsService } from './settings/service.ts'
import { AdminSessionService } from './access/admin-sessions.ts'
import { Fetcher, IncomingScheduler } from './incoming/fetcher.ts'
import { MessageService } from './incoming/messages.ts'
import { ParsePool } from './incoming/parse.ts'
import { IncomingServerService } from './incoming/service.ts'
import { WebhookDispatcher } from './webhooks/dispatcher.ts'
import { WebhookService } from './webhooks/service.ts'
import { ApiTokenService } from './access/api-tokens.ts'
import { NodeHeartbeat, newNodeId } from './queue/heartbeat.ts'
import type { WebServices } from './web/web-services.ts'
import { Wakeup } from './queue/wakeup.ts'

/**
 * Every use case, wired once; `serve`, `worker` and the tests build the same graph. What the HTTP app serves
 * (web/web-services.ts), and the background work beside it.
 */
export interface Services extends WebServices {
  database: Database
  box: SecretBox
  mailWorker: MailWorker
  /** mailparser, inline or on worker threads (shared by every Fetcher of this process). */
  parser: ParsePool
  scheduler: IncomingScheduler
  dispatcher: WebhookDispatcher
  /** Raised when webhook deliveries are written. */
  deliveriesWritten: Wakeup
  /** This node's liveness, and the release of dead nodes' work (runs with the background work). */
  heartbeat: NodeHeartbeat
  /** The device code sign-ins being polled (runs with the background work; any node polls any code, under a lease). */
  deviceCodes: DeviceCodes
}

export function createServices(config: Config, database: Database, log: Logger, keys: Buffer[], nodeId = newNodeId()): Services {
  const { db } = database
  const box = new SecretBox(keys)
  const trustedHosts = new TrustedHosts(config.trustedHosts)
  const settings = new SettingsService(db, box, trustedHosts)
  const credentials = new CredentialService({ db, box, settings, log, refreshMarginSeconds: config.refreshMarginSeconds, tokenTimeoutMs: config.tokenTimeoutMs, trustedHosts })
  const deviceCodes = new DeviceCodes({ db, box, credentials, log: log.child({ part: 'device-codes' }), nodeId })
  const connect = new ConnectService({ db, box, credentials, config, log, deviceCodes })
  const outgoingServers = new OutgoingServerService({ db, box, credentials, connect, log, trustedHosts })
  const apiTokens = new ApiTokenService(db)
  const mails = new MailService({ db, settings, servers: outgoingServers, log, maxBytes: config.maxMailBytes })
  const relayUsers = new RelayUserService(db)
  const adminSessions = new AdminSessionService({ db, settings, log: log.child({ part: 'admin' }) })
  const deliveriesWritten = new Wakeup(database, 'deliveries')
  const webhooks = new WebhookService({ db, box, log, wakeup: deliveriesWritten, trustedHosts })
  const dispatcher = new WebhookDispatcher({ database, box, log: log.child({ part: 'webhooks' }), config: config.webhooks, wakeup: deliveriesWritten, nodeId, trustedHosts })
  const mailWorker = new MailWorker({ database, box, credentials, settings, mails, log: log.child({ part: 'mail-worker' }), queue: config.queue, webhooks, nodeId })
  const heartbeat = new NodeHeartbeat({
    database,
    nodeId,
    deadAfterMs: config.queue.nodeDeadMs,
    log: log.child({ part: 'heartbeat' }),
    onReleased: () => {
      mails.events.emit('queued')
      dispatcher.wake()
    },
  })
  const incomingServers = new IncomingServerService({ db, credentials, connect, log, trustedHosts })
  const parser = new ParsePool(config.fetch.parseThreads)
  const fetcher = new Fetcher({ database, credentials, servers: incomingServers, webhooks, parser, log: log.child({ part: 'fetcher' }), config: config.fetch, nodeId })
  const scheduler = new IncomingScheduler({ database, fetcher, log: log.child({ part: 'fetcher' }), config: config.fetch })
  const messages = new MessageService({ db })
  return { config, database, log, box, settings, credentials, connect, outgoingServers, apiTokens, mails, mailWorker, relayUsers, adminSessions, incomingServers, fetcher, scheduler, messages, webhooks, dispatcher, parser, deliveriesWritten, heartbeat, deviceCodes }
}
