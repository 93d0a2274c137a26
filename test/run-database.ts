import { randomBytes } from 'node:crypto'
import pg from 'pg'

/**
 * A PostgreSQL database for one run of test/run.ts, created beside the one MAILBRIDGE_TEST_POSTGRES_URL names and
 * dropped at the end. Each test still takes a schema of its own in it (test/support/harness.ts); the database of its
 * own keeps a run apart from anyone else's on the same server (another checkout's run, a hand-made cleanup).
 */
export async function createRunDatabase(baseUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `mbt_run_${randomBytes(5).toString('hex')}`
  const admin = async (statement: string) => {
    const c = new pg.Client({ connectionString: baseUrl })
    await c.connect()
    try {
      await c.query(statement)
    } finally {
      await c.end()
    }
  }
  await admin(`CREATE DATABASE ${name}`).catch((e: unknown) => {
    throw new Error(`cannot create the test database ${name} on ${new URL(baseUrl).host} (MAILBRIDGE_TEST_POSTGRES_URL): ${(e as Error).message}`)
  })
  const url = new URL(baseUrl)
  url.pathname = `/${name}`
  // FORCE: a process a failed file left behind may still hold a connection (PostgreSQL 13+).
  return { url: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) }
}
