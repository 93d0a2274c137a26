import type { Migration } from 'kysely'
import * as m0001 from './0001-spine.ts'
import * as m0002 from './0002-mail.ts'
import * as m0003 from './0003-incoming.ts'
import * as m0004 from './0004-webhooks.ts'
import * as m0005 from './0005-relay.ts'
import * as m0006 from './0006-admin-sessions.ts'
import * as m0007 from './0007-smtp-slots.ts'
import * as m0008 from './0008-providers.ts'
import * as m0010 from './0010-message-seq.ts'
import * as m0011 from './0011-large-values.ts'
import * as m0012 from './0012-fetch-ok.ts'
import * as m0015 from './0015-node-liveness.ts'
import * as m0016 from './0016-api-token-scopes.ts'
import * as m0017 from './0017-audit-log.ts'
import * as m0018 from './0018-bounces.ts'
import * as m0020 from './0020-mail-attempts.ts'

/** Every migration, by name; they run in name order (kysely's Migrator sorts them). */
export const migrations: Record<string, Migration> = {
  '0001-spine': m0001,
  '0002-mail': m0002,
  '0003-incoming': m0003,
  '0004-webhooks': m0004,
  '0005-relay': m0005,
  '0006-admin-sessions': m0006,
  '0007-smtp-slots': m0007,
  '0008-providers': m0008,
  '0010-message-seq': m0010,
  '0011-large-values': m0011,
  '0012-fetch-ok': m0012,
  '0015-node-liveness': m0015,
  '0016-api-token-scopes': m0016,
  '0017-audit-log': m0017,
  '0018-bounces': m0018,
  '0020-mail-attempts': m0020,
}
