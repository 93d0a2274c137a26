import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Fetcher } from '../../src/incoming/fetcher.ts'
import { dovecotAvailable } from '../support/dovecot.ts'
import { startMailroom } from '../support/mailroom.ts'
import { ALICE } from '../support/world.ts'

const mail = (i: number) => `From: bob@fabrikam.com\r\nTo: ${ALICE}\r\nSubject: Two nodes ${i}\r\nMessage-ID: <two-${i}@fabrikam.com>\r\n\r\nBody ${i}\r\n`

test('fetch: two nodes fetching one server at once take turns through its lease; every message is stored once', { skip: !dovecotAvailable() && 'Dovecot is not installed' }, async (t) => {
  const room = await startMailroom()
  t.after(room.close)
  const server = await room.confirmedServer()
  await room.dovecot.seedMany(ALICE, Array.from({ length: 300 }, (_, i) => mail(i)))
  const s = room.mb.services
  // A second node: its own Fetcher on the same database, as a `serve --role worker` elsewhere would have.
  const other = new Fetcher({ database: s.database, credentials: s.credentials, servers: s.incomingServers, webhooks: s.webhooks, parser: s.parser, log: s.log, config: s.config.fetch })
  const [a, b] = await Promise.all([s.fetcher.fetch(server.id), other.fetch(server.id)])
  assert.ok(a && b)
  assert.equal(a.stored + b.stored, 300, 'the two runs together stored each message once')
  assert.ok(a.stored === 0 || b.stored === 0 || a.fetched + b.fetched === 300, 'the second run only saw what the first had not stored')
  assert.equal(a.duplicates + b.duplicates, 0, 'no run downloaded what the other stored')
  const stored = await s.database.db.selectFrom('messages').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  assert.equal(Number(stored.n), 300)
})
