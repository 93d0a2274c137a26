import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { EXPLAINED_AADSTS } from '../../src/oauth/aadsts.ts'

// The README's Troubleshooting section is where an admin looks up a code the UI showed: every code the code
// explains must be there. These tests read the explanations from the sources, so a new one fails here until the
// README lists it.
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const source = (path: string) => readFileSync(`${ROOT}${path}`, 'utf8')

const readme = source('README.md')
const start = readme.indexOf('\n## Troubleshooting\n')
const troubleshooting = readme.slice(start, readme.indexOf('\n## ', start + 1))

test('README Troubleshooting lists every AADSTS code Mailbridge explains', () => {
  assert.ok(start >= 0, 'README.md has a "## Troubleshooting" section')
  assert.ok(EXPLAINED_AADSTS.length > 10)
  const missing = EXPLAINED_AADSTS.filter((code) => !new RegExp(`\\bAADSTS${code}\\b`).test(troubleshooting))
  assert.deepEqual(missing, [], 'AADSTS codes explained in src/oauth/aadsts.ts but not listed in the README')
})

test('README Troubleshooting lists every Google token error Mailbridge explains', () => {
  const errors = [...source('src/oauth/google-errors.ts').matchAll(/case '([a-z_]+)':/g)].map((m) => m[1]!)
  assert.ok(errors.length >= 4)
  assert.deepEqual(errors.filter((e) => !troubleshooting.includes(`\`${e}\``)), [])
})

// Where SMTP and IMAP replies are turned into verdicts and advice.
const REPLY_SOURCES = ['src/outgoing/transport.ts', 'src/outgoing/service.ts', 'src/outgoing/smtp-probe.ts', 'src/incoming/service.ts', 'src/incoming/imap.ts', 'src/incoming/fetcher.ts']

test('README Troubleshooting lists every SMTP status code and IMAP reply Mailbridge explains', () => {
  const text = REPLY_SOURCES.map(source).join('\n')
  // RFC 3463 enhanced status codes of failures (4.x.x, 5.x.x), as written in strings, comments and regexes.
  const codes = new Set([...text.matchAll(/\b([45])\\?\.(\d)\\?\.(\d+)\b/g)].map((m) => `${m[1]}.${m[2]}.${m[3]}`))
  assert.ok(codes.has('5.7.139'), 'the SMTP AUTH disabled reply is among the codes read from the sources')
  assert.deepEqual([...codes].filter((c) => !troubleshooting.includes(c)), [], 'status codes explained in the sources but not in the README')
  const replies = ['AccessTokenExpired', 'authenticated but not connected', 'NO AUTHENTICATE failed']
  for (const reply of replies) {
    assert.match(text, new RegExp(reply, 'i'), `the sources still explain "${reply}"`)
    assert.match(troubleshooting, new RegExp(reply, 'i'), `README Troubleshooting explains "${reply}"`)
  }
})
