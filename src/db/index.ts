import { dirname } from 'node:path'
import SQLite from 'better-sqlite3'
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type Transaction } from 'kysely'
import pg from 'pg'
import { createPrivateFile, makePrivateFolder } from '../data-folder.ts'
import { migrations } from './migrations/index.ts'
import type { DB } from './schema.ts'

export type { DB }
export type Tx = Transaction<DB>

/** The few ways the two dialects differ that are not SQL (see style.md §8). */
export interface Traits {
  dialect: 'sqlite' | 'postgres'
  /** `FOR UPDATE SKIP LOCKED` exists; on SQLite the one writer lock already serialises claims. */
  skipLocked: boolean
  /**
   * Every process on this database runs on this machine: SQLite's WAL needs shared memory, so it "does not work
   * over a network filesystem" (https://www.sqlite.org/wal.html). A node may then ask the system whether the
   * process that held a lease is still alive (queue/dead-nodes.ts).
   */
  oneMachine: boolean
}

export interface Database {
  db: Kysely<DB>
  traits: Traits
  /** The PostgreSQL schema named by `?schema=`, if any. */
  schema?: string
  /**
   * PostgreSQL only: call `fn` on each NOTIFY on `channel` (sent by any node, delivered at its commit), on a
   * connection of its own; resolves to the unlisten. SQLite has no notifications: one node, woken in process.
   */
  listen?(channel: string, fn: () => void): Promise<() => Promise<void>>
  close(): Promise<void>
}

/**
 * `sqlite:<path>` (`sqlite::memory:` for tests) or `postgres://…[?schema=name]`. `redoable`: every write on this
 * connection is redone if lost (the background thread's: sent mails, fetched batches, refreshed tokens), none is a
 * promise to a client (a 202, the relay's 250).
 */
export function openDatabase(url: string, o: { redoable?: boolean } = {}): Database {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length)
    if (path !== ':memory:') {
      makePrivateFolder(dirname(path))
      createPrivateFile(path)
    }
    const sqlite = new SQLite(path)
    // WAL lets readers run beside the one writer; busy_timeout makes a second process wait, not fail.
    sqlite.pragma('journal_mode = WAL')
    sqlite.pragma('busy_timeout = 5000')
    // FULL: an accepted mail (202, or the relay's 250) survives a power loss, not only a crash. A redoable
    // connection skips the fsync per commit (NORMAL: WAL still never corrupts; a power loss may undo its last
    // commits, and undone work is done again: a mail sent twice, a batch fetched again by its UIDs). On a disk
    // under load that fsync cost more than an SMTP round trip per mail (bench/send, bench/fetch).
    sqlite.pragma(`synchronous = ${o.redoable ? 'NORMAL' : 'FULL'}`)
    sqlite.pragma('foreign_keys = ON')
    const db = new Kysely<DB>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) })
    return { db, traits: { dialect: 'sqlite', skipLocked: false, oneMachine: true }, close: () => db.destroy() }
  }
  const parsed = new URL(url)
  const schema = parsed.searchParams.get('schema')
  parsed.searchParams.delete('schema')
  const connection = { connectionString: parsed.toString(), ...(schema ? { options: `-c search_path=${schema}` } : {}) }
  const pool = new pg.Pool({ ...connection, max: 10 })
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) })
  const listen = async (channel: string, fn: () => void) => {
    const client = new pg.Client(connection)
    // A lost listening connection costs only the wake-ups: the pollers still run at their interval.
    client.on('error', () => undefined)
    client.on('notification', (n) => n.channel === channel && fn())
    await client.connect()
    await client.query(`LISTEN ${client.escapeIdentifier(channel)}`)
    return () => client.end().catch(() => undefined)
  }
  return { db, traits: { dialect: 'postgres', skipLocked: true, oneMachine: false }, schema: schema ?? undefined, listen, close: () => db.destroy() }
}

/**
 * Kysely prepares every statement anew; the queue runs the same few statements thousands of times, so keep the
 * prepared ones (better-sqlite3 statements are reusable). Bounded, oldest dropped first.
 */
function withStatementCache(sqlite: SQLite.Database, max = 500): SQLite.Database {
  const cache = new Map<string, SQLite.Statement>()
  const prepare = sqlite.prepare.bind(sqlite)
  sqlite.prepare = ((source: string) => {
    let stmt = cache.get(source)
    if (!stmt) {
      stmt = prepare(source)
      if (cache.size >= max) cache.delete(cache.keys().next().value!)
      cache.set(source, stmt)
    }
    return stmt
  }) as typeof sqlite.prepare
  return sqlite
}

/**
 * Items in groups small enough for one statement: SQLite binds at most 32,766 parameters and PostgreSQL 65,535,
 * so a long `in (…)` list (a batch's References) or a many-row insert is sent in parts.
 */
export function groupsOf<T>(items: readonly T[], size = 500): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/** `select … where x in (values)` for any number of values, each asked once. */
export async function whereIn<V extends string | number, T>(values: readonly V[], query: (group: V[]) => Promise<T[]>): Promise<T[]> {
  const out: T[] = []
  for (const g of groupsOf([...new Set(values)])) out.push(...(await query(g)))
  return out
}

export async function migrate(db: Kysely<DB>, schema?: string): Promise<string[]> {
  // Name the schema: kysely otherwise looks for its migration tables in every schema of the database.
  // Feature branches land in any order (0007 shipped before 0005): a database that already ran a later migration
  // must still take an earlier-numbered one that arrived afterwards. Each migration touches only its own tables.
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations }, allowUnorderedMigrations: true, ...(schema ? { migrationTableSchema: schema } : {}) })
  const { error, results } = await migrator.migrateToLatest()
  if (error) throw error
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName)
}

export { newId } from './ids.ts'
export const now = (): string => new Date().toISOString()
export const isoIn = (ms: number, from = Date.now()): string => new Date(from + ms).toISOString()
