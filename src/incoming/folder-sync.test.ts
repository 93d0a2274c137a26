import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createLogger } from '../log.ts'
import type { FetchedMessage, Folder, UidSet } from './fetch-transport.ts'
import { FolderSync, type FolderLedger, type SyncMark } from './folder-sync.ts'
import type { FetchResult } from './model.ts'
import { parseOrKeep } from './parse.ts'
import type { BatchOutcome, ParsedMessage } from './store-batch.ts'

// FolderSync against an in-memory folder and ledger. The ledger checks the invariant at every step, so a sync
// that moved the last UID or \Seen past an uncommitted message fails the test where it happens.

const raw = (uid: number) => Buffer.from(`Message-ID: <m${uid}@x>\r\nSubject: ${uid}\r\n\r\nbody ${uid}\r\n`)

/**
 * A mailbox folder: messages by UID, flags, and the faults a real server has. One command at a time, as one IMAP
 * session (imapflow) runs them: a STORE waits for the FETCH stream before it.
 */
class MemoryFolder implements Folder {
  readonly seen = new Set<number>()
  #idle: Promise<void> = Promise.resolve()
  readonly stores: string[] = []
  usable = true
  exists = 0
  /** The session ends after this many more messages streamed (a cut connection). */
  cutAfter = Infinity

  constructor(
    readonly messages: Map<number, Buffer>,
    readonly uidValidity: string,
    private readonly o: { order?: (uids: number[]) => number[]; ledger?: MemoryLedger } = {},
  ) {}

  async listNew(afterUid: number): Promise<number[]> {
    return [...this.messages.keys()].filter((u) => u > afterUid).sort((a, b) => a - b)
  }

  async *fetch(uids: readonly number[]): AsyncIterable<FetchedMessage> {
    const before = this.#idle
    let done!: () => void
    this.#idle = new Promise((r) => (done = r))
    await before
    try {
      for (const uid of this.o.order ? this.o.order([...uids]) : uids) {
        const source = this.messages.get(uid)
        if (!source) continue
        if (this.cutAfter-- <= 0) {
          this.usable = false
          throw new Error('connection cut')
        }
        yield { uid, source }
      }
    } finally {
      done()
    }
  }

  async markSeen(uids: UidSet): Promise<boolean> {
    await this.#idle
    if (!this.usable) throw new Error('session ended')
    const list = 'from' in uids ? [...this.messages.keys()].filter((u) => u >= uids.from && u <= uids.to) : uids
    for (const uid of list) {
      assert.ok(this.o.ledger?.stored.has(uid), `\\Seen set on UID ${uid} before it was committed`)
      this.seen.add(uid)
    }
    this.stores.push('from' in uids ? `${uids.from}:${uids.to}` : uids.join(','))
    return true
  }

  async close(): Promise<void> {
    this.usable = false
  }
}

/** incoming_sync and the messages table, in memory, checking the invariant on every write. */
class MemoryLedger implements FolderLedger {
  mark: SyncMark | undefined
  readonly stored = new Map<number, number>()
  commits = 0
  /** The commit with this number (1-based) fails, as a database error would. */
  failCommit = 0
  folder!: MemoryFolder

  async read() {
    return this.mark && { ...this.mark }
  }

  async restart(uidvalidity: string) {
    this.mark = { uidvalidity, last_uid: 0, seen_uid: 0 }
    this.stored.clear()
  }

  async commit(uidvalidity: string, batch: ParsedMessage[], lastUid: number): Promise<BatchOutcome> {
    if (++this.commits === this.failCommit) throw new Error('disk full')
    let stored = 0
    for (const m of batch) {
      assert.equal(m.parsed.row.message_id, `<m${m.uid}@x>`, 'each message comes with its own parse')
      if (this.stored.has(m.uid)) continue
      this.stored.set(m.uid, this.commits)
      stored++
    }
    for (const uid of this.folder.messages.keys()) if (uid <= lastUid) assert.ok(this.stored.has(uid), `last_uid ${lastUid} passes UID ${uid}, not committed`)
    assert.ok(lastUid >= (this.mark?.last_uid ?? 0), 'last_uid never moves back')
    this.mark = { uidvalidity, last_uid: lastUid, seen_uid: this.mark?.seen_uid ?? 0 }
    return { stored, duplicates: batch.length - stored, keptRaw: [] }
  }

  async seen(uidvalidity: string, uid: number) {
    assert.equal(this.mark?.uidvalidity, uidvalidity)
    assert.ok(uid <= this.mark!.last_uid, `seen_uid ${uid} passes last_uid ${this.mark!.last_uid}`)
    for (const u of this.folder.messages.keys()) if (u <= uid) assert.ok(this.folder.seen.has(u), `seen_uid ${uid} passes UID ${u}, not \\Seen`)
    this.mark!.seen_uid = uid
  }

  async progress() {}
}

const mailbox = (n: number) => new Map(Array.from({ length: n }, (_, i) => [i + 1, raw(i + 1)]))

function sync(folder: MemoryFolder, ledger: MemoryLedger, o: { markSeen?: boolean } = {}) {
  ledger.folder = folder
  const result: FetchResult = { fetched: 0, stored: 0, duplicates: 0, failed: 0, parse_errors: 0 }
  const run = new FolderSync({ folder, ledger, parse: parseOrKeep, markSeen: o.markSeen ?? true, batchSize: 3, log: createLogger('silent'), result, stopping: () => false }).run()
  return { run, result }
}

test('FolderSync: a server streaming each FETCH in reverse UID order, one UID deleted meanwhile: last_uid only moves past committed UIDs, all end stored and \\Seen', async () => {
  const ledger = new MemoryLedger()
  const messages = mailbox(70)
  const folder = new MemoryFolder(messages, '7', { ledger, order: (uids) => uids.reverse() })
  // Listed by UID SEARCH, gone before its FETCH.
  folder.listNew = async (after) => {
    const uids = [...messages.keys()].filter((u) => u > after)
    messages.delete(40)
    return uids
  }
  const { run, result } = sync(folder, ledger)
  await run
  assert.deepEqual(result, { fetched: 69, stored: 69, duplicates: 0, failed: 0, parse_errors: 0 })
  assert.deepEqual(ledger.mark, { uidvalidity: '7', last_uid: 70, seen_uid: 70 })
  assert.equal(folder.seen.size, 69)
  assert.equal(folder.stores.length, 3, 'one STORE per chunk of 30')
})

test('FolderSync: a failed commit stops the sync; last_uid and \\Seen stay where the last good commit left them, and the next sync takes the rest once', async () => {
  const ledger = new MemoryLedger()
  ledger.failCommit = 3
  const first = new MemoryFolder(mailbox(20), '7', { ledger })
  const a = sync(first, ledger)
  await assert.rejects(a.run, /disk full/)
  assert.equal(ledger.mark?.last_uid, 6, 'two batches of 3 committed')
  assert.ok(ledger.mark!.seen_uid <= 6)
  assert.ok([...first.seen].every((u) => u <= 6), 'nothing past the failed commit is \\Seen')
  assert.equal(a.result.stored, 6)

  const second = new MemoryFolder(first.messages, '7', { ledger })
  for (const u of first.seen) second.seen.add(u)
  const b = sync(second, ledger)
  await b.run
  assert.equal(b.result.stored, 14)
  assert.equal(b.result.duplicates, 0, 'nothing committed is fetched again')
  assert.deepEqual(ledger.mark, { uidvalidity: '7', last_uid: 20, seen_uid: 20 })
})

test('FolderSync: a session cut mid-stream keeps what was committed, unflagged; the next session flags that range first, then goes on', async () => {
  const ledger = new MemoryLedger()
  const first = new MemoryFolder(mailbox(50), '7', { ledger })
  // Into the second chunk: the first chunk's STORE would follow this FETCH, which dies.
  first.cutAfter = 40
  const a = sync(first, ledger)
  await assert.rejects(a.run, /connection cut/)
  const { last_uid, seen_uid } = ledger.mark!
  assert.ok(last_uid >= 30 && last_uid <= 40, `committed up to the cut (${last_uid})`)
  assert.equal(seen_uid, 0, 'the STORE never went out')
  assert.equal(first.seen.size, 0)

  const second = new MemoryFolder(first.messages, '7', { ledger })
  const b = sync(second, ledger)
  await b.run
  assert.equal(second.stores[0], `1:${last_uid}`, 'the committed, unflagged range is flagged first')
  assert.equal(b.result.stored, 50 - last_uid)
  assert.deepEqual(ledger.mark, { uidvalidity: '7', last_uid: 50, seen_uid: 50 })
  assert.equal(second.seen.size, 50)
})

test('FolderSync: a new UIDVALIDITY voids every known UID: last_uid and seen_uid start over and the folder is read again', async () => {
  const ledger = new MemoryLedger()
  ledger.mark = { uidvalidity: '7', last_uid: 90, seen_uid: 90 }
  const folder = new MemoryFolder(mailbox(5), '8', { ledger })
  const { run, result } = sync(folder, ledger)
  await run
  assert.equal(result.fetched, 5)
  assert.deepEqual(ledger.mark, { uidvalidity: '8', last_uid: 5, seen_uid: 5 })
})

test('FolderSync: with mark_seen off, nothing is flagged and seen_uid stays', async () => {
  const ledger = new MemoryLedger()
  const folder = new MemoryFolder(mailbox(8), '7', { ledger })
  await sync(folder, ledger, { markSeen: false }).run
  assert.deepEqual(ledger.mark, { uidvalidity: '7', last_uid: 8, seen_uid: 0 })
  assert.deepEqual(folder.stores, [])
})
