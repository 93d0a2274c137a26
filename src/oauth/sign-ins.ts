import type { Kysely } from 'kysely'
import { type DB, newId, now } from '../db/index.ts'
import type { SignInRow } from '../db/schema.ts'
import { ADMIN_CONSENT_AADSTS } from './aadsts.ts'
import type { ProviderSpec } from './providers.ts'

/** How a person signs in: Connect's redirect, a device code typed on another device, or an admin's tenant-wide consent. */
export type SignInFlow = 'authorization_code' | 'device_code' | 'admin_consent'
/** `pending`: a device code waiting for the person; the others say how the last sign-in of the mailbox ended. */
export type SignInState = 'pending' | 'completed' | 'expired' | 'declined' | 'failed' | 'admin_consented'

/** The server a sign-in was started from (its page shows the sign-in). */
export interface SignInServer {
  serverKind: 'outgoing' | 'incoming'
  serverId: string
}

/** How a sign-in ended, or a device code's start: the columns a new outcome sets (the device ones cleared unless given). */
export interface SignInOutcome {
  flow: SignInFlow
  state: SignInState
  reason?: string | null
  errorCode?: string | null
  device?: { sealedCode: string; userCode: string; verificationUri: string; interval: number; expiresAt: string; nextPollAt: string }
}

/**
 * Whether an answer asked for an administrator's consent: AADSTS65001, 90094, 90095 (a stored code reads
 * `AADSTS90094`, or `reconnect:AADSTS65001` on a credential).
 */
export const asksAdminConsent = (code: string | null | undefined): boolean =>
  !!code && ADMIN_CONSENT_AADSTS.some((n) => new RegExp(`(^|:)AADSTS${n}$`).test(code))

/** One row per (provider, mailbox), like the credential it leads to: the device code in progress, or the last outcome. */
export class SignInStore {
  constructor(private readonly db: Kysely<DB>) {}

  find(p: ProviderSpec, mailbox: string): Promise<SignInRow | undefined> {
    return this.db.selectFrom('sign_ins').selectAll().where('provider', '=', p.id).where('mailbox', '=', mailbox.toLowerCase()).executeTakeFirst()
  }

  /** Replace the mailbox's sign-in: a new one supersedes whatever the last one was, even a device code still polled. */
  async record(p: ProviderSpec, mailbox: string, server: SignInServer, o: SignInOutcome): Promise<void> {
    const at = now()
    const d = o.device
    const values = {
      server_kind: server.serverKind,
      server_id: server.serverId,
      flow: o.flow,
      state: o.state,
      reason: o.reason ?? null,
      error_code: o.errorCode ?? null,
      device_code: d?.sealedCode ?? null,
      user_code: d?.userCode ?? null,
      verification_uri: d?.verificationUri ?? null,
      interval_s: d?.interval ?? null,
      expires_at: d?.expiresAt ?? null,
      next_poll_at: d?.nextPollAt ?? null,
      lease_until: null,
      lease_holder: null,
      updated_at: at,
    }
    await this.db
      .insertInto('sign_ins')
      .values({ id: newId(), provider: p.id, mailbox: mailbox.toLowerCase(), created_at: at, ...values })
      .onConflict((oc) => oc.columns(['provider', 'mailbox']).doUpdateSet(values))
      .execute()
  }

  /** A consent came back and the credential is stored: the mailbox's sign-in is complete, whichever flow it took. */
  async completed(p: ProviderSpec, mailbox: string, flow: SignInFlow): Promise<void> {
    await this.db
      .updateTable('sign_ins')
      .set({ flow, state: 'completed', reason: null, error_code: null, device_code: null, next_poll_at: null, lease_until: null, lease_holder: null, updated_at: now() })
      .where('provider', '=', p.id)
      .where('mailbox', '=', mailbox.toLowerCase())
      .execute()
  }
}
