import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { freePort, MAIN } from '../support/process.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

const listening = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    s.once('connect', () => (s.destroy(), resolve(true)))
    s.once('error', () => resolve(false))
  })

/**
 * Run the real CLI with a data folder and a port of its own. It must end by itself: if it opens the port
 * instead (a server that took `--help` for `serve`), the run is stopped and reported as having listened.
 */
async function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; listened: boolean; dataFiles: string[] }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'mailbridge-cli-'))
  const port = await freePort()
  const child = spawn(process.execPath, [...MAIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, MAILBRIDGE_PORT: String(port), MAILBRIDGE_HOST: '127.0.0.1', MAILBRIDGE_DATA_DIR: dataDir, MAILBRIDGE_DATABASE_URL: `sqlite:${join(dataDir, 'mailbridge.db')}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  let listened = false
  while (child.exitCode === null && !listened) {
    listened = await listening(port)
    await Promise.race([exited, new Promise((r) => setTimeout(r, 50))])
  }
  if (listened) child.kill('SIGKILL')
  const code = await exited
  const dataFiles = readdirSync(dataDir)
  rmSync(dataDir, { recursive: true, force: true })
  return { code, stdout, stderr, listened, dataFiles }
}

for (const [args, shows] of [
  [['--help'], /migrate\n/],
  [['-h'], /sandbox\n/],
  [['help'], /rotate-key \[--batch 500\]/],
  [['serve', '--help'], /serve \[--role all\|web\|worker\]/],
  [['help', 'rotate-key'], /rotate-key \[--batch 500\]/],
] as const) {
  test(`cli: \`mailbridge ${args.join(' ')}\` prints the usage and exits 0, with no port or database opened`, async () => {
    const r = await run([...args])
    assert.equal(r.listened, false, 'it opened the HTTP port')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^Usage: mailbridge <command>/)
    assert.match(r.stdout, shows)
    assert.deepEqual(r.dataFiles, [], 'the data folder stays empty')
  })
}

for (const [args, named] of [
  [['--rol', 'web'], "Unknown option '--rol'"],
  [['serve', '--port', '9000'], "Unknown option '--port'"],
  [['migrate', '--role', 'web'], "Unknown option '--role' for \"migrate\""],
  [['serv'], 'unknown command "serv"'],
  [['serve', 'now'], 'unexpected argument "now" for "serve"'],
] as const) {
  test(`cli: \`mailbridge ${args.join(' ')}\` exits 2 naming what is wrong, with no port or database opened`, async () => {
    const r = await run([...args])
    assert.equal(r.listened, false, 'it opened the HTTP port')
    assert.equal(r.code, 2, r.stdout + r.stderr)
    assert.ok(r.stderr.includes(named), r.stderr)
    assert.match(r.stderr, /mailbridge --help/)
    assert.deepEqual(r.dataFiles, [], 'the data folder stays empty')
  })
}
