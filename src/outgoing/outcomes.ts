import { EventEmitter } from 'node:events'
import type { QueueConfig } from '../config.ts'
import { GroupCommit } from '../db/group-commit.ts'
import { type Database, isoIn, now } from '../db/index.ts'
import type { MailRow, OutgoingServerRow } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import { queueSeconds } from '../metrics.ts'
import { ProviderError } from '../oauth/protocol.ts'
import { backoffMs } from '../queue/backoff.ts'
import { mailOutcome, tokenInvalid, type MailOutcome } from '../webhooks/events.ts'
import type { WebhookService } from '../webhooks/service.ts'
import type { ClaimedMail } from './claimed-mail.ts'
import type { Verdict } from './mail-transport.ts'
import type { ServerPauses } from './pauses.ts'

type Change = Partial<Pick<MailRow, 'state' | 'smtp_response' | 'sent_at' | 'failure_type' | 'failure_reason' | 'next_attempt_at'>>

interface Outcome {
  mail: ClaimedMail
  set: Change
  countAttempt: boolean
}

/**
 * A waiting mail says why when the reason changes; the same reason at each retry (every minute for a dead token)
 * goes to debug, or one broken mailbox fills the log. The reason stored with the mail is the last one logged.
 */
const sameReason = (mail: Pick<MailRow, 'failure_reason'>, reason: string): boolean => mail.failure_reason === reason

/**
 * What became of each mail a worker claimed, written under its lease: sent, deferred with backoff, waiting (for a
 * pause or a token) or failed (`exception`), with the webhook events `mail.sent`, `mail.failed` and
 * `token.invalid` (webhooks/events.ts). `events` carries the same events in process.
 */
export class MailOutcomes {
  readonly events = new EventEmitter()
  /** Mailboxes whose dead token this process already announced (token.invalid): once until it works again. */
  readonly #announced = new Set<string>()

  constructor(
    private readonly deps: {
      database: Database
      /** The lease owner: an outcome is written only while the mail is still this worker's. */
      owner: string
      queue: QueueConfig
      pauses: ServerPauses
      webhooks?: WebhookService
    },
  ) {}

  async sent(server: OutgoingServerRow, mail: ClaimedMail, response: string, log: Logger): Promise<void> {
    queueSeconds.observe((Date.now() - Date.parse(mail.created_at)) / 1000)
    await this.#finish(mail, { state: 'sent', smtp_response: response, sent_at: now() })
    this.#announced.delete(server.username.toLowerCase())
    log.debug({ response }, 'mail sent')
  }

  /** Not attempted (its server paused here, no connection slot held): due again at `until`, no attempt spent. */
  waits(mail: ClaimedMail, until: string): Promise<void> {
    return this.#finish(mail, { state: 'outgoing', next_attempt_at: until }, false)
  }

  async failed(server: OutgoingServerRow, mail: ClaimedMail, v: Verdict, log: Logger): Promise<void> {
    const attempts = mail.attempts + 1
    if ((v.kind === 'transient' || v.kind === 'closed') && attempts < this.deps.queue.maxAttempts) {
      const wait = backoffMs(attempts, this.deps.queue)
      log[sameReason(mail, v.reason) ? 'debug' : 'info']({ attempts, retry_in_s: Math.round(wait / 1000), cause: v.reason }, 'mail deferred')
      return this.#finish(mail, { state: 'outgoing', next_attempt_at: isoIn(wait), failure_reason: v.reason, smtp_response: v.response ?? null })
    }
    if (v.kind === 'pause' || v.kind === 'refused') {
      // Exchange blocks a mailbox that keeps failing; stop this server before we make it worse.
      const paused = await this.deps.pauses.pause(server, v.reason)
      const until = isoIn(this.deps.queue.pauseMs)
      if (v.kind === 'pause' && v.mail === 'waits') {
        // It never reached the mailbox (SMTP AUTH is off): it goes out once someone enables it, after the pause.
        log[sameReason(mail, v.reason) ? 'debug' : 'warn']({ cause: v.reason }, 'mail waits: its server is paused')
        return this.#finish(mail, { state: 'outgoing', next_attempt_at: until, failure_reason: v.reason, smtp_response: v.response ?? null }, false)
      }
      // Another mail already failed AUTH and paused the server: this one waits for the pause, it did nothing wrong.
      if (!paused && v.kind === 'refused') return this.#finish(mail, { state: 'outgoing', next_attempt_at: until }, false)
    }
    const reason = v.kind === 'transient' || v.kind === 'closed' ? `${v.reason} (gave up after ${attempts} attempts)` : v.reason
    log.warn({ failure_type: v.failureType, cause: reason }, 'mail failed')
    await this.#finish(mail, { state: 'exception', failure_type: v.failureType, failure_reason: reason, smtp_response: v.response ?? null })
  }

  /** No usable token: the mail waits (no attempt spent), and a dead one is announced once per mailbox. */
  async tokenProblem(server: OutgoingServerRow, mail: ClaimedMail, e: Error, log: Logger): Promise<void> {
    const { queue, webhooks, database } = this.deps
    const transient = e instanceof ProviderError && e.transient
    const waited = Date.now() - Date.parse(mail.created_at)
    if (!transient && waited > queue.tokenWaitMs) {
      log.warn({ cause: e.message }, 'mail failed: the token stayed invalid too long')
      return this.#finish(mail, { state: 'exception', failure_type: 'mail_smtp', failure_reason: `The token of ${server.username} stayed invalid for ${Math.round(waited / 60_000)} minutes: ${e.message}` }, false)
    }
    // An unreachable token endpoint is not the mail's fault: it spends no attempt (a 4xx after the outage still has
    // the whole budget), and the mail waits as long again as it has waited, so a long outage thins its own retries.
    const wait = transient ? backoffMs(1, { retryBaseMs: Math.max(queue.retryBaseMs, waited), retryMaxMs: queue.retryMaxMs }) : Math.max(queue.retryBaseMs, 60_000)
    log[sameReason(mail, e.message) ? 'debug' : 'warn']({ cause: e.message, retry_in_s: Math.round(wait / 1000) }, 'mail waits for a valid token')
    // An unreachable provider is not a dead token: nobody needs to Reconnect, so nothing is announced.
    if (!transient) this.events.emit('token.invalid', { server_id: server.id, mailbox: server.username, reason: e.message })
    // Announced once per mailbox until a mail gets through again, and before this worker moves on.
    const mailbox = server.username.toLowerCase()
    if (webhooks && !transient && !this.#announced.has(mailbox)) {
      await webhooks.enqueue(database.db, 'token.invalid', tokenInvalid('outgoing', server, e.message))
      this.#announced.add(mailbox)
    }
    await this.#finish(mail, { state: 'outgoing', next_attempt_at: isoIn(wait), failure_reason: e.message }, false)
  }

  #finish(mail: ClaimedMail, set: Change, countAttempt = true): Promise<void> {
    return this.#outcomes.add({ mail, set, countAttempt })
  }

  /**
   * Outcomes are committed together (db/group-commit.ts): a pool finishing mails back to back costs one
   * transaction per group, not one per mail. Each webhook delivery is written in the transaction of the state it
   * reports: both or neither. A crash before the commit sends those mails again (at least once, never zero).
   */
  readonly #outcomes = new GroupCommit<Outcome, void>(async (items) => {
    const { webhooks, owner } = this.deps
    const reported: Array<[string, MailOutcome]> = []
    await this.deps.database.db.transaction().execute(async (tx) => {
      for (const { mail, set, countAttempt } of items) {
        const r = await tx
          .updateTable('mails')
          .set((eb) => ({ ...set, lease_owner: null, lease_until: null, updated_at: now(), ...(countAttempt ? { attempts: eb('attempts', '+', 1) } : {}) }))
          .where('id', '=', mail.id)
          .where('lease_owner', '=', owner)
          .executeTakeFirst()
        if (set.state !== 'sent' && set.state !== 'exception') continue
        const { event, data } = mailOutcome(mail, set.state === 'sent' ? { state: 'sent' } : { state: 'exception', failure_type: set.failure_type ?? null, failure_reason: set.failure_reason ?? null })
        if (webhooks && r.numUpdatedRows > 0n) await webhooks.enqueue(tx, event, data)
        reported.push([event, data])
      }
    })
    for (const [name, event] of reported) this.events.emit(name, event)
    return items.map(() => undefined)
  })
}
