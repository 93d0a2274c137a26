import type { Kysely } from 'kysely'
import type { SecretBox } from '../crypto/secret-box.ts'
import { type DB, isoIn } from '../db/index.ts'
import type { SignInRow } from '../db/schema.ts'
import { MailbridgeError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { PollLoop } from '../poll-loop.ts'
import type { CredentialService } from './credentials.ts'
import { deviceAuthorizationRequest, deviceCodeGrant, identityMatches, processDeviceAuthorizationResponse, ProviderError, readIdentity } from './protocol.ts'
import { providers, type ProviderId, type ProviderSpec } from './providers.ts'
import type { SignInServer, SignInState } from './sign-ins.ts'

/** What the person needs: the code, where to enter it, and until when (design.md §10, Device code). */
export interface DeviceCodeStart {
  user_code: string
  verification_uri: string
  expires_at: string
}

/**
 * How long a node holds a device code it polls: longer than a token request may take (MAILBRIDGE_TOKEN_TIMEOUT_S is
 * at most 25 s), so two nodes never redeem one code, and short enough that a node that died mid-poll costs the person
 * half a minute, not the code.
 */
const LEASE_MS = 30_000
/** RFC 8628 §3.5: "the interval MUST be increased by 5 seconds for this and all subsequent requests". */
const SLOW_DOWN_S = 5

const REASONS = {
  expired: 'The code expired before anyone signed in with it (codes last 15 minutes). Click "Sign in with a code" again.',
  declined:
    'The sign-in was declined at Microsoft: the person chose Cancel, or left Microsoft\'s "Need admin approval" page. Click "Sign in with a code" to try again; where Microsoft said "Need admin approval", an administrator must click "Grant admin consent" first.',
  unknown: 'Microsoft no longer knows this code (it was used or replaced). Click "Sign in with a code" again.',
} as const

/**
 * The device authorization grant (RFC 8628) as Microsoft implements it: Mailbridge asks for a code, the person enters
 * it at Microsoft on any device, and Mailbridge polls the token endpoint until they have signed in, declined, or the
 * code expired; the credential is then stored as Connect stores it, after the same identity check.
 *
 * Any node polls any code, under a lease in `sign_ins` (claimed by one conditional UPDATE): the API call that started
 * it may land on one web node while the background work runs on others, and a node that stops or dies mid-poll hands
 * the code on when its lease runs out, instead of taking the person's sign-in with it. Polls are due at the interval
 * the provider gave, lengthened by every `slow_down`; `stop()` ends the loop after the poll under way.
 * @see https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code
 */
export class DeviceCodes {
  readonly #loop: PollLoop

  constructor(private readonly deps: { db: Kysely<DB>; box: SecretBox; credentials: CredentialService; log: Logger; nodeId: string; pollMs?: number }) {
    this.#loop = new PollLoop({ pass: () => this.tick(), pollMs: deps.pollMs ?? 1000, log: deps.log, what: 'device code poll' })
  }

  start(): void {
    this.#loop.start()
  }

  stop(): Promise<void> {
    return this.#loop.stop()
  }

  /** Ask the provider for a code (RFC 8628 §3.1) and keep it to be polled; it replaces the mailbox's previous sign-in. */
  async begin(p: ProviderSpec, o: SignInServer & { mailbox: string }): Promise<DeviceCodeStart> {
    if (p.grant !== 'authorization_code') {
      throw new MailbridgeError('conflict', { message: `${p.article} ${p.label} server needs no sign-in: no one signs in. Click Test Connection instead.` })
    }
    if (!o.mailbox) throw new MailbridgeError('username_missing')
    const client = await this.deps.credentials.client(p)
    const url = p.offersDeviceCode ? client.endpoints.deviceCode : undefined
    if (!url) throw new MailbridgeError('conflict', { message: `${p.company} offers no sign-in with a code for mail. Click "Connect your ${p.label} account" instead.` })
    const code = await processDeviceAuthorizationResponse(p, await deviceAuthorizationRequest(p, url, { clientId: client.clientId, scopes: client.scopes, timeoutMs: client.timeoutMs }))
    const expiresAt = code.expiresAt.toISOString()
    await this.deps.credentials.signIns.record(p, o.mailbox, o, {
      flow: 'device_code',
      state: 'pending',
      device: {
        sealedCode: this.deps.box.seal(code.deviceCode, 'sign_ins.device_code'),
        userCode: code.userCode,
        verificationUri: code.verificationUri,
        interval: code.interval,
        expiresAt,
        nextPollAt: isoIn(code.interval * 1000),
      },
    })
    this.deps.log.info({ provider: p.id, mailbox: o.mailbox.toLowerCase(), server_kind: o.serverKind, server_id: o.serverId, expires_at: expiresAt }, 'device code issued: waiting for the sign-in')
    this.#loop.wake()
    return { user_code: code.userCode, verification_uri: code.verificationUri, expires_at: expiresAt }
  }

  /** One pass: poll each device code that is due and not leased by another node, once. Returns how many were polled. */
  async tick(at = Date.now()): Promise<number> {
    const when = new Date(at).toISOString()
    const due = await this.deps.db
      .selectFrom('sign_ins')
      .selectAll()
      .where('state', '=', 'pending')
      .where('next_poll_at', '<=', when)
      .where((w) => w.or([w('lease_until', 'is', null), w('lease_until', '<', when)]))
      .orderBy('next_poll_at')
      .limit(20)
      .execute()
    let polled = 0
    for (const row of due) {
      const lease = await this.#claim(row, at)
      if (!lease) continue
      polled++
      await this.#poll(row, lease, at)
    }
    return polled
  }

  /** The lease on one due code (one conditional UPDATE: of two nodes, one wins), or undefined. */
  async #claim(row: SignInRow, at: number): Promise<string | undefined> {
    const when = new Date(at).toISOString()
    const lease = new Date(at + LEASE_MS).toISOString()
    const took = await this.deps.db
      .updateTable('sign_ins')
      .set({ lease_until: lease, lease_holder: this.deps.nodeId })
      .where('id', '=', row.id)
      .where('state', '=', 'pending')
      .where('device_code', '=', row.device_code)
      .where((w) => w.or([w('lease_until', 'is', null), w('lease_until', '<', when)]))
      .executeTakeFirst()
    return took.numUpdatedRows === 1n ? lease : undefined
  }

  /** Poll once and record what came of it (RFC 8628 §3.4, §3.5). */
  async #poll(row: SignInRow, lease: string, at: number): Promise<void> {
    const p = providers[row.provider as ProviderId]
    const log = this.deps.log.child({ provider: p.id, mailbox: row.mailbox, server_kind: row.server_kind, server_id: row.server_id })
    const interval = row.interval_s ?? 5
    const again = (s: number, reason: string | null = null) => this.#update(row, lease, { next_poll_at: new Date(at + s * 1000).toISOString(), interval_s: s, reason })
    const end = (state: SignInState, reason: string, errorCode: string | null) => {
      log.info({ state, error_code: errorCode }, 'device code sign-in ended')
      return this.#update(row, lease, { state, reason, error_code: errorCode, device_code: null, next_poll_at: null })
    }
    if (row.expires_at && Date.parse(row.expires_at) <= at) return end('expired', REASONS.expired, 'expired_token')
    try {
      const client = await this.deps.credentials.client(p)
      const tokens = await deviceCodeGrant(p, { tokenUrl: client.endpoints.token, client, deviceCode: this.deps.box.open(row.device_code!, 'sign_ins.device_code') })
      if (!tokens.refreshToken) return end('failed', `${p.company} signed the person in, but no refresh token came back: offline access was not granted.`, 'no_refresh_token')
      const identity = readIdentity(tokens.idToken)
      if (!identityMatches(identity, row.mailbox)) {
        const actual = identity.email ?? identity.preferred_username ?? 'an unknown account'
        log.warn({ actual }, 'device code signed in by another account')
        return end('failed', new MailbridgeError('identity_mismatch', { actual, expected: row.mailbox, provider: p.company }).message, 'identity_mismatch')
      }
      await this.deps.credentials.save(p, row.mailbox, tokens, identity, 'device_code')
      log.info('device code sign-in completed: credential stored')
    } catch (e) {
      if (!(e instanceof MailbridgeError)) {
        log.error({ err: e }, 'device code poll failed; trying again at the next interval')
        return again(interval)
      }
      const code = e instanceof ProviderError ? e.error : e.code
      switch (code) {
        case 'authorization_pending':
          return again(interval)
        case 'slow_down':
          return again(interval + SLOW_DOWN_S)
        case 'expired_token':
          return end('expired', REASONS.expired, code)
        case 'authorization_declined':
          return end('declined', REASONS.declined, code)
        case 'bad_verification_code':
          return end('failed', REASONS.unknown, code)
      }
      // The provider unreachable or briefly unavailable: keep asking until the code expires, and say so meanwhile.
      if (e instanceof ProviderError && e.transient) return again(interval, `Asking ${p.company} again: ${e.message}`)
      return end('failed', e.message, e instanceof ProviderError ? e.shortCode : e.code)
    }
  }

  /** Write a poll's outcome, only while this node still holds the lease (a new sign-in may have replaced the code). */
  async #update(row: SignInRow, lease: string, set: Partial<Pick<SignInRow, 'state' | 'reason' | 'error_code' | 'device_code' | 'next_poll_at' | 'interval_s'>>): Promise<void> {
    await this.deps.db
      .updateTable('sign_ins')
      .set({ ...set, lease_until: null, lease_holder: null, updated_at: new Date().toISOString() })
      .where('id', '=', row.id)
      .where('lease_holder', '=', this.deps.nodeId)
      .where('lease_until', '=', lease)
      .execute()
  }
}
