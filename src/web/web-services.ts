import type { AdminSessionService } from '../access/admin-sessions.ts'
import type { ApiTokenService } from '../access/api-tokens.ts'
import type { AuditLog } from '../access/audit-log.ts'
import type { Config } from '../config.ts'
import type { Database } from '../db/index.ts'
import type { Fetcher } from '../incoming/fetcher.ts'
import type { MessageService } from '../incoming/messages.ts'
import type { IncomingServerService } from '../incoming/service.ts'
import type { Logger } from '../log.ts'
import type { ConnectService } from '../oauth/connect.ts'
import type { CredentialService } from '../oauth/credentials.ts'
import type { MailService } from '../outgoing/mail-service.ts'
import type { OutgoingServerService } from '../outgoing/service.ts'
import type { RelayUserService } from '../relay/users.ts'
import type { SettingsService } from '../settings/service.ts'
import type { WebhookService } from '../webhooks/service.ts'

/**
 * The use cases the HTTP app and the admin UI serve. The composition root (src/services.ts) satisfies this
 * structurally, so web/ depends on the features it serves and never on the root that wires them with the
 * background work (queue worker, scheduler, dispatcher).
 */
export interface WebServices {
  config: Config
  database: Pick<Database, 'db'>
  log: Logger
  settings: SettingsService
  credentials: CredentialService
  connect: ConnectService
  outgoingServers: OutgoingServerService
  apiTokens: ApiTokenService
  auditLog: AuditLog
  mails: MailService
  relayUsers: RelayUserService
  adminSessions: AdminSessionService
  incomingServers: IncomingServerService
  fetcher: Fetcher
  messages: MessageService
  webhooks: WebhookService
}
