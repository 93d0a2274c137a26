import { messageIds } from '../incoming/threading.ts'
import { type Fields, decoded, first, readFields } from './fields.ts'

/** What a report says about the message it reports on: the data that links it to the mail Mailbridge sent. */
export interface Original {
  /** Message-ID of the returned message or its headers, else the report's In-Reply-To. */
  message_id: string | null
  /** The report's own In-Reply-To and References: Exchange and Gmail point them at the original. */
  in_reply_to: string | null
  references: string[]
  /** Original-Envelope-Id (RFC 3464 §2.2.1), the ENVID given at submission (RFC 3461 §4.4). */
  envelope_id: string | null
  subject: string | null
  from: string | null
  to: string[]
}

/**
 * The header section of a returned message: a `message/rfc822` or `message/global` part (RFC 3464 §2, RFC 6533 §6),
 * a `text/rfc822-headers` or `message/global-headers` part (RFC 6522 §4, RFC 6533 §6), or the copy a text-only
 * bounce quotes below its own words. Only the header section is read: the body is not needed to link.
 */
export function returnedFields(text: string): Fields {
  const start = text.replace(/^\s+/, '')
  const end = /\r?\n\r?\n/.exec(start)
  return readFields(end ? start.slice(0, end.index) : start)
}

/** The linking data of a report, from the report's header fields and the returned message's, when there is one. */
export function originalOf(report: Fields, returned: Fields | null, envelopeId: string | null): Original {
  const inReplyTo = messageIds(first(report, 'in-reply-to'))[0] ?? null
  const references = messageIds(report.get('references'))
  const r = returned ?? new Map()
  return {
    message_id: messageIds(first(r, 'message-id'))[0] ?? inReplyTo,
    in_reply_to: inReplyTo,
    references,
    envelope_id: envelopeId,
    subject: first(r, 'subject') !== undefined ? decoded(first(r, 'subject')) : null,
    from: first(r, 'from') !== undefined ? decoded(first(r, 'from')) : null,
    to: (r.get('to') ?? []).map(decoded),
  }
}
