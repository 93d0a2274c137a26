/** One recipient line of a generated report (RFC 3464 §2.3). */
export interface ReportLine {
  recipient: string
  action: 'failed' | 'delayed' | 'delivered'
  status: string
  diagnostic?: string
  originalRecipient?: string
}

/**
 * A delivery status notification as an MTA writes it (RFC 3464 §2, in a multipart/report of RFC 6522): a
 * human-readable part, the delivery-status fields, and the returned message's header section with its
 * Message-ID. `returnedMessageId` null leaves the headers out (the report then links by In-Reply-To alone).
 */
export function deliveryReport(o: { to: string; returnedMessageId: string | null; lines: ReportLine[]; inReplyTo?: string; messageId?: string }): Buffer {
  const b = 'report-boundary-1'
  const fields = o.lines
    .map((l) =>
      [
        ...(l.originalRecipient ? [`Original-Recipient: rfc822; ${l.originalRecipient}`] : []),
        `Final-Recipient: rfc822; ${l.recipient}`,
        `Action: ${l.action}`,
        `Status: ${l.status}`,
        'Remote-MTA: dns; mx.fabrikam.example',
        ...(l.diagnostic ? [`Diagnostic-Code: smtp; ${l.diagnostic}`] : []),
      ].join('\r\n'),
    )
    .join('\r\n\r\n')
  const returned = o.returnedMessageId === null ? '' : `--${b}\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: alice@contoso.com\r\nSubject: Invoice 42\r\nMessage-ID: ${o.returnedMessageId}\r\n\r\n`
  return Buffer.from(
    [
      'Return-Path: <>',
      'From: Mail Delivery System <MAILER-DAEMON@mx.contoso.com>',
      `To: ${o.to}`,
      'Subject: Undelivered Mail Returned to Sender',
      `Message-ID: ${o.messageId ?? `<report-${Math.random().toString(16).slice(2)}@mx.contoso.com>`}`,
      ...(o.inReplyTo ? [`In-Reply-To: ${o.inReplyTo}`] : []),
      'MIME-Version: 1.0',
      `Content-Type: multipart/report; report-type=delivery-status; boundary="${b}"`,
      '',
      `--${b}`,
      'Content-Type: text/plain',
      '',
      'Your message could not be delivered.',
      '',
      `--${b}`,
      'Content-Type: message/delivery-status',
      '',
      'Reporting-MTA: dns; mx.contoso.com',
      '',
      fields,
      '',
      returned + `--${b}--`,
      '',
    ].join('\r\n'),
  )
}

/** An out-of-office reply (RFC 3834 §5: Auto-Submitted: auto-replied) to a given Message-ID. */
export const outOfOffice = (inReplyTo: string): Buffer =>
  Buffer.from(
    ['From: Bob <bob@fabrikam.example>', 'To: alice@contoso.com', 'Subject: Automatic reply: Invoice 42', 'Message-ID: <ooo-1@fabrikam.example>', `In-Reply-To: ${inReplyTo}`, 'Auto-Submitted: auto-replied', 'Content-Type: text/plain', '', 'I am away until Monday.', ''].join('\r\n'),
  )
