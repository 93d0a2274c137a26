import type { Secret } from '../crypto/secret.ts'
import type { IncomingServerRow } from '../db/schema.ts'

/**
 * The seam between the fetch and the protocol it fetches over. IMAP (imap-transport.ts) is the one transport
 * today; a Microsoft Graph delta transport, and an IMAP IDLE loop that opens the same Folder and waits, fit beside
 * it: the fetch, the folder sync and the store read only these interfaces.
 */

/** A message as the server holds it: its UID in the folder and its raw RFC 5322 bytes, as fetched. */
export interface FetchedMessage {
  uid: number
  source: Buffer
}

/** UIDs to flag: a list, or a range `from:to` (RFC 3501 §9 sequence-set) whose missing UIDs are simply absent. */
export type UidSet = readonly number[] | { from: number; to: number }

/** One folder of one mailbox, open in one authenticated session. */
export interface Folder {
  /** UIDs mean something only together with it (RFC 3501 §2.3.1.1): a new one voids every UID known before. */
  readonly uidValidity: string
  /** How many messages the folder holds (Test & Confirm says it). */
  readonly exists: number
  /** False once the server ended the session (BYE, EOF): nothing more can be asked of it. */
  readonly usable: boolean
  /** The UIDs above `afterUid`, in ascending order. */
  listNew(afterUid: number): Promise<number[]>
  /** The messages of these UIDs, as the server streams them (in any order; a message deleted meanwhile is absent). */
  fetch(uids: readonly number[]): AsyncIterable<FetchedMessage>
  /**
   * Set `\Seen`. Resolves false when a live session refuses (a read-only folder: it would refuse again); throws
   * when the session ended under it, so the caller never counts as flagged what stays unread.
   */
  markSeen(uids: UidSet): Promise<boolean>
  /** End the session (politely when it is still usable). */
  close(): Promise<void>
}

/** What a failure means to the fetch. */
export interface FetchFailure {
  /** The failure, in the transport's own error type (what explainImapFailure reads). */
  error: Error
  /** The server refused the token at login: worth one refresh (oauth/token-use.ts), nothing else. */
  refused: boolean
  /** The session was lost after or while it was opened (a cut connection, a BYE): worth a reconnect. */
  lost: boolean
  /** The session ended because the token expired (Exchange's `BYE ... AccessTokenExpired`): reconnect with a new one. */
  tokenExpired: boolean
}

/** Where a fetch goes: the server's host, port, encryption, mailbox and folder. */
export type FetchTarget = Pick<IncomingServerRow, 'host' | 'port' | 'encryption' | 'username' | 'folder'>

export interface FetchTransport {
  /**
   * Open a session with the mailbox's access token and open the server's folder; read-only for Test & Confirm,
   * read-write (so `\Seen` can be set) for a fetch. Throws what `failure` reads.
   */
  open(server: FetchTarget, token: Secret, o?: { readOnly?: boolean }): Promise<Folder>
  /** Read a failure of `open` or of the folder's work; `folder` is the open folder, as it is now, if any. */
  failure(e: unknown, folder?: Folder): FetchFailure
}
