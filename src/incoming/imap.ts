import { ImapFlow } from 'imapflow'
import type { Secret } from '../crypto/secret.ts'

export type ImapStage = 'connect' | 'tls' | 'auth' | 'select' | 'fetch'

/** An IMAP failure with the step it happened at and the server's own words (style.md §4: keep the reply). */
export class ImapError extends Error {
  constructor(
    readonly stage: ImapStage,
    message: string,
    readonly o: { response?: string; code?: string; bye?: string } = {},
    options?: ErrorOptions,
  ) {
    super(message, options)
    this.name = 'ImapError'
  }
  /**
   * Exchange ends a session whose token expired with `* BYE ... AccessTokenExpired`; the next login needs a new
   * token, not the cached one.
   * @see https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth
   */
  get tokenExpired(): boolean {
    return /AccessTokenExpired/i.test(`${this.o.bye ?? ''} ${this.o.response ?? ''} ${this.message}`)
  }
}

export interface ImapTarget {
  host: string
  port: number
  encryption: string
  username: string
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL|EPROTO|HOSTNAME/

/** Turn whatever imapflow or the socket threw into an ImapError at the right stage. */
export function toImapError(e: unknown, stage: ImapStage, client?: ImapFlow): ImapError {
  if (e instanceof ImapError) return e
  const err = e as Error & { code?: string; response?: string; authenticationFailed?: boolean; serverResponseCode?: string; responseText?: string }
  const bye = (client as unknown as { byeReason?: string } | undefined)?.byeReason
  const o = { response: err.response ?? err.responseText, code: err.serverResponseCode ?? err.code, bye }
  if (err.authenticationFailed) return new ImapError('auth', err.response || err.message, o, { cause: e })
  if (err.code && TLS_CODES.test(err.code)) return new ImapError('tls', `${err.code}: ${err.message}`, o, { cause: e })
  return new ImapError(stage, bye && !err.message.includes(bye) ? `${err.message} (${bye})` : err.message, o, { cause: e })
}

/**
 * Open an authenticated session: TLS (implicit on 993, or STARTTLS), then AUTHENTICATE XOAUTH2 with the
 * mailbox's access token (imapflow builds the SASL string; the token never reaches a log: logger is off).
 * @see https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth
 */
export async function openSession(t: ImapTarget, token: Secret): Promise<ImapFlow> {
  const client = new ImapFlow({
    host: t.host,
    port: t.port,
    secure: t.encryption === 'ssl',
    doSTARTTLS: t.encryption === 'starttls' ? true : undefined,
    auth: { user: t.username, accessToken: token.reveal() },
    logger: false,
    disableAutoIdle: true,
    connectionTimeout: 30_000,
    greetingTimeout: 30_000,
  })
  // An 'error' event without a listener would crash the process; failures surface through the awaited calls.
  client.on('error', () => undefined)
  try {
    await client.connect()
  } catch (e) {
    client.close()
    throw toImapError(e, 'connect', client)
  }
  return client
}
