import assert from 'node:assert/strict'
import { test } from 'node:test'
import { outlook } from './providers.ts'
import { processTokenResponse, ProviderError } from './protocol.ts'

const msError = (status: number, error: string, code: number, text: string) =>
  new Response(JSON.stringify({ error, error_description: `AADSTS${code}: ${text}\r\nTrace ID: x\r\nCorrelation ID: y\r\nTimestamp: 2026-11-27 10:00:00Z`, error_codes: [code] }), { status })

test('processTokenResponse: maps AADSTS codes to an admin action and a reconnect flag', async () => {
  const cases: Array<[Response, RegExp, boolean]> = [
    [msError(401, 'invalid_client', 7000222, 'The provided client secret keys for app are expired.'), /Client Secret has expired/, false],
    [msError(401, 'invalid_client', 7000215, 'Invalid client secret provided.'), /Value, not its Secret ID/, false],
    [msError(400, 'invalid_grant', 700082, 'The refresh token has expired due to inactivity.'), /90 days/, true],
    [msError(400, 'invalid_grant', 50173, 'The provided grant has expired due to it being revoked.'), /revoked/, true],
    [msError(400, 'invalid_grant', 99999, 'Something new.'), /Reconnect/, true],
  ]
  for (const [res, action, reconnect] of cases) {
    const e = await processTokenResponse(outlook, res).then(() => undefined, (x: unknown) => x)
    assert.ok(e instanceof ProviderError)
    assert.match(e.message, action)
    assert.equal(e.reconnect, reconnect)
    assert.ok(!e.message.includes('Trace ID'), 'only the first line of the description is shown')
  }
})

test('processTokenResponse: reads expires_in and keeps the old refresh token when none comes back', async () => {
  const { Secret } = await import('../crypto/secret.ts')
  const ok = new Response(JSON.stringify({ token_type: 'Bearer', access_token: 'at', expires_in: 4242, scope: 'a b' }), { status: 200 })
  const t = await processTokenResponse(outlook, ok, new Secret('old-rt'))
  assert.equal(t.refreshToken?.reveal(), 'old-rt')
  assert.ok(Math.abs(t.expiresAt.getTime() - Date.now() - 4242_000) < 2000)
  assert.deepEqual(t.scopes, ['a', 'b'])
})
