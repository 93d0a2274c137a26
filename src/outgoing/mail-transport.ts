import type Mail from 'nodemailer/lib/mailer/index.js'
import type { Secret } from '../crypto/secret.ts'
import type { FailureType, OutgoingServerRow } from '../db/schema.ts'

/** A mail ready to submit (compose.ts): headers, body and attachments, or the raw MIME of a relayed mail; the envelope. */
export type ComposedMail = Mail.Options

/** The server took the mail: its reply, stored with the mail as `smtp_response`. */
export interface Accepted {
  kind: 'accepted'
  response: string
}

/**
 * What the queue needs to know about a submission that did not go through, decided by the transport, once
 * (style.md §6); the queue reads nothing else of the failure.
 * - `transient`: try again later (4xx, no answer, a cut connection).
 * - `permanent`: the mail fails (`exception` with `failureType`): retrying would not help and may get the mailbox locked.
 * - `refused`: the server refused the token; worth one refresh (oauth/token-use.ts), and a refreshed token refused too
 *   is a token problem (the badge turns red).
 * - `pause`: the server must rest (an Exchange lock-out, SMTP AUTH disabled): no refresh, no red badge; `mail` says
 *   whether the mail that got it fails (Exchange answered it) or waits for the pause (it never reached the mailbox).
 * - `closed`: the connection was closed under the mail before it was submitted (this node paused the server or
 *   replaced its connections): not the server's answer, the mail may go again at once.
 */
export type Verdict = { failureType: FailureType; reason: string; response?: string } & (
  | { kind: 'transient' | 'permanent' | 'refused' | 'closed' }
  | { kind: 'pause'; mail: 'fails' | 'waits' }
)

/**
 * How a mail leaves: SMTP today (transport.ts); a Microsoft Graph transport fits beside it without touching the
 * queue. A transport answers with the verdict and does not throw for what the server said; `slot` names one of the
 * server's connection slots (slots.ts), `token` is the access token to present (OAuth servers), as the one
 * token-use step (oauth/token-use.ts) chose it.
 */
export interface MailTransport {
  send(server: OutgoingServerRow, mail: ComposedMail, o: { slot: number; token?: Secret }): Promise<Accepted | Verdict>
  /** Slots of a server with a connection open here. */
  open(serverId: string): number[]
  /** Close a slot's connection (or all of a server's): idle now, busy after its message. */
  drop(serverId: string, slot?: number): void
  close(): void
}

/** How a server is named in every failure reason: its name, where it is, and the mailbox. */
export const serverPlace = (server: Pick<OutgoingServerRow, 'name' | 'host' | 'port' | 'username'>): string =>
  `${server.name} (${server.host}:${server.port}, ${server.username})`
