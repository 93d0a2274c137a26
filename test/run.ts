/**
 * The test runner behind `npm test`: the typecheck, which also compiles the sources (test/compile.ts), then every
 * `*.test.ts` under src/ and test/ as its own process, several at once, longest first, each on the databases
 * test/dialects.ts gives it; a file in ALONE (test/schedule.ts) runs with nothing beside it. Prints a line per
 * file, the whole output of each file that failed, and a summary; exits 1 when the typecheck or any file failed.
 *
 *   tsx test/run.ts [--jobs N] [--sqlite | --postgres] [--tsx] [file or folder …]
 *
 * --tsx skips the typecheck and runs the TypeScript through tsx (slower per file, quicker for one or two).
 * Files or folders narrow the run. --sqlite or --postgres alone runs that database's half of the plan; with files
 * or folders, it runs them on that database whatever the plan says. --jobs (or MAILBRIDGE_TEST_JOBS) sizes the pool.
 */
import { spawn } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { compile } from './compile.ts'
import { dialectsOf, ROOT, type Dialect } from './dialects.ts'
import { createRunDatabase } from './run-database.ts'
import { ALONE, jobKey, longestFirst, recordDurations, type Job } from './schedule.ts'

/** Most of a test file's time is spent waiting on sockets and timers, so a pool bigger than the two cores pays. */
const DEFAULT_JOBS = 5
/** A file still running after this long is stuck (a listener left open keeps its process alive): it fails. */
const FILE_TIMEOUT_S = Number(process.env.MAILBRIDGE_TEST_FILE_TIMEOUT_S || 600)
const POSTGRES_URL = process.env.MAILBRIDGE_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test'
/** This run's database (test/run-database.ts), once a file runs on PostgreSQL. */
let postgresUrl = POSTGRES_URL

interface Result {
  job: Job
  ok: boolean
  seconds: number
  output: string
  counts: string
}

function usage(message: string): never {
  console.error(`${message}\nusage: tsx test/run.ts [--jobs N] [--sqlite | --postgres] [--tsx] [file or folder …]`)
  process.exit(2)
}

function parseArgs(argv: string[]) {
  let jobs = Number(process.env.MAILBRIDGE_TEST_JOBS || DEFAULT_JOBS)
  let only: Dialect | undefined
  let tsx = false
  const paths: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--sqlite' || a === '--postgres') only = a === '--sqlite' ? 'sqlite' : 'postgres'
    else if (a === '--tsx') tsx = true
    else if (a === '--jobs' || a === '-j') jobs = Number(argv[++i])
    else if (a.startsWith('--jobs=')) jobs = Number(a.slice('--jobs='.length))
    else if (a.startsWith('-')) usage(`unknown option ${a}`)
    else paths.push(a)
  }
  if (!Number.isInteger(jobs) || jobs < 1) usage('--jobs takes a whole number of at least 1')
  return { jobs, only, tsx, explicit: paths.length > 0, paths: paths.length ? paths : ['src', 'test'] }
}

/** Every `*.test.ts` at or under `path`, relative to the repository. */
function testFiles(path: string): string[] {
  const full = resolve(path)
  let stat
  try {
    stat = statSync(full)
  } catch {
    usage(`no such file or folder: ${path}`)
  }
  if (stat.isFile()) return full.endsWith('.test.ts') ? [relative(ROOT, full)] : usage(`not a test file (*.test.ts): ${path}`)
  return readdirSync(full, { withFileTypes: true })
    .filter((e) => e.name !== 'node_modules' && !e.name.startsWith('.'))
    .flatMap((e) => (e.isDirectory() || e.name.endsWith('.test.ts') ? testFiles(join(full, e.name)) : []))
}

/** One file on one database, in a process (and process group) of its own: the compiled file, or the source through tsx. */
function runJob(job: Job, tsx: boolean): Promise<Result> {
  const started = Date.now()
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_EXTRA_CA_CERTS: 'test/support/tls/ca.pem' }
  delete env.MAILBRIDGE_TEST_DATABASE_URL
  if (job.dialect === 'postgres') env.MAILBRIDGE_TEST_DATABASE_URL = postgresUrl
  // The run's database is dropped whole at the end (run-database.ts); a schema dropped while other files run makes
  // their kysely introspection (pg_get_serial_sequence over every schema's tables) fail with "schema … does not exist".
  if (job.dialect === 'postgres') env.MAILBRIDGE_TEST_KEEP_SCHEMAS = '1'
  const args = tsx ? ['--import', 'tsx', job.file] : ['--enable-source-maps', job.file.replace(/\.ts$/, '.js')]
  const child = spawn(process.execPath, ['--test-reporter=spec', ...args], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child.pid!)
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  const timer = setTimeout(() => {
    output += `\n[test/run.ts] killed: still running after ${FILE_TIMEOUT_S} s (MAILBRIDGE_TEST_FILE_TIMEOUT_S)\n`
    killGroup(child.pid!)
  }, FILE_TIMEOUT_S * 1000)
  return new Promise((done) => {
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      running.delete(child.pid!)
      // Whatever the file left behind in its group (a peer, a browser) goes with it.
      killGroup(child.pid!)
      const n = (name: string) => Number(new RegExp(`^ℹ ${name} (\\d+)`, 'm').exec(output)?.[1] ?? 0)
      const counts = `${n('tests')} tests${n('fail') ? `, ${n('fail')} failed` : ''}${n('skipped') ? `, ${n('skipped')} skipped` : ''}`
      done({ job, ok: code === 0 && signal === null, seconds: (Date.now() - started) / 1000, output, counts })
    })
  })
}

const running = new Set<number>()

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL')
  } catch {
    /* already gone */
  }
}

function report(r: Result): void {
  const mark = r.ok ? 'ok  ' : 'FAIL'
  console.log(`${mark} ${r.seconds.toFixed(1).padStart(6)} s  ${r.job.dialect.padEnd(8)} ${r.job.file}  (${r.counts})`)
}

/** Runs `jobs` through a pool of `size`; a job in ALONE waits for the pool to empty and holds it alone. */
async function runAll(jobs: Job[], size: number, tsx: boolean): Promise<Result[]> {
  const results: Result[] = []
  const alone = jobs.filter((j) => ALONE.includes(j.file))
  for (const job of alone) {
    const r = await runJob(job, tsx)
    report(r)
    results.push(r)
  }
  const queue = jobs.filter((j) => !ALONE.includes(j.file))
  const worker = async () => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      const r = await runJob(job, tsx)
      report(r)
      results.push(r)
    }
  }
  await Promise.all(Array.from({ length: Math.min(size, queue.length) }, worker))
  return results
}

async function main(): Promise<void> {
  const { jobs: size, only, tsx, explicit, paths } = parseArgs(process.argv.slice(2))
  const files = [...new Set(paths.flatMap(testFiles))].sort()
  // A database named with files given runs them there; named alone it is that database's half of `npm test`.
  const on = (file: string) => (!only ? dialectsOf(file) : explicit || dialectsOf(file).includes(only) ? [only] : [])
  const jobs = longestFirst(files.flatMap((file) => on(file).map((dialect) => ({ file, dialect }))))
  const started = Date.now()
  // What the run made and must take away: the compiled files, the PostgreSQL database.
  const cleanups: Array<() => void | Promise<void>> = []
  const cleanUp = async () => {
    for (const c of cleanups.splice(0)) await c()
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const pid of running) killGroup(pid)
      void cleanUp().finally(() => process.exit(130))
    })
  }
  if (!tsx) {
    const compiled = await compile()
    cleanups.push(compiled.remove)
    if (!compiled.ok) {
      await cleanUp()
      console.log(`typecheck failed (tsc -p tsconfig.json):\n${compiled.output}`)
      process.exit(1)
    }
    console.log(`typecheck: ok, compiled in ${((Date.now() - started) / 1000).toFixed(0)} s`)
  }
  if (jobs.some((j) => j.dialect === 'postgres')) {
    const database = await createRunDatabase(POSTGRES_URL).catch(async (e: unknown) => {
      await cleanUp()
      throw e
    })
    postgresUrl = database.url
    cleanups.push(database.drop)
  }
  console.log(`${files.length} test files, ${jobs.length} runs, ${size} at a time`)
  const results = await runAll(jobs, size, tsx).finally(cleanUp)
  recordDurations(Object.fromEntries(results.filter((r) => r.ok).map((r) => [jobKey(r.job), Math.round(r.seconds * 10) / 10])))
  const failed = results.filter((r) => !r.ok)
  for (const r of failed) console.log(`\n──── FAIL ${r.job.dialect} ${r.job.file} ────\n${r.output.trimEnd()}\n`)
  const wall = (Date.now() - started) / 1000
  const summed = results.reduce((s, r) => s + r.seconds, 0)
  console.log(`\n${results.length - failed.length} of ${results.length} runs passed; ${wall.toFixed(0)} s wall, ${summed.toFixed(0)} s summed over files`)
  for (const r of failed) console.log(`  failed: ${r.job.dialect} ${r.job.file}`)
  process.exitCode = failed.length ? 1 : 0
}

await main()
