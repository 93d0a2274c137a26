/**
 * What a Graph failure means for a mail, decided once (style.md §6): the same kinds as the SMTP transport's. The
 * token refused → `refused` (refresh once, then retry); throttling and outages → `transient`, with the wait Graph
 * asked for; everything Graph answers about the mail or the mailbox's rights → `permanent`, naming Graph's code and
 * message.
 * @see https://learn.microsoft.com/graph/errors (status codes)
 * @see https://learn.microsoft.com/graph/throttling (429, 503, 504: Retry-After)
 * @see https://learn.microsoft.com/graph/outlook-send-mail-from-other-user (ErrorSendAsDenied)
 * @see https://learn.microsoft.com/graph/auth-limit-mailbox-access (ErrorAccessDenied from an application access policy)
 */
import type { FailureType } from '../db/schema.ts'
import { GraphRequestError } from './graph-request.ts'
import { MailTooLargeForGraph } from './graph-send.ts'

export type GraphVerdict =
  | { kind: 'transient'; reason: string; retryAfterMs?: number }
  | { kind: 'refused'; reason: string }
  | { kind: 'permanent'; failureType: FailureType; reason: string; code?: string }

/** Graph's codes about the addresses of a mail; what Exchange refuses of a From, and of a recipient. */
const FROM_CODES = new Set(['ErrorSendAsDenied'])
const RECIPIENT_CODES = new Set(['ErrorInvalidRecipients', 'ErrorInvalidRecipientsSmtpAddress'])

export function graphVerdict(e: unknown): GraphVerdict {
  if (e instanceof MailTooLargeForGraph) return { kind: 'permanent', failureType: 'unknown', reason: e.message }
  if (!(e instanceof GraphRequestError)) return { kind: 'transient', reason: e instanceof Error ? e.message : String(e) }
  const reason = e.message
  // No answer, throttling, or the service (or a gateway before it) unavailable: try again, after Retry-After if given.
  if (e.status === 0 || e.status === 429 || e.status === 503 || e.status === 504 || e.status === 502 || e.status === 500) {
    return { kind: 'transient', reason, ...(e.retryAfterMs !== undefined ? { retryAfterMs: e.retryAfterMs } : {}) }
  }
  // "Required authentication information is either missing or not valid for the resource" (ERRORS, 401): expired,
  // revoked, or for another resource. One refresh may cure it; a second refusal is the credential's problem.
  if (e.status === 401) return { kind: 'refused', reason }
  const failureType: FailureType = FROM_CODES.has(e.code) ? 'mail_from_invalid' : RECIPIENT_CODES.has(e.code) ? 'mail_email_invalid' : 'unknown'
  return { kind: 'permanent', failureType, reason, code: e.code }
}
