import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { base64DecodedSize } from './base64.ts'

test('base64DecodedSize: the decoded length of any base64, wrapped or not, padded or not', () => {
  for (let n = 0; n < 40; n++) {
    const b64 = randomBytes(n).toString('base64')
    assert.equal(base64DecodedSize(b64), n)
    assert.equal(base64DecodedSize(b64.replace(/.{8}/g, '$&\r\n')), n)
  }
})

test('base64DecodedSize: refuses other characters, misplaced or extra padding and a length that is not a multiple of 4', () => {
  for (const bad of ['not base64!', 'aGk', 'aGk==', 'a===', 'aG=k', '=aGk', 'aGk=aGk=', 'aGk-', 'aGk_', 'aGké']) assert.equal(base64DecodedSize(bad), undefined, bad)
  assert.equal(base64DecodedSize(''), 0)
})

test('base64DecodedSize: 50 million characters (a 37 MB attachment) without exhausting the stack', () => {
  const b64 = Buffer.alloc(37_500_000, 0xa5).toString('base64')
  assert.equal(base64DecodedSize(b64), 37_500_000)
})
