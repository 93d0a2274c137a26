import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { driveConsent } from '../support/identity-emulator.ts'
import { printed, startSandbox } from '../support/sandbox.ts'

test('sandbox: a kept data folder starts again with the same app registration, password and token; its servers point at the new peers and Reconnect works', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-sandbox-kept-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const env = { MAILBRIDGE_ADMIN_PASSWORD: '', MAILBRIDGE_API_TOKEN: '', MAILBRIDGE_DATABASE_URL: '', MAILBRIDGE_DATA_DIR: dir }
  const run = async () => {
    const node = await startSandbox(env)
    const out = node.output()
    const api = (path: string, init: { method?: string; body?: unknown } = {}) =>
      fetch(`${node.url}/api/v1${path}`, {
        method: init.method ?? 'GET',
        headers: { authorization: `Bearer ${printed(out, /API token\s+(\S+)/)}`, ...(init.body ? { 'content-type': 'application/json' } : {}) },
        body: init.body ? JSON.stringify(init.body) : undefined,
      })
    const stop = async () => {
      node.child.kill('SIGTERM')
      assert.equal(await node.exited, 0)
    }
    return { node, out, api, stop, smtpPort: Number(printed(out, /SMTP\s+127\.0\.0\.1:(\d+)/)) }
  }
  /** Connect (or Reconnect) through the API and the emulator's consent form, as a browser would, then Test Connection. */
  const connectAndTest = async (r: Awaited<ReturnType<typeof run>>, id: string) => {
    const { authorize_url } = (await (await r.api(`/outgoing-servers/${id}/connect`, { method: 'POST' })).json()) as { authorize_url: string }
    const back = await driveConsent(authorize_url, { user: 'alice@contoso.com' }, readFileSync('test/support/tls/ca.pem'))
    assert.equal((await fetch(back, { redirect: 'manual' })).status, 302)
    return (await (await r.api(`/outgoing-servers/${id}/test`, { method: 'POST' })).json()) as { ok: boolean; message: string }
  }

  const first = await run()
  const clientId = printed(first.out, /Client ID ([0-9a-f-]{36})/)
  const secret = printed(first.out, /Client Secret (\S+), then Save/)
  assert.equal((await first.api('/settings', { method: 'PATCH', body: { external_email_servers: true, microsoft_outlook_client_id: clientId, microsoft_outlook_client_secret: secret } })).status, 200)
  const created = await first.api('/outgoing-servers', { method: 'POST', body: { name: 'Alice', authentication: 'outlook', host: '127.0.0.1', port: first.smtpPort, encryption: 'starttls', username: 'alice@contoso.com' } })
  assert.equal(created.status, 201, await created.clone().text())
  const { id } = (await created.json()) as { id: string }
  assert.equal((await connectAndTest(first, id)).ok, true)
  await first.stop()

  const second = await run()
  t.after(second.stop)
  assert.equal(printed(second.out, /Client ID ([0-9a-f-]{36})/), clientId, 'the same app registration')
  assert.equal(printed(second.out, /Client Secret (\S+), then Save/), secret)
  assert.equal(printed(second.out, /password (\S+)/), printed(first.out, /password (\S+)/), 'the first start\'s admin password is shown again')
  assert.match(second.out, /used before[\s\S]*Reconnect your Outlook account/)
  const server = (await (await second.api(`/outgoing-servers/${id}`)).json()) as { port: number }
  assert.notEqual(second.smtpPort, first.smtpPort)
  assert.equal(server.port, second.smtpPort, 'the server points at this run\'s SMTP peer')
  const tested = await connectAndTest(second, id)
  assert.equal(tested.ok, true, tested.message)
})
