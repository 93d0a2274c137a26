import assert from 'node:assert/strict'
import { test } from 'node:test'
import { matchesFromFilter, rewriteFrom, selectServer } from './selection.ts'

const server = (id: string, from_filter: string | null, sequence = 10, username = `${id}@contoso.com`) => ({ id, from_filter, sequence, username })

test('selectServer: exact address, then domain, then no filter, then the first by sequence', () => {
  const servers = [server('dom', 'contoso.com', 5), server('alice', 'alice@contoso.com', 20), server('open', null, 30), server('other', 'fabrikam.com', 1)]
  assert.equal(selectServer(servers, 'Alice@Contoso.com')?.id, 'alice')
  assert.equal(selectServer(servers, 'bob@contoso.com')?.id, 'dom')
  assert.equal(selectServer(servers, 'carol@example.org')?.id, 'open')
  assert.equal(selectServer([server('b', 'b.com', 2), server('a', 'a.com', 1)], 'x@c.com')?.id, 'a')
  assert.equal(selectServer([], 'x@c.com'), undefined)
})

test('matchesFromFilter: lists, case, and no subdomain matching', () => {
  const s = { from_filter: 'alice@contoso.com, fabrikam.com' }
  assert.ok(matchesFromFilter(s, 'ALICE@contoso.com'))
  assert.ok(matchesFromFilter(s, 'anyone@fabrikam.com'))
  assert.ok(!matchesFromFilter(s, 'bob@contoso.com'))
  assert.ok(!matchesFromFilter(s, 'x@sub.fabrikam.com'))
  assert.ok(matchesFromFilter({ from_filter: null }, 'x@y.com'))
})

test('rewriteFrom: mail.force.smtp.from wins, keeps the name, and the original address becomes Reply-To', () => {
  const s = server('alice', 'alice@contoso.com')
  const r = rewriteFrom(s, { name: 'Bob Sales', address: 'bob@erp.example' }, undefined, 'alice@contoso.com')
  assert.deepEqual(r.from, { name: 'Bob Sales', address: 'alice@contoso.com' })
  assert.deepEqual(r.replyTo, { name: 'Bob Sales', address: 'bob@erp.example' })
  assert.equal(r.envelopeFrom, 'alice@contoso.com')
  const given = rewriteFrom(s, { name: 'Bob', address: 'bob@erp.example' }, { name: '', address: 'support@erp.example' }, 'alice@contoso.com')
  assert.equal(given.replyTo?.address, 'support@erp.example', 'an explicit Reply-To is kept')
})

test('rewriteFrom: a sender outside the from_filter leaves from the server address; a matching one is untouched', () => {
  const s = server('alice', 'alice@contoso.com')
  const r = rewriteFrom(s, { name: 'Shop', address: 'noreply@shop.example' }, undefined, undefined)
  assert.deepEqual(r.from, { name: 'Shop', address: 'alice@contoso.com' })
  assert.equal(r.replyTo?.address, 'noreply@shop.example')
  const same = rewriteFrom(s, { name: 'Alice', address: 'Alice@contoso.com' }, undefined, undefined)
  assert.equal(same.from.address, 'Alice@contoso.com')
  assert.equal(same.replyTo, undefined)
})
