import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { startNode } from '../support/process.ts'

test('front door: GET / sends the browser to /admin, whose sign-in takes the password the first start printed beside <base URL>/admin', async (t) => {
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
  const password = /the admin password is (\S+)/.exec(out)?.[1]
  assert.ok(password, out)

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
