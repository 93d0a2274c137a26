import type { Kysely } from 'kysely'
import { type DB, isoIn, now } from '../db/index.ts'
import type { OutgoingServerRow } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import type { ClaimedMail } from './claimed-mail.ts'

/**
 * Servers that must rest (an Exchange lock-out, AUTH refused, SMTP AUTH disabled) for `pauseMs`. The pause is
 * written on the server (`paused_until`, `pause_reason`), which the next claims respect; mails this node claimed
 * before it saw the pause are held back here, unattempted, and its connections to the server close at once
 * (`onPause`), so no more mails reach a mailbox Exchange is throttling.
 */
export class ServerPauses {
  /** When this node saw each server pause, and until when. */
  readonly #here = new Map<string, { at: number; until: number }>()

  constructor(private readonly deps: { db: Kysely<DB>; log: Logger; pauseMs: number; onPause: (serverId: string) => void }) {}

  /** For a mail claimed before this node saw its server pause: when it may be tried (ISO); otherwise nothing. */
  heldBack(serverId: string, mail: Pick<ClaimedMail, 'last_attempt_at' | 'created_at'>): string | undefined {
    const p = this.#here.get(serverId)
    if (!p || p.until <= Date.now() || Date.parse(mail.last_attempt_at ?? mail.created_at) > p.at) return undefined
    return new Date(p.until).toISOString()
  }

  /** Pause a server here at once, and in the database unless it already is; true when this call paused it. */
  async pause(server: Pick<OutgoingServerRow, 'id' | 'username'>, reason: string): Promise<boolean> {
    this.#here.set(server.id, { at: Date.now(), until: Date.now() + this.deps.pauseMs })
    this.deps.onPause(server.id)
    const r = await this.deps.db
      .updateTable('outgoing_servers')
      .set({ paused_until: isoIn(this.deps.pauseMs), pause_reason: reason })
      .where('id', '=', server.id)
      .where((eb) => eb.or([eb('paused_until', 'is', null), eb('paused_until', '<', now())]))
      .executeTakeFirst()
    if (r.numUpdatedRows > 0n) this.deps.log.warn({ server_id: server.id, mailbox: server.username, cause: reason }, 'outgoing server paused')
    return r.numUpdatedRows > 0n
  }
}
