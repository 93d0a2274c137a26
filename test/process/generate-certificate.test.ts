import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { openDatabase } from '../../src/db/index.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

const mailbridge = (dataDir: string, args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, MAILBRIDGE_DATA_DIR: dataDir, MAILBRIDGE_DATABASE_URL: `sqlite:${join(dataDir, 'mailbridge.db')}` },
  })

test('mailbridge generate-certificate: writes the public certificate for Azure, keeps the key sealed as pending, and says what to do next', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailbridge-cert-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const out = join(dir, 'outlook.cer')
  const run = mailbridge(dir, ['generate-certificate', '--out', out, '--days', '400', '--subject', 'Contoso mail'])
  assert.equal(run.status, 0, run.stderr)
  const pem = readFileSync(out, 'utf8')
  assert.ok(!pem.includes('PRIVATE KEY'), 'only the public certificate is written')
  const cert = new X509Certificate(pem)
  assert.equal(cert.subject, 'CN=Contoso mail')
  assert.match(run.stdout, new RegExp(`thumbprint ${cert.fingerprint.replace(/:/g, '')}`))
  assert.match(run.stdout, /Upload certificate/)
  assert.match(run.stdout, /Use this certificate/)
  const database = openDatabase(`sqlite:${join(dir, 'mailbridge.db')}`)
  const row = await database.db.selectFrom('settings').select('value').where('key', '=', 'microsoft_outlook_client_certificate_pending').executeTakeFirst()
  await database.close()
  assert.ok(row, 'the key and certificate are stored, pending')
  assert.ok(!row.value.includes('PRIVATE KEY') && !row.value.includes('BEGIN'), 'sealed, not in clear')
  const bad = mailbridge(dir, ['generate-certificate', '--days', 'ever'])
  assert.equal(bad.status, 2)
  assert.match(bad.stderr, /--days must be a whole number/)
})
