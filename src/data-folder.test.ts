import assert from 'node:assert/strict'
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { test } from 'node:test'
import { boot } from './boot.ts'
import { loadConfig } from './config.ts'
import { createLogger } from './log.ts'

const modeOf = (path: string) => (statSync(path).mode & 0o777).toString(8)

/** Boot on a SQLite file in `dataDir`, as a first start does, and return what it logged. */
async function bootIn(dataDir: string, whileOpen: () => void = () => {}): Promise<Array<{ level: number; msg: string; path?: string; mode?: string }>> {
  const lines: string[] = []
  const log = createLogger('info', new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }))
  const config = loadConfig({ MAILBRIDGE_DATABASE_URL: `sqlite:${join(dataDir, 'mailbridge.db')}`, MAILBRIDGE_DATA_DIR: dataDir })
  const { services } = await boot(config, log)
  // SQLite removes its -wal and -shm files when the last connection closes.
  whileOpen()
  await services.database.close()
  return lines.map((l) => JSON.parse(l))
}

test('data folder: a first start creates the folder 0700 and the SQLite file, its -wal and -shm and secret.key 0600, under a umask that lets others read', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'mailbridge-modes-'))
  const umask = process.umask(0o022)
  t.after(() => (process.umask(umask), rmSync(root, { recursive: true, force: true })))
  const dataDir = join(root, 'srv', 'data')
  const logged = await bootIn(dataDir, () => {
    for (const file of ['mailbridge.db', 'mailbridge.db-wal', 'mailbridge.db-shm', 'secret.key']) assert.equal(modeOf(join(dataDir, file)), '600', file)
  })
  assert.equal(modeOf(join(root, 'srv')), '700')
  assert.equal(modeOf(dataDir), '700')
  assert.deepEqual(logged.filter((l) => l.level >= 40), [], 'nothing to warn about')
})

test('data folder: an existing folder or database others can read is named in a warning that says how to fix it, and left as the operator set it', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'mailbridge-modes-'))
  t.after(() => rmSync(root, { recursive: true, force: true }))
  const dataDir = join(root, 'data')
  await bootIn(dataDir)
  chmodSync(dataDir, 0o750)
  chmodSync(join(dataDir, 'mailbridge.db'), 0o644)
  const warned = (await bootIn(dataDir)).filter((l) => l.level === 40)
  // SQLite gives the -wal and -shm files it adds the database file's mode.
  const db = join(dataDir, 'mailbridge.db')
  assert.deepEqual(warned.map((l) => [l.path, l.mode]), [[dataDir, '750'], [db, '644'], [`${db}-wal`, '644'], [`${db}-shm`, '644']])
  assert.match(warned[0]!.msg, new RegExp(`other accounts on this machine can read .*chmod go-rwx ${dataDir}$`))
  assert.equal(modeOf(dataDir), '750')
})

test('data folder: a folder made elsewhere for the database keeps its mode; only the folders Mailbridge creates are 0700', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'mailbridge-modes-'))
  t.after(() => rmSync(root, { recursive: true, force: true }))
  mkdirSync(join(root, 'shared'), { mode: 0o755 })
  chmodSync(join(root, 'shared'), 0o755)
  await bootIn(join(root, 'shared', 'data'))
  assert.equal(modeOf(join(root, 'shared')), '755')
  assert.equal(modeOf(join(root, 'shared', 'data')), '700')
})
