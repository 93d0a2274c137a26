import { type Fields, decoded, first } from './fields.ts'

/** The keyword of an Auto-Submitted field, without its parameters (RFC 3834 §5, RFC 5436 §2.7.1). */
const autoSubmitted = (h: Fields) => (first(h, 'auto-submitted') ?? '').split(';')[0]!.trim().toLowerCase()

/** The message answers another one: it names it (RFC 5322 §3.6.4). */
const isResponse = (h: Fields) => h.has('in-reply-to') || h.has('references')

/**
 * Subjects that responders give their answers. "Auto:" is RFC 3834 §3.1.5's recommendation; the others are the
 * prefixes Outlook and Exchange ("Automatic reply:", localised), Gmail, iCloud and common vacation programs write.
 * A prefix, so anchored at the start and ending in a colon: a person's "Re: Out of office: …" or "Out of office
 * next week" is not one.
 * @see https://www.rfc-editor.org/rfc/rfc3834#section-3.1.5
 */
const VACATION_SUBJECT =
  /^\s*(auto|auto[ -]?reply|auto[ -]?response|automatic reply|autoreply|out of (the )?office|vacation reply|automatische antwort|abwesenheitsnotiz|r[ée]ponse automatique|absence du bureau|respuesta autom[áa]tica|risposta automatica|automatisch antwoord|afwezigheidsbericht|resposta autom[áa]tica|autosvar|automaattinen vastaus|odpowied[źz] automatyczna|自動応答|自動返信|自动回复|自動回覆)\s*[:：]/i

/** Mailing-list traffic (RFC 2369, RFC 2919) is never a responder's answer, whatever its Precedence says. */
const isListMessage = (h: Fields) => h.has('list-id') || h.has('list-post') || h.has('list-unsubscribe')

/**
 * Whether a message is an automatic reply (out of office, vacation, "we received your request"), from its header
 * fields alone. Each rule says where it comes from; none is met by an ordinary reply a person writes.
 */
export function isAutoReply(h: Fields): boolean {
  const submitted = autoSubmitted(h)
  // RFC 3834 §5.2: "auto-replied" marks a message sent automatically in response to another.
  if (submitted === 'auto-replied') return true
  // RFC 3834 §5.1: "auto-generated" is automatic but not itself a response; one that names the message it answers
  // is a response all the same. Exchange Online writes its out-of-office answers this way.
  if (submitted === 'auto-generated' && isResponse(h)) return true
  // Responders that predate RFC 3834 mark their answers with their own fields: X-Autoreply (vacation programs,
  // Yandex, Mail.ru), X-Autorespond (cPanel and qmail autoresponders); their presence is the mark.
  const xAutoreply = first(h, 'x-autoreply')?.trim().toLowerCase()
  if (xAutoreply !== undefined && xAutoreply !== 'no' && xAutoreply !== 'false') return true
  if (h.has('x-autorespond')) return true
  // "Precedence: auto_reply" has only that meaning (RFC 2076 §3.9 lists Precedence as non-standard). "bulk" and
  // "junk" are what BSD vacation(1) writes on its answers, but also what newsletters write: they count only on a
  // response that is not list traffic.
  const precedence = first(h, 'precedence')?.trim().toLowerCase()
  if (precedence === 'auto_reply') return true
  if ((precedence === 'bulk' || precedence === 'junk') && isResponse(h) && !isListMessage(h)) return true
  const subject = decoded(first(h, 'subject'))
  if (!VACATION_SUBJECT.test(subject)) return false
  // A vacation subject alone could be a person's; with any machine mark it is a responder's. Exchange's inbox-rules
  // agent stamps X-MS-Exchange-Inbox-Rules-Loop on what its rules send, out-of-office answers among them, and asks
  // for no answer back with X-Auto-Response-Suppress (MS-OXCMAIL §2.1.3.2.20), which alone only says the sender
  // wants no automatic answer.
  // @see https://learn.microsoft.com/openspecs/exchange_server_protocols/ms-oxcmail/ced68690-498a-4567-9d14-5c01f974d8b1
  return (
    isResponse(h) ||
    submitted !== '' && submitted !== 'no' ||
    h.has('x-ms-exchange-inbox-rules-loop') ||
    h.has('x-auto-response-suppress') ||
    /^<\s*>$/.test(first(h, 'return-path')?.trim() ?? '')
  )
}
