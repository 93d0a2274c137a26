import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { formatMailbox, isEmailAddress, parseMailbox } from './mail-address.ts'

// Properties (fast-check): generated inputs, shrunk to the smallest counterexample when one fails.

const ATEXT = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&\'*+/=?^_`{|}~-', 'é', 'ß', 'ü', 'ж', 'δ', '中', 'ا']
const LETTERS = [...'abcdefghijklmnopqrstuvwxyz0123456789', 'ü', 'é', 'ж', '中']
const atom = (chars: string[], max: number) => fc.array(fc.constantFrom(...chars), { minLength: 1, maxLength: max }).map((a) => a.join(''))
const label = fc
  .tuple(fc.constantFrom(...LETTERS), fc.array(fc.constantFrom(...LETTERS, '-'), { maxLength: 20 }), fc.constantFrom(...LETTERS))
  .map(([a, mid, z]) => a + mid.join('') + z)
/** RFC 5322 dot-atom local parts (with RFC 6531 UTF-8) at IDN or punycode domains. */
const address = fc
  .tuple(fc.array(atom(ATEXT, 10), { minLength: 1, maxLength: 4 }), fc.array(label, { minLength: 1, maxLength: 3 }), fc.constantFrom('com', 'de', 'xn--p1ai', 'рф', 'example'))
  .map(([local, labels, tld]) => `${local.join('.')}@${[...labels, tld].join('.')}`)
  .filter((a) => a.length <= 254 && a.indexOf('@') <= 64)
/** Display names as people write them: quotes, commas, backslashes, angle brackets, UTF-8, emoji. */
const name = fc.string({ unit: fc.constantFrom('a', 'Z', ' ', '"', ',', ';', ':', '\\', '<', '>', '@', '(', ')', '.', "'", 'ü', 'ж', '中', '—', '😀', '\t'), maxLength: 40 })
const breaks = fc.constantFrom('\r', '\n', '\r\n', '\0')

test('isEmailAddress/parseMailbox: every generated RFC 5322/6531 address is accepted as a bare mailbox', () => {
  fc.assert(
    fc.property(address, (a) => {
      assert.ok(isEmailAddress(a), a)
      assert.deepEqual(parseMailbox(a), { name: '', address: a })
    }),
    { numRuns: 500 },
  )
})

test('formatMailbox → parseMailbox: any display name (quotes, commas, backslashes, UTF-8) survives with its address', () => {
  fc.assert(
    fc.property(name, address, (n, a) => {
      assert.deepEqual(parseMailbox(formatMailbox({ name: n, address: a })), { name: n.trim(), address: a })
    }),
    { numRuns: 1000 },
  )
})

test('parseMailbox: what it accepts round-trips through formatMailbox unchanged, with an address isEmailAddress accepts', () => {
  const anything = fc.oneof(fc.string({ maxLength: 60 }), fc.tuple(name, address).map(([n, a]) => `${n} <${a}>`), fc.tuple(name, address).map(([n, a]) => `"${n}" <${a}>`))
  fc.assert(
    fc.property(anything, (s) => {
      const m = parseMailbox(s)
      if (!m) return
      assert.ok(isEmailAddress(m.address))
      assert.deepEqual(parseMailbox(formatMailbox(m)), m)
    }),
    { numRuns: 2000 },
  )
})

test('parseMailbox/isEmailAddress: nothing with a CR, LF or NUL anywhere ever passes', () => {
  fc.assert(
    fc.property(fc.oneof(name, address, fc.string()), breaks, fc.oneof(name, address, fc.string()), fc.boolean(), (before, br, after, angle) => {
      const s = angle ? `${before}${br}${after} <alice@contoso.com>` : `${before}${br}${after}`
      assert.equal(parseMailbox(s), undefined, JSON.stringify(s))
      assert.equal(isEmailAddress(`${before}${br}${after}`), false)
    }),
    { numRuns: 1000 },
  )
})
