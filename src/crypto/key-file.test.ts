import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { ConfigError, loadConfig } from '../config.ts'
import { KEY_FILE, loadOrCreateKeys } from './key-file.ts'

test('keyring: MAILBRIDGE_SECRET_KEY takes one key or "new,old" (base64 or hex), the first one seals; a repeated key counts once', () => {
  const [a, b] = [randomBytes(32), randomBytes(32)]
  assert.deepEqual(loadConfig({ MAILBRIDGE_SECRET_KEY: a.toString('base64') }).secretKeys, [a])
  assert.deepEqual(loadConfig({ MAILBRIDGE_SECRET_KEY: `${b.toString('hex')}, ${a.toString('base64')},${b.toString('base64')}` }).secretKeys, [b, a])
  assert.throws(() => loadConfig({ MAILBRIDGE_SECRET_KEY: `${a.toString('base64')},short` }), ConfigError)
})

test('keyring: secret.key is generated once with mode 0600, holds one key per line, and is never created by rotate-key', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailbridge-keys-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  assert.throws(() => loadOrCreateKeys(dir, undefined, { create: false }), /no key/)
  const first = loadOrCreateKeys(dir)
  assert.equal(first.created, true)
  assert.equal(statSync(join(dir, KEY_FILE)).mode & 0o777, 0o600)
  const next = randomBytes(32)
  writeFileSync(join(dir, KEY_FILE), `${next.toString('base64')}\n${first.keys[0]!.toString('base64')}\n`)
  assert.deepEqual(loadOrCreateKeys(dir), { keys: [next, first.keys[0]], created: false })
})

test('config: an admin password under 12 characters, or an API token under 16 that would never be accepted, stops the start with a clear message', () => {
  assert.throws(() => loadConfig({ MAILBRIDGE_ADMIN_PASSWORD: 'short-pass1' }), /at least 12 characters/)
  assert.equal(loadConfig({ MAILBRIDGE_ADMIN_PASSWORD: 'long-enough-12' }).adminPassword, 'long-enough-12')
  assert.throws(() => loadConfig({ MAILBRIDGE_API_TOKEN: 'too-short-token' }), /16 to 200 characters/)
})
