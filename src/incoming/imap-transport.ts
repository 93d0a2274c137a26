import type { ImapFlow } from 'imapflow'
import type { Secret } from '../crypto/secret.ts'
import type { FetchedMessage, FetchFailure, FetchTarget, FetchTransport, Folder, UidSet } from './fetch-transport.ts'
import { openSession, toImapError } from './imap.ts'

/** A folder over imapflow: SELECT (or EXAMINE), UID SEARCH, streamed UID FETCH, UID STORE +FLAGS (\Seen). */
export class ImapFolder implements Folder {
  constructor(
    readonly client: ImapFlow,
    readonly uidValidity: string,
    readonly exists: number,
  ) {}

  get usable(): boolean {
    return this.client.usable
  }

  async listNew(afterUid: number): Promise<number[]> {
    const found = await this.client.search({ uid: `${afterUid + 1}:*` }, { uid: true }).catch((e: unknown) => {
      throw toImapError(e, 'fetch', this.client)
    })
    // `n:*` always matches the highest message, even below n (RFC 3501 §6.4.8): keep only the new ones.
    return (found || []).filter((u) => u > afterUid).sort((a, b) => a - b)
  }

  async *fetch(uids: readonly number[]): AsyncIterable<FetchedMessage> {
    try {
      // BODY.PEEK[]: fetching never sets \Seen itself; only markSeen does, after the commit.
      for await (const m of this.client.fetch(uids.join(','), { uid: true, source: true }, { uid: true })) {
        if (m.source) yield { uid: m.uid, source: m.source }
      }
    } catch (e) {
      throw toImapError(e, 'fetch', this.client)
    }
  }

  async markSeen(uids: UidSet): Promise<boolean> {
    const set = 'from' in uids ? `${uids.from}:${uids.to}` : uids.join(',')
    const stored = await this.client.messageFlagsAdd(set, ['\\Seen'], { uid: true }).catch((e: unknown) => {
      throw toImapError(e, 'fetch', this.client)
    })
    // imapflow answers a failed STORE with false, not an error. If the session ended under it (BYE, EOF),
    // counting it as flagged would move seen_uid past messages that stay unread for ever: reconnect instead.
    if (!stored && !this.client.usable) throw toImapError(new Error(`UID STORE ${set} +FLAGS (\\Seen) failed`), 'fetch', this.client)
    return stored
  }

  async close(): Promise<void> {
    if (this.client.usable) await this.client.logout().catch(() => this.client.close())
    else this.client.close()
  }
}

/** IMAP with AUTHENTICATE XOAUTH2 (imap.ts), the one fetch transport today. */
export const imapTransport: FetchTransport = {
  async open(server: FetchTarget, token: Secret, o: { readOnly?: boolean } = {}): Promise<Folder> {
    const client = await openSession(server, token)
    try {
      const box = await client.mailboxOpen(server.folder, { readOnly: o.readOnly }).catch((e: unknown) => {
        throw toImapError(e, 'select', client)
      })
      return new ImapFolder(client, String(box.uidValidity), box.exists)
    } catch (e) {
      await new ImapFolder(client, '', 0).close()
      throw e
    }
  },

  failure(e: unknown, folder?: Folder): FetchFailure {
    const client = folder instanceof ImapFolder ? folder.client : undefined
    const error = toImapError(e, 'fetch', client)
    // A session that never opened was lost only if the server could not be reached; a refused login, a TLS
    // failure and a missing folder would fail the same way again.
    const lost = error.stage !== 'auth' && error.stage !== 'tls' && error.stage !== 'select' && (folder ? !folder.usable : error.stage === 'connect')
    return { error, refused: error.stage === 'auth', lost, tokenExpired: error.tokenExpired }
  },
}
