import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { boot } from '../../src/boot.ts'
import { loadConfig } from '../../src/config.ts'
import { createLogger } from '../../src/log.ts'
import { buildApp } from '../../src/web/app.ts'
import { createTestDatabase } from '../support/harness.ts'

/**
 * Boot as `mailbridge serve` does with these variables, and ask GET /api/v1/settings with each token: the
 * status each one gets.
 */
async function bootAndAsk(env: Record<string, string>, tokens: string[]): Promise<number[]> {
  const { services } = await boot(loadConfig(env), createLogger('silent'))
  const app = await buildApp(services)
  try {
    const statuses = []
    for (const t of tokens) statuses.push((await app.inject({ method: 'GET', url: '/api/v1/settings', headers: { authorization: `Bearer ${t}` } })).statusCode)
    return statuses
  } finally {
    await app.close()
    await services.database.close()
  }
}

test('bootstrap token: changing MAILBRIDGE_API_TOKEN revokes the previous one; the same one again, or no variable, keeps it; other tokens stay', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailbridge-bootstrap-'))
  const testDb = await createTestDatabase(dir)
  t.after(async () => (await testDb.drop(), rmSync(dir, { recursive: true, force: true })))
  const env = { MAILBRIDGE_DATABASE_URL: testDb.url, MAILBRIDGE_DATA_DIR: dir, MAILBRIDGE_SECRET_KEY: randomBytes(32).toString('base64') }
  const [first, second] = ['bootstrap-first-0123456789', 'bootstrap-second-0123456789']

  const made = await boot(loadConfig(env), createLogger('silent'))
  const { token: other } = await made.services.apiTokens.create({ name: 'billing app', scopes: ['admin'] })
  await made.services.database.close()

  assert.deepEqual(await bootAndAsk({ ...env, MAILBRIDGE_API_TOKEN: first }, [first, other]), [200, 200])
  assert.deepEqual(await bootAndAsk({ ...env, MAILBRIDGE_API_TOKEN: first }, [first]), [200], 'a restart with the same token keeps it')
  assert.deepEqual(await bootAndAsk({ ...env, MAILBRIDGE_API_TOKEN: second }, [second, first, other]), [200, 401, 200])
  // A node started without the variable (a worker, `rotate-key`'s shell) must not lock the web nodes out.
  assert.deepEqual(await bootAndAsk(env, [second, first]), [200, 401])
})

test('bootstrap token: it is an admin token, and one revoked through the API stays revoked when the node restarts with it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailbridge-bootstrap-'))
  const testDb = await createTestDatabase(dir)
  t.after(async () => (await testDb.drop(), rmSync(dir, { recursive: true, force: true })))
  const token = 'bootstrap-revoked-0123456789'
  const env = { MAILBRIDGE_DATABASE_URL: testDb.url, MAILBRIDGE_DATA_DIR: dir, MAILBRIDGE_SECRET_KEY: randomBytes(32).toString('base64'), MAILBRIDGE_API_TOKEN: token }

  const { services } = await boot(loadConfig(env), createLogger('silent'))
  const [bootstrap] = await services.apiTokens.list()
  assert.deepEqual([bootstrap?.name, bootstrap?.scopes, bootstrap?.server_ids], ['MAILBRIDGE_API_TOKEN', ['admin'], null])
  await services.apiTokens.revoke(bootstrap!.id)
  await services.database.close()

  assert.deepEqual(await bootAndAsk(env, [token]), [401])
})
