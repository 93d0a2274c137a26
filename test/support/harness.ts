import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import pg from 'pg'
import { loadConfig, type Config } from '../../src/config.ts'
import { migrate, openDatabase } from '../../src/db/index.ts'
import { createLogger } from '../../src/log.ts'
import { createServices, type Services } from '../../src/services.ts'
import { buildApp } from '../../src/web/app.ts'

export const API_TOKEN = 'test-api-token-0123456789abcdef'

/** MAILBRIDGE_TRUSTED_HOSTS of every test Mailbridge: the address the test peers listen on (127.0.0.2 stays untrusted, for rogue peers). */
export const PEER_HOSTS = '127.0.0.1'

/**
 * A fresh database for one test: a SQLite file in `dir`, or, when MAILBRIDGE_TEST_DATABASE_URL is a PostgreSQL
 * URL, a schema of its own in that database, dropped afterwards.
 */
export async function createTestDatabase(dir: string): Promise<{ url: string; drop(): Promise<void> }> {
  const base = process.env.MAILBRIDGE_TEST_DATABASE_URL
  if (!base?.startsWith('postgres')) return { url: `sqlite:${join(dir, 'mailbridge.db')}`, drop: async () => {} }
  const schema = `mbt_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: base })
  await admin.connect()
  await admin.query(`CREATE SCHEMA ${schema}`)
  await admin.end()
  const url = `${base}${base.includes('?') ? '&' : '?'}schema=${schema}`
  return {
    url,
    drop: async () => {
      // Under test/run.ts the run's database goes at the end: dropping a schema now would break the introspection
      // of the files running beside this one (see run.ts).
      if (process.env.MAILBRIDGE_TEST_KEEP_SCHEMAS) return
      const c = new pg.Client({ connectionString: base })
      await c.connect()
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
      await c.end()
    },
  }
}

export interface Harness {
  app: FastifyInstance
  services: Services
  config: Config
  key: Buffer
  dir: string
  /** Every log line written, for "no secret is ever logged" checks. */
  logs: string[]
  api(method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, body?: unknown): Promise<LightMyRequestResponse>
  /** Closes the app; removes the database and folder unless the caller gave the folder (it may reuse them). */
  close(): Promise<void>
  /** Removes the test database (a PostgreSQL schema; SQLite files go with their folder). */
  dropDatabase(): Promise<void>
}

/**
 * A Mailbridge on a fresh database in a temporary folder, with an API token and captured logs. The database
 * is SQLite unless MAILBRIDGE_TEST_DATABASE_URL points at PostgreSQL.
 */
export async function startMailbridge(o: { env?: Record<string, string>; dir?: string; key?: Buffer } = {}): Promise<Harness> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'mailbridge-test-'))
  const key = o.key ?? randomBytes(32)
  const testDb = await createTestDatabase(dir)
  const config = loadConfig({
    MAILBRIDGE_DATABASE_URL: testDb.url,
    MAILBRIDGE_DATA_DIR: dir,
    MAILBRIDGE_BASE_URL: 'http://localhost:8080',
    // Every peer (identity emulator, SMTP peer, Dovecot, webhook receiver) listens on 127.0.0.1: trust it, and only it.
    MAILBRIDGE_TRUSTED_HOSTS: PEER_HOSTS,
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
  await migrate(database.db, database.schema)
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
    dropDatabase: () => testDb.drop(),
    close: async () => {
      await app.close()
      await database.close()
      if (!o.dir) {
        await testDb.drop()
        rmSync(dir, { recursive: true, force: true })
      }
    },
  }
}
