import type { Secret } from '../crypto/secret.ts'
import type { Logger } from '../log.ts'
import type { Account, CredentialService } from './credentials.ts'
import type { ProviderSpec, TokenResource } from './providers.ts'

/** What the step needs of the credential service (narrow, so the unit tests give a fake one). */
export type TokenSource = Pick<CredentialService, 'accessToken' | 'recordUseSuccess' | 'recordUseFailure'>

/** One use of a mailbox's access token against a mail server (SMTP AUTH, IMAP AUTHENTICATE, Graph). */
export interface TokenUse<T> {
  credentials: TokenSource
  provider: ProviderSpec
  account: Account
  log: Logger
  /** What refused the token, for the log: "smtp.office365.com:587". */
  peer: string
  /** The work itself, with the token it should present. */
  attempt(token: Secret): Promise<T>
  /**
   * The peer refused this token (SMTP 535 5.7.3, IMAP AUTHENTICATE NO, Graph 401). Only these are worth one
   * refresh: a refusal the token cannot cure (535 5.7.139, SMTP AUTH disabled) must answer false.
   */
  refused(e: unknown): boolean
  /** The text recorded on the credential when a refreshed token is refused too; it turns the badge red. */
  explain(e: unknown): string
  /** Ask the provider for a new token before the first attempt, so the request proves the client secret (Test Connection). */
  renew?: boolean
  /** A token already known bad (an IMAP session that ended with AccessTokenExpired): refresh unless another caller did. */
  rejected?: Secret
  /** Whose token: Exchange Online's for SMTP and IMAP (the default), or Microsoft Graph's for a permission. */
  resource?: TokenResource
  /**
   * Record a refusal on the credential (default). Test Connection says false: what it tries is the server's own
   * settings, so a refusal is the server's, and must not turn red the mailbox's other servers (issue 21 §2).
   */
  recordFailure?: boolean
}

/**
 * The one rule for using a token: get it, attempt, and on a refusal refresh once presenting the refused token
 * (so a token another caller already replaced is taken instead of a second refresh), attempt again, and record
 * the result on the credential. Exchange answers a token that expired moments ago with a refusal, without the
 * 334 challenge that would make nodemailer renew it, so the caller cannot rely on its client library for this.
 *
 * Errors getting a token (a ProviderError, or `token_error` for a mailbox not connected) reach the caller as they
 * are: the caller decides whether the work waits for a token or fails.
 */
export async function useToken<T>(u: TokenUse<T>): Promise<T> {
  const first = await u.credentials.accessToken(u.provider, u.account, { renew: u.renew, rejected: u.rejected, resource: u.resource })
  let result: T
  try {
    result = await u.attempt(first)
  } catch (e) {
    if (!u.refused(e)) throw e
    u.log.info({ peer: u.peer }, 'token refused: retrying once with a refreshed token')
    const second = await u.credentials.accessToken(u.provider, u.account, { rejected: first, resource: u.resource })
    try {
      result = await u.attempt(second)
    } catch (again) {
      if (u.refused(again) && u.recordFailure !== false) await u.credentials.recordUseFailure(u.provider, u.account, u.explain(again))
      throw again
    }
  }
  await u.credentials.recordUseSuccess(u.provider, u.account)
  return result
}
