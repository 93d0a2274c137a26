import { actionOf, type RecipientReport } from './delivery-status.ts'
import { recipientStatus } from './status-code.ts'

interface SesRecipient { emailAddress?: string; action?: string; status?: string; diagnosticCode?: string }
interface SesNotification {
  notificationType?: string
  bounce?: { bouncedRecipients?: SesRecipient[]; reportingMTA?: string; remoteMtaIp?: string }
  delivery?: { recipients?: string[]; smtpResponse?: string; reportingMTA?: string; remoteMtaIp?: string }
  mail?: { commonHeaders?: { messageId?: string }; headers?: Array<{ name?: string; value?: string }> }
}

export interface SesReport {
  recipients: RecipientReport[]
  reporting_mta: string | null
  message_id: string | null
}

/**
 * Sendmail breaks lines longer than its limit with "!" and a newline and a space; Amazon SNS's long JSON lines
 * arrive so. Undone before the JSON is read.
 */
const unwrap = (text: string) => text.replace(/!\r?\n /g, '')

/**
 * An Amazon SES bounce or delivery notification, as SNS mails it to a subscribed address: the notification's JSON
 * is the body. Complaints are feedback about a delivered mail, not a delivery report, and are not read as one.
 * @see https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html
 */
export function readSesNotification(text: string): SesReport | null {
  const body = unwrap(text)
  const start = body.indexOf('{"notificationType"')
  if (start < 0) return null
  let n: SesNotification
  try {
    n = JSON.parse(body.slice(start, body.lastIndexOf('}') + 1)) as SesNotification
  } catch {
    return null
  }
  const header = n.mail?.headers?.find((h) => h.name?.toLowerCase() === 'message-id')?.value
  const message_id = n.mail?.commonHeaders?.messageId ?? header ?? null
  const mta = (v: string | undefined) => v?.replace(/^\s*dns\s*;\s*/i, '') ?? null
  if (n.notificationType === 'Bounce') {
    const recipients = (n.bounce?.bouncedRecipients ?? []).filter((r) => r.emailAddress).map((r) => {
      const diagnostic = r.diagnosticCode?.replace(/^\s*smtp\s*;\s*/i, '') ?? null
      const status = recipientStatus(r.status ?? null, diagnostic)
      return { recipient: r.emailAddress!, original_recipient: null, status, action: actionOf(r.action, status), diagnostic, remote_mta: n.bounce?.remoteMtaIp ?? null }
    })
    return { recipients, reporting_mta: mta(n.bounce?.reportingMTA), message_id }
  }
  if (n.notificationType === 'Delivery') {
    const diagnostic = n.delivery?.smtpResponse ?? null
    const recipients = (n.delivery?.recipients ?? []).map((recipient) => ({ recipient, original_recipient: null, status: recipientStatus(null, diagnostic), action: 'delivered' as const, diagnostic, remote_mta: n.delivery?.remoteMtaIp ?? null }))
    return { recipients, reporting_mta: mta(n.delivery?.reportingMTA), message_id }
  }
  return null
}
