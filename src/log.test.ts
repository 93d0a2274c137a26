import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { test } from 'node:test'
import { createLogger, errorCode, maskUrl } from './log.ts'

test('maskUrl: secret-named query parameters are masked whatever their case or encoding; the rest stays as it came', () => {
  assert.equal(maskUrl('/microsoft_outlook/confirm?code=0.AXo-abc&state=s3cr3t&session_state=x'), '/microsoft_outlook/confirm?code=[redacted]&state=[redacted]&session_state=x')
  assert.equal(maskUrl('/x?Access_Token=a&%63ode=b&limit=10'), '/x?Access_Token=[redacted]&%63ode=[redacted]&limit=10')
  assert.equal(maskUrl('/api/v1/mail?state=sent'), '/api/v1/mail?state=[redacted]', 'a harmless "state" filter is masked too: better than a guess')
  assert.equal(maskUrl('/healthz'), '/healthz')
})

test('logger: a request logged with fastify\'s { req } carries the masked URL', () => {
  const lines: string[] = []
  const log = createLogger('info', new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }))
  log.info({ req: { method: 'GET', url: '/microsoft_outlook/confirm?code=abc123&state=def456', ip: '127.0.0.1' } }, 'incoming request')
  assert.match(lines[0]!, /"url":"\/microsoft_outlook\/confirm\?code=\[redacted\]&state=\[redacted\]"/)
  assert.doesNotMatch(lines[0]!, /abc123|def456/)
})

test('logger: a database refusal logged with errorCode() names its code, which { err } alone hides (code is a redacted field)', () => {
  const lines: string[] = []
  const log = createLogger('info', new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }))
  const e = Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY_SNAPSHOT' })
  log.error({ err: e, error_code: errorCode(e) }, 'mail worker pass failed; retrying')
  assert.match(lines[0]!, /"error_code":"SQLITE_BUSY_SNAPSHOT"/)
  assert.match(lines[0]!, /"code":"\[redacted\]"/, 'the reason for error_code: err.code is masked')
  assert.equal(errorCode(new Error('no code')), undefined)
})
