import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Secret } from '../crypto/secret.ts'
import { createLogger } from '../log.ts'
import { MailbridgeError } from '../errors.ts'
import { outlook } from './providers.ts'
import { useToken, type TokenSource, type TokenUse } from './token-use.ts'

class Refused extends Error {}

/**
 * A credential store that hands out numbered tokens: a refresh (a call presenting the refused token) gives the
 * next one, unless `refreshFails` says the provider refuses. It records every call, as the real service's
 * database would.
 */
function source(o: { refreshFails?: boolean } = {}) {
  const calls: string[] = []
  let n = 1
  const credentials: TokenSource = {
    async accessToken(_p, _a, q = {}) {
      calls.push(`token${q.rejected ? ` rejected=${q.rejected.reveal()}` : ''}${q.renew ? ' renew' : ''}`)
      if (q.rejected && o.refreshFails) throw new MailbridgeError('token_error', { message: 'the refresh token was revoked' })
      if (q.rejected || q.renew) n++
      return new Secret(`t${n}`)
    },
    async recordUseSuccess() {
      calls.push('success')
    },
    async recordUseFailure(_p, _a, message) {
      calls.push(`failure: ${message}`)
    },
  }
  return { credentials, calls }
}

const use = (credentials: TokenSource, accepts: (token: string) => boolean, more: Partial<TokenUse<string>> = {}): Promise<string> =>
  useToken({
    credentials,
    provider: outlook,
    account: 'ada@contoso.example',
    log: createLogger('silent'),
    peer: 'smtp.test:587',
    async attempt(token) {
      if (!accepts(token.reveal())) throw new Refused(`535 5.7.3 ${token.reveal()} refused`)
      return `sent with ${token.reveal()}`
    },
    refused: (e) => e instanceof Refused,
    explain: (e) => `smtp.test:587 refused the token: ${(e as Error).message}`,
    ...more,
  })

test('useToken(): an accepted token is used once and the success recorded', async () => {
  const { credentials, calls } = source()
  assert.equal(await use(credentials, () => true), 'sent with t1')
  assert.deepEqual(calls, ['token', 'success'])
})

test('useToken(): a refused token is refreshed once, presenting the refused one, and the retry succeeds', async () => {
  const { credentials, calls } = source()
  assert.equal(await use(credentials, (t) => t !== 't1'), 'sent with t2')
  assert.deepEqual(calls, ['token', 'token rejected=t1', 'success'])
})

test('useToken(): a refreshed token refused too is recorded as a use failure, and the refusal reaches the caller', async () => {
  const { credentials, calls } = source()
  await assert.rejects(use(credentials, () => false), (e: unknown) => e instanceof Refused && /t2 refused/.test(e.message))
  assert.deepEqual(calls, ['token', 'token rejected=t1', 'failure: smtp.test:587 refused the token: 535 5.7.3 t2 refused'])
})

test('useToken(): recordFailure false (Test Connection) leaves the credential as it was after a second refusal', async () => {
  const { credentials, calls } = source()
  await assert.rejects(use(credentials, () => false, { recordFailure: false }), (e: unknown) => e instanceof Refused)
  assert.deepEqual(calls, ['token', 'token rejected=t1'])
})

test('useToken(): a refresh that fails reaches the caller as the token error, and nothing is recorded as a use', async () => {
  const { credentials, calls } = source({ refreshFails: true })
  await assert.rejects(use(credentials, (t) => t !== 't1'), (e: unknown) => e instanceof MailbridgeError && e.code === 'token_error')
  assert.deepEqual(calls, ['token', 'token rejected=t1'])
})

test('useToken(): a failure that is not a refusal is not retried and not recorded', async () => {
  const { credentials, calls } = source()
  const unreachable = new Error('connect ECONNREFUSED 127.0.0.1:587')
  await assert.rejects(
    use(credentials, () => true, {
      attempt: async () => {
        throw unreachable
      },
    }),
    (e: unknown) => e === unreachable,
  )
  assert.deepEqual(calls, ['token'])
})

test('useToken(): renew asks for a new token first (Test Connection); rejected passes a token known bad', async () => {
  const renewed = source()
  assert.equal(await use(renewed.credentials, () => true, { renew: true }), 'sent with t2')
  assert.deepEqual(renewed.calls, ['token renew', 'success'])
  const known = source()
  await use(known.credentials, () => true, { rejected: new Secret('t0') })
  assert.deepEqual(known.calls, ['token rejected=t0', 'success'])
})
