/**
 * Fault suite — IMAP sessions that end badly (issue 7 §1; research B3). A real Dovecot behind a TLS front
 * (test/support/imap-front.ts) that cuts a session mid-FETCH after N bytes, or ends it as Exchange does when the
 * token runs out (`* BYE Session invalidated - AccessTokenExpired`). Nothing is lost and nothing is stored twice:
 * the stored count equals the seeded count, each UID once, and every message ends `\Seen`.
 *
 * Already covered elsewhere: a session kicked after a batch with the token expired (Dovecot's BYE, then a refused
 * login and one refresh) in test/incoming/fetch.test.ts; SIGKILL between fetch and commit in
 * test/process/fetch-crash.test.ts.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { dovecotAvailable } from '../support/dovecot.ts'
import { startImapFront, type ImapFront } from '../support/imap-front.ts'
import { rfc822, startMailroom, type Mailroom } from '../support/mailroom.ts'
import { ALICE } from '../support/world.ts'

const skip = dovecotAvailable() ? false : 'Dovecot is not installed: run .ci/install-peers.sh'
const SEEDED = 120

/** A mailroom whose confirmed incoming server reaches Dovecot through the front, with SEEDED messages waiting. */
async function ready(): Promise<{ room: Mailroom; front: ImapFront; serverId: string }> {
  const room = await startMailroom({ env: { MAILBRIDGE_FETCH_BATCH: '20' } })
  const front = await startImapFront({ host: room.dovecot.host, port: room.dovecot.imapPort })
  const server = await room.confirmedServer({ body: { host: front.host, port: front.port } })
  // ~3 KB each, so a cut at some tens of KB falls inside the FETCH stream, most likely inside a literal.
  const body = `${'Lorem ipsum dolor sit amet, consectetur adipiscing elit. '.repeat(50)}\r\n`
  await room.dovecot.seedMany(ALICE, Array.from({ length: SEEDED }, (_, i) => rfc822({ subject: `f${i}`, messageId: `<f-${i}@fabrikam.com>`, body })))
  return { room, front, serverId: server.id }
}

/** Stored once each, every seeded message; all `\Seen` in the mailbox. */
async function assertAllOnce(room: Mailroom): Promise<void> {
  const rows = await room.mb.services.database.db.selectFrom('messages').select(['uid', 'message_id']).execute()
  assert.equal(rows.length, SEEDED, 'stored = seeded')
  assert.equal(new Set(rows.map((r) => r.uid)).size, SEEDED, 'each UID once')
  assert.equal(new Set(rows.map((r) => r.message_id)).size, SEEDED, 'each Message-ID once')
  const flags = await room.dovecot.flags(ALICE)
  assert.equal(flags.filter((f) => f.flags.includes('\\Seen')).length, SEEDED, 'every message \\Seen')
}

const fetchNow = async (room: Mailroom, id: string) => room.mb.api('POST', `/api/v1/incoming-servers/${id}/fetch`)

test('imap: the connection cut mid-FETCH (no BYE, inside a literal) → reconnect, nothing lost, nothing twice, all \\Seen', { skip }, async (t) => {
  const { room, front, serverId } = await ready()
  t.after(async () => {
    await front.close()
    await room.close()
  })
  const before = front.sessions()
  front.endAfter(150_000)
  const res = await fetchNow(room, serverId)
  assert.equal(res.statusCode, 200, res.body)
  const r = res.json()
  assert.equal(r.stored, SEEDED)
  assert.equal(r.duplicates, 0)
  assert.equal(front.sessions() - before, 2, 'one cut session, one reconnect')
  assert.ok(room.mb.logs.some((l) => l.includes('IMAP session lost; reconnecting')))
  await assertAllOnce(room)
})

test('imap: every session cut (more than the reconnects one fetch makes) → what was committed stays, the rest stays unread; the next fetch completes, nothing twice', { skip }, async (t) => {
  const { room, front, serverId } = await ready()
  t.after(async () => {
    await front.close()
    await room.close()
  })
  // The first session and its 3 reconnects all die after ~80 KB each.
  front.endAfter(80_000, { sessions: 4 })
  const first = await fetchNow(room, serverId)
  assert.equal(first.statusCode, 200, first.body)
  const partial = first.json().stored as number
  assert.ok(partial > 0 && partial < SEEDED, `some batches were committed before the cuts (${partial})`)
  const s = (await room.mb.api('GET', `/api/v1/incoming-servers/${serverId}`)).json()
  assert.ok(s.last_error, 'the failed fetch is shown on the server')
  // Stored messages are \Seen, or will be flagged first thing next time (seen_uid lags); none unstored is \Seen.
  const stored = new Set((await room.mb.services.database.db.selectFrom('messages').select('uid').execute()).map((m) => m.uid))
  for (const f of await room.dovecot.flags(ALICE)) if (f.flags.includes('\\Seen')) assert.ok(stored.has(f.uid), `uid ${f.uid} is \\Seen only once stored`)

  const second = (await fetchNow(room, serverId)).json()
  assert.equal(second.stored, SEEDED - partial)
  assert.equal(second.duplicates, 0)
  await assertAllOnce(room)
})

const BYE = 'Session invalidated - AccessTokenExpired'

/** What the fetch must show after Exchange ended its session for an expired token. */
async function assertFreshTokenOnce(room: Mailroom, refreshesBefore: number): Promise<void> {
  assert.equal(room.ms.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length, refreshesBefore + 1, 'one refresh, for the new session')
  assert.ok(room.mb.logs.some((l) => l.includes('IMAP session lost; reconnecting') && l.includes('"new_token":true') && l.includes('AccessTokenExpired')))
  assert.ok(!room.mb.logs.some((l) => l.includes('token refused')), 'the expired token was not tried again (oauth/token-use.ts logs each refusal)')
  await assertAllOnce(room)
}

const refreshes = (room: Mailroom) => room.ms.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length

test(`imap: \`* BYE ${BYE}\` in the middle of the FETCH stream → a fresh token at once, nothing lost or twice`, { skip }, async (t) => {
  const { room, front, serverId } = await ready()
  t.after(async () => {
    await front.close()
    await room.close()
  })
  const before = refreshes(room)
  // Exchange's token ran out: dead at the identity platform, and the session ended at the next response.
  front.endAfter(150_000, { bye: BYE, onEnd: () => room.ms.expireAccessTokens(ALICE) })
  const res = await fetchNow(room, serverId)
  assert.equal(res.statusCode, 200, res.body)
  assert.equal(res.json().stored, SEEDED)
  assert.equal(res.json().duplicates, 0)
  await assertFreshTokenOnce(room, before)
})

test(`imap: \`* BYE ${BYE}\` answering the STORE of \\Seen → the flags are set in the next session, not counted as set`, { skip }, async (t) => {
  const { room, front, serverId } = await ready()
  t.after(async () => {
    await front.close()
    await room.close()
  })
  const before = refreshes(room)
  let ended = false
  const result = await room.mb.services.fetcher.fetch(serverId, {
    afterBatch: async () => {
      if (ended) return
      ended = true
      // The FETCH stream has gone through already: the next thing the server answers is the STORE.
      room.ms.expireAccessTokens(ALICE)
      front.bye(BYE)
    },
  })
  assert.ok(ended)
  assert.equal(result?.stored, SEEDED)
  assert.equal(result?.duplicates, 0)
  await assertFreshTokenOnce(room, before)
})

test(`imap: \`* BYE ${BYE}\` answering the UID SEARCH for new messages → a fresh token and the fetch goes on, not "nothing new"`, { skip }, async (t) => {
  const { room, front, serverId } = await ready()
  t.after(async () => {
    await front.close()
    await room.close()
  })
  const before = refreshes(room)
  front.byeOn(/UID SEARCH/i, BYE, () => room.ms.expireAccessTokens(ALICE))
  const res = await fetchNow(room, serverId)
  assert.equal(res.statusCode, 200, res.body)
  assert.equal(res.json().stored, SEEDED)
  await assertFreshTokenOnce(room, before)
})
