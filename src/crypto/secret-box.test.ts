import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import { test } from 'node:test'
import { SecretBox } from './secret-box.ts'
import { Secret } from './secret.ts'

test('SecretBox: seals with AES-256-GCM, opens only in the same context and with a known key', () => {
  const k1 = randomBytes(32)
  const box = new SecretBox([k1])
  const sealed = box.seal(new Secret('refresh-token-value'), 'credentials.refresh_token')
  assert.match(sealed, /^v1:[0-9a-f]{8}:/)
  assert.ok(!sealed.includes('refresh-token-value'))
  assert.equal(box.open(sealed, 'credentials.refresh_token').reveal(), 'refresh-token-value')
  assert.throws(() => box.open(sealed, 'credentials.access_token'), 'the context is bound')
  assert.throws(() => new SecretBox([randomBytes(32)]).open(sealed, 'credentials.refresh_token'), /does not have/)
  const rotated = new SecretBox([randomBytes(32), k1])
  assert.equal(rotated.open(sealed, 'credentials.refresh_token').reveal(), 'refresh-token-value', 'old keys still open during rotation')
  const tampered = sealed.slice(0, -4) + (sealed.endsWith('AAAA') ? 'BBBB' : 'AAAA')
  assert.throws(() => box.open(tampered, 'credentials.refresh_token'))
})

test('Secret: never shows its value in JSON, strings or inspection', () => {
  const s = new Secret('hunter2')
  assert.equal(JSON.stringify({ s }), '{"s":"[redacted]"}')
  assert.equal(`${s}`, '[redacted]')
  assert.ok(!inspect({ s }).includes('hunter2'))
})
