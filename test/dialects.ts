import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export type Dialect = 'sqlite' | 'postgres'

/**
 * Which databases a test file runs on under `npm test`. The rule:
 *
 * - A file that never reaches the test database (no import, direct or not, reads MAILBRIDGE_TEST_DATABASE_URL:
 *   pure units, parsers, peers, documents) runs once: its two runs would execute the same code.
 * - A file listed in ONCE runs once, on SQLite: it reaches the database, but its subject sits above it — pages,
 *   HTTP input checks, protocols (SMTP relay, MIME), the CLI, the build, headers — and its SQL is the plain
 *   reads and writes that the files below also run on both databases.
 * - Every other file runs on both: queue claims and leases (FOR UPDATE SKIP LOCKED on PostgreSQL only), several
 *   workers or nodes on one database, migrations, database faults, counts and ages in SQL, large values,
 *   concurrent transactions, anything with SQL the dialects may run differently. A new file lands here until
 *   someone says why it may run once.
 */
export const ONCE: readonly string[] = [
  // Pages in a browser, and the sign-in, CSRF and session rules behind them.
  'test/ui/admin-pages.test.ts',
  'test/ui/base-host.test.ts',
  'test/ui/guide.test.ts',
  'test/ui/incoming-pages.test.ts',
  'test/ui/providers.test.ts',
  'test/ui/relay-users.test.ts',
  'test/ui/sandbox-walk.test.ts',
  'test/ui/security.test.ts',
  'test/security/headers.test.ts',
  'test/security/trust-proxy.test.ts',
  // HTTP input checks, settings and their messages.
  'test/api/bootstrap-token.test.ts',
  'test/api/client-secret-check.test.ts',
  'test/api/logs.test.ts',
  'test/api/settings.test.ts',
  'test/corpus/bad-input.test.ts',
  'test/providers/settings.test.ts',
  // Protocols and formats: the SMTP relay, MIME.
  'test/corpus/header-encoding.test.ts',
  'test/relay/relay-users.test.ts',
  'test/relay/relay.test.ts',
  'test/relay/serve.test.ts',
  'test/security/relay-auth-throttle.test.ts',
  // The CLI, the build and the sandbox (which makes its own SQLite database whatever the test database is).
  'test/process/build.test.ts',
  'test/process/cli.test.ts',
  'test/process/front-door.test.ts',
  'test/process/sandbox.test.ts',
  // The runner's own rules (they name the test database variable, so the import rule would pick them).
  'test/runner.test.ts',
  // SQLite's own faults (busy lock, page limit); the file skips itself on PostgreSQL.
  'test/faults/database.test.ts',
]

export const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** The databases `file` (relative to the repository) runs on. */
export function dialectsOf(file: string): Dialect[] {
  if (ONCE.includes(file) || !reachesTestDatabase(join(ROOT, file))) return ['sqlite']
  return ['sqlite', 'postgres']
}

const texts = new Map<string, string>()

/** Whether `path` or anything it imports through a relative path reads MAILBRIDGE_TEST_DATABASE_URL. */
export function reachesTestDatabase(path: string, seen = new Set<string>()): boolean {
  if (seen.has(path)) return false
  seen.add(path)
  let text = texts.get(path)
  if (text === undefined) texts.set(path, (text = readFileSync(path, 'utf8')))
  if (text.includes('MAILBRIDGE_TEST_DATABASE_URL')) return true
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+\.ts)'/g)) {
    const next = resolve(dirname(path), m[1]!)
    if (existsSync(next) && !relative(ROOT, next).startsWith('node_modules') && reachesTestDatabase(next, seen)) return true
  }
  return false
}
