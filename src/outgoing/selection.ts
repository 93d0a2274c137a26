import { domainOf, type Mailbox } from '../mail-address.ts'
import type { OutgoingServerRow } from '../db/schema.ts'

type Candidate = Pick<OutgoingServerRow, 'id' | 'from_filter' | 'sequence' | 'username'>

const filterParts = (s: Pick<OutgoingServerRow, 'from_filter'>): string[] =>
  (s.from_filter ?? '').split(',').map((p) => p.trim().toLowerCase()).filter(Boolean)

/** Does the server's from_filter allow this address: the exact address, or its whole domain (no subdomains)? */
export function matchesFromFilter(s: Pick<OutgoingServerRow, 'from_filter'>, address: string): boolean {
  const parts = filterParts(s)
  if (parts.length === 0) return true
  const a = address.toLowerCase()
  return parts.some((p) => (p.includes('@') ? p === a : p === domainOf(a)))
}

/**
 * Pick the outgoing server for a sender, as Odoo's `_find_mail_server` does: a server whose from_filter names
 * the exact address, then one that names its domain, then one without from_filter, then the first by sequence.
 */
export function selectServer<S extends Candidate>(servers: readonly S[], address: string): S | undefined {
  const ordered = [...servers].sort((a, b) => a.sequence - b.sequence || a.id.localeCompare(b.id))
  const a = address.toLowerCase()
  return (
    ordered.find((s) => filterParts(s).includes(a)) ??
    ordered.find((s) => filterParts(s).includes(domainOf(a))) ??
    ordered.find((s) => filterParts(s).length === 0) ??
    ordered[0]
  )
}

/** The address a server sends as when the sender does not match it: its from_filter's address, else its login. */
export function serverAddress(s: Pick<OutgoingServerRow, 'from_filter' | 'username'>): string {
  return filterParts(s).find((p) => p.includes('@')) ?? s.username.toLowerCase()
}

export interface Rewritten {
  from: Mailbox
  replyTo?: Mailbox
  /** The SMTP envelope sender (MAIL FROM). */
  envelopeFrom: string
}

/**
 * From rewriting. With `mail.force.smtp.from` every mail leaves from that address (design.md §8); otherwise a
 * sender the server's from_filter does not allow leaves from the server's own address, or Exchange refuses it
 * (550 5.7.60). Either way the original name is kept and the original address becomes Reply-To, unless the
 * application gave one.
 */
export function rewriteFrom(server: Pick<OutgoingServerRow, 'from_filter' | 'username'>, from: Mailbox, replyTo: Mailbox | undefined, forced: string | undefined): Rewritten {
  let address = from.address
  if (forced) address = forced
  else if (!matchesFromFilter(server, from.address)) address = serverAddress(server)
  if (address.toLowerCase() === from.address.toLowerCase()) return { from, replyTo, envelopeFrom: from.address }
  return { from: { name: from.name, address }, replyTo: replyTo ?? { name: from.name, address: from.address }, envelopeFrom: address }
}
