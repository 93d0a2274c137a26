import assert from 'node:assert/strict'
import { test } from 'node:test'
import { backoffMs } from './backoff.ts'

test('backoffMs(): grows exponentially from the base, is capped, and jitters within ±20 %', () => {
  const q = { retryBaseMs: 1000, retryMaxMs: 10_000 }
  assert.equal(backoffMs(1, q, () => 0.5), 1000)
  assert.equal(backoffMs(3, q, () => 0.5), 4000)
  assert.equal(backoffMs(20, q, () => 0.5), 10_000)
  assert.equal(backoffMs(1, q, () => 0), 800)
  assert.equal(backoffMs(1, q, () => 1), 1200)
})

test('backoffMs(): attempt 0 (nothing tried yet) waits the base, not half of it', () => {
  assert.equal(backoffMs(0, { retryBaseMs: 1000, retryMaxMs: 10_000 }, () => 0.5), 1000)
})
