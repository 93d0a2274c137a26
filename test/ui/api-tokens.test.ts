import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startUiWorld } from '../support/ui-world.ts'

test('api tokens page: an admin in Chromium creates a token with a scope and a server, sees it once with a copy button, revokes it after a confirm, and the audit log shows both', async (t) => {
  const w = await startUiWorld()
  t.after(w.close)
  const { page, url, mb } = w
  const server = (await mb.api('POST', '/api/v1/outgoing-servers', { name: 'Billing mailbox', authentication: 'none', host: '127.0.0.1', port: 2525, encryption: 'none', username: 'billing@contoso.com' })).json()
  const withToken = (token: string, method: 'GET' | 'POST', path: string, body?: unknown) =>
    mb.app.inject({ method, url: path, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, payload: body ? JSON.stringify(body) : undefined })

  await w.signIn()
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'API Tokens' }).click()
  await page.getByRole('heading', { name: 'API Tokens', exact: true }).waitFor()

  // Without a scope the form says what to tick, and keeps what was typed.
  await page.getByLabel('Name').fill('billing')
  await page.getByRole('button', { name: 'Create token' }).click()
  await page.getByRole('alert').filter({ hasText: 'Tick at least one scope' }).waitFor()
  assert.equal(await page.getByLabel('Name').inputValue(), 'billing')

  await page.getByLabel('mail:send').check()
  await page.getByLabel('Billing mailbox (outgoing, billing@contoso.com)').check()
  await page.getByRole('button', { name: 'Create token' }).click()
  await page.getByText('Copy this token now').waitFor()
  const token = await page.locator('#new-token').innerText()
  assert.match(token, /^mb_/)
  assert.equal(await page.getByRole('button', { name: 'Copy' }).isVisible(), true)
  await w.shot('api-token-created')

  // The token works for its scope and server, and for nothing else.
  assert.equal((await withToken(token, 'POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 'Invoice', text: 'x' })).statusCode, 202)
  assert.equal((await withToken(token, 'GET', '/api/v1/settings')).statusCode, 403)

  // Shown once: the list names it, its scope, its server and its last use, never the value.
  await page.goto(`${url}/admin/api-tokens`)
  assert.ok(!(await page.content()).includes(token))
  const row = page.getByRole('row').filter({ hasText: 'billing' }).filter({ hasText: 'mail:send' })
  await row.filter({ hasText: 'Billing mailbox (outgoing)' }).waitFor()
  assert.doesNotMatch(await row.innerText(), /never\s*Revoke$/, 'its use is shown')

  // Revoke asks first; keeping it changes nothing.
  await row.getByRole('link', { name: 'Revoke billing' }).click()
  await page.getByRole('heading', { name: 'Revoke billing?' }).waitFor()
  await page.getByRole('link', { name: 'Keep it' }).click()
  assert.equal((await withToken(token, 'POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 'Still', text: 'x' })).statusCode, 202)
  await page.getByRole('row').filter({ hasText: 'mail:send' }).getByRole('link', { name: 'Revoke billing' }).click()
  await page.getByRole('button', { name: 'Revoke billing' }).click()
  await page.getByText('Token revoked').waitFor()
  assert.equal(new URL(page.url()).pathname, '/admin/api-tokens', 'the result page is not the POST URL')
  assert.equal(await page.getByRole('row').filter({ hasText: 'mail:send' }).count(), 0)
  assert.equal((await withToken(token, 'POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 'After', text: 'x' })).statusCode, 401)

  // The audit log page: who created and revoked it, and the API's own actions by the harness's token.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit Log' }).click()
  await page.getByRole('heading', { name: 'Audit Log' }).waitFor()
  const entries = page.getByRole('row')
  await entries.filter({ hasText: 'api_token.created' }).filter({ hasText: 'admin session' }).filter({ hasText: 'name: billing' }).waitFor()
  await entries.filter({ hasText: 'api_token.revoked' }).filter({ hasText: 'admin session' }).waitFor()
  await entries.filter({ hasText: 'outgoing_server.created' }).filter({ hasText: 'tests (API token)' }).filter({ hasText: server.id }).waitFor()
  await entries.filter({ hasText: 'admin.signed_in' }).waitFor()
  await w.shot('audit-log')
})
