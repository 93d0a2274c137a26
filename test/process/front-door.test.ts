import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { startNode } from '../support/process.ts'

test('front door: GET / sends the browser to /admin, whose sign-in takes the password in the 0600 file the first start names beside <base URL>/admin (never on stdout)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailbridge-front-door-'))
  const node = await startNode({ MAILBRIDGE_ADMIN_PASSWORD: '', MAILBRIDGE_DATA_DIR: dir, MAILBRIDGE_DATABASE_URL: `sqlite:${join(dir, 'mailbridge.db')}` })
  t.after(async () => {
    node.child.kill('SIGTERM')
    await node.exited
    rmSync(dir, { recursive: true, force: true })
  })
  while (!node.output().includes('API documentation:')) await new Promise((r) => setTimeout(r, 50))
  const out = node.output()
  const port = new URL(node.url).port
  assert.ok(out.includes(`Admin UI: http://localhost:${port}/admin\n`), out)
  const file = /First start: the admin password \(user "admin"\) and an API token are in (\S+) \(mode 0600/.exec(out)?.[1]
  assert.ok(file, out)
  assert.equal(statSync(file).mode & 0o777, 0o600)
  const saved = readFileSync(file, 'utf8')
  const password = /^admin password: (\S+)$/m.exec(saved)?.[1]
  const token = /^API token: (\S+)$/m.exec(saved)?.[1]
  assert.ok(password && token, saved)
  // stdout carries the JSON logs to whatever collects them; it is not a terminal here.
  assert.ok(!out.includes(password) && !out.includes(token), 'neither secret is printed where the logs go')

  const root = await fetch(`${node.url}/`, { redirect: 'manual' })
  assert.equal(root.status, 302)
  assert.equal(root.headers.get('location'), '/admin')
  const admin = await fetch(new URL('/admin', node.url), { redirect: 'manual' })
  assert.match(admin.headers.get('location') ?? '', /\/admin\/login\?next=%2Fadmin$/)

  const form = await fetch(`${node.url}/admin/login`)
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await form.text())![1]!
  const cookie = form.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ')
  const signIn = await fetch(`${node.url}/admin/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: csrf, next: '/admin', username: 'admin', password }),
  })
  assert.equal(signIn.status, 303, 'the printed password signs in')
})
