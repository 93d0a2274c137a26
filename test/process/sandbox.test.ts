import assert from 'node:assert/strict'
import { test } from 'node:test'
import { chromium } from 'playwright-core'
import { startNode } from '../support/process.ts'
import { CHROMIUM } from '../support/ui-world.ts'

test('sandbox: `mailbridge sandbox` prints what to paste, and its guide walk ends in "Connection Test Successful!" offline', async (t) => {
  const node = await startNode({ MAILBRIDGE_ADMIN_PASSWORD: '', MAILBRIDGE_DATA_DIR: '', MAILBRIDGE_DATABASE_URL: '' }, ['sandbox'])
  t.after(async () => {
    node.child.kill('SIGTERM')
    await node.exited
  })
  while (!node.output().includes('Ctrl+C stops everything.')) {
    if (node.child.exitCode !== null) assert.fail(`the sandbox exited:\n${node.output()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  const out = node.output()
  const password = /user admin, password (\S+)/.exec(out)?.[1]
  const clientId = /Client ID ([0-9a-f-]{36})/.exec(out)?.[1]
  const secret = /Client Secret (\S+), then Save/.exec(out)?.[1]
  assert.ok(password && clientId && secret, out)
  assert.match(out, /SMTP\s+127\.0\.0\.1:\d+ STARTTLS \+ XOAUTH2/)

  const browser = await chromium.launch(CHROMIUM)
  t.after(() => browser.close())
  const page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage()
  await page.goto(`${node.url}/admin`)
  await page.getByLabel('Username').fill('admin')
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByLabel('External Email Servers').check()
  const outlookCredentials = page.getByRole('group', { name: 'Outlook Credentials' })
  await outlookCredentials.getByLabel('Client ID').fill(clientId)
  await outlookCredentials.getByLabel('Client Secret', { exact: true }).fill(secret)
  await page.getByRole('button', { name: 'Save' }).click()
  await page.getByRole('main').getByRole('link', { name: 'Outgoing Email Servers' }).click()
  await page.getByRole('link', { name: 'New' }).click()
  assert.match(await page.getByLabel('Host').inputValue(), /^127\.0\.0\.1$/, 'the sandbox points new servers at its SMTP peer')
  await page.getByLabel('Description').fill('Sandbox')
  await page.getByLabel('Username', { exact: true }).fill('alice@contoso.com')
  await page.getByRole('button', { name: 'Connect your Outlook account' }).click()
  await page.getByRole('button', { name: 'Yes' }).click()
  await page.locator('.tag.ok', { hasText: 'Outlook Token Valid' }).waitFor()
  await page.getByRole('button', { name: 'Test Connection' }).click()
  await page.getByText('Connection Test Successful!').waitFor()
})
