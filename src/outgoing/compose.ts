import type { OutgoingServerRow } from '../db/schema.ts'
import { literalHeaderText, parseMailbox, toNodemailer, type Mailbox } from '../mail-address.ts'
import type { ClaimedMail } from './claimed-mail.ts'
import { isRaw, type StoredContent } from './mail-input.ts'
import type { ComposedMail } from './mail-transport.ts'
import { rewriteRawHeaders } from './raw-message.ts'
import { rewriteFrom } from './selection.ts'

const list = (json: string): Mailbox[] => (JSON.parse(json) as string[]).map((v) => parseMailbox(v)!).filter(Boolean)

/**
 * A claimed mail as it leaves through `server`: From rewritten for the server (selection.ts: its from_filter, or
 * `mail.force.smtp.from` when `forced`), the envelope sender the final From, every recipient (Bcc too) in the
 * envelope. The Message-ID and Date are the mail's own, the same at every attempt. `stored` is the mail's content
 * column (mail-input.ts): a relayed mail goes out as it came, with only From and Reply-To rewritten, to the
 * recipients of its SMTP session.
 */
export function composeMail(server: OutgoingServerRow, mail: ClaimedMail, stored: string, forced: string | undefined): ComposedMail {
  const content = JSON.parse(stored) as StoredContent
  const from = parseMailbox(mail.from_addr)!
  const replyTo = mail.reply_to ? parseMailbox(mail.reply_to) : undefined
  const r = rewriteFrom(server, from, replyTo, forced)
  if (isRaw(content)) {
    return { raw: rewriteRawHeaders(Buffer.from(content.raw, 'base64'), from, r), envelope: { from: r.envelopeFrom, to: content.envelope_to } }
  }
  const to = list(mail.to_addrs)
  const cc = list(mail.cc_addrs)
  const bcc = list(mail.bcc_addrs)
  return {
    messageId: mail.message_id,
    date: new Date(mail.created_at),
    from: toNodemailer(r.from),
    replyTo: r.replyTo ? toNodemailer(r.replyTo) : undefined,
    to: to.map(toNodemailer),
    cc: cc.map(toNodemailer),
    bcc: bcc.map(toNodemailer),
    subject: literalHeaderText(mail.subject),
    text: content.text,
    html: content.html,
    headers: content.headers,
    attachments: content.attachments.map((a) => ({ filename: a.filename, contentType: a.content_type, content: Buffer.from(a.content_base64, 'base64') })),
    envelope: { from: r.envelopeFrom, to: [...to, ...cc, ...bcc].map((m) => m.address) },
  }
}
