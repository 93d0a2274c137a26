import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { loadConfig, type Config } from '../../src/config.ts'
import { migrate, openDatabase } from '../../src/db/index.ts'
import { createLogger } from '../../src/log.ts'
import { createServices, type Services } from '../../src/services.ts'
import { buildApp } from '../../src/web/app.ts'

export const API_TOKEN = 'test-api-token-0123456789abcdef'

export interface Harness {
  app: FastifyInstance
  services: Services
  config: Config
  key: Buffer
  dir: string
  /** Every log line written, for "no secret is ever logged" checks. */
  logs: string[]
  api(method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, body?: unknown): Promise<LightMyRequestResponse>
  close(): Promise<void>
}

/**
 * A Mailbridge on a fresh database in a temporary folder, with an API token and captured logs. The database
 * is SQLite unless MAILBRIDGE_TEST_DATABASE_URL points at PostgreSQL.
 */
export async function startMailbridge(o: { env?: Record<string, string>; dir?: string; key?: Buffer } = {}): Promise<Harness> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'mailbridge-test-'))
  const key = o.key ?? randomBytes(32)
  const config = loadConfig({
    MAILBRIDGE_DATABASE_URL: `sqlite:${join(dir, 'mailbridge.db')}`,
    MAILBRIDGE_DATA_DIR: dir,
    MAILBRIDGE_BASE_URL: 'http://localhost:8080',
    ...o.env,
  })
  const logs: string[] = []
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(chunk.toString())
      cb()
    },
  })
  const log = createLogger('debug', sink)
  const database = openDatabase(config.databaseUrl)
  await migrate(database.db)
  const services = createServices(config, database, log, [key])
  await services.apiTokens.ensure(API_TOKEN, 'tests')
  const app = await buildApp(services)
  await app.ready()
  return {
    app,
    services,
    config,
    key,
    dir,
    logs,
    api: (method, url, body) =>
      app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${API_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        payload: body === undefined ? undefined : JSON.stringify(body),
      }),
    close: async () => {
      await app.close()
      await database.close()
      if (!o.dir) rmSync(dir, { recursive: true, force: true })
    },
  }
}
