import assert from 'node:assert/strict'
import { test } from 'node:test'
import nodemailer from 'nodemailer'
import { chromium, type Page } from 'playwright-core'
import { dovecotAvailable } from '../support/dovecot.ts'
import { freePort } from '../support/process.ts'
import { printed, startSandbox } from '../support/sandbox.ts'
import { CHROMIUM } from '../support/ui-world.ts'

/** The emulator's certificate is not one a browser trusts: do what the printed steps say to get past its warning. */
async function proceedPastCertificateWarning(page: Page) {
  await page.locator('#details-button').click()
  await page.locator('#proceed-link').click()
}

test('sandbox walk: the printed steps, in a browser that does not trust the test CA, send to bob@contoso.com by the API and the relay, and Fetch Now lists both in his mailbox', { skip: !dovecotAvailable() && 'Dovecot is not installed' }, async (t) => {
  const node = await startSandbox(async () => ({ MAILBRIDGE_ADMIN_PASSWORD: '', MAILBRIDGE_API_TOKEN: '', MAILBRIDGE_DATA_DIR: '', MAILBRIDGE_DATABASE_URL: '', MAILBRIDGE_RELAY_PORT: String(await freePort()) }))
  t.after(async () => {
    node.child.kill('SIGTERM')
    await node.exited
  })
  const out = node.output()
  const password = printed(out, /user admin, password (\S+)/)
  const clientId = printed(out, /Client ID ([0-9a-f-]{36})/)
  const secret = printed(out, /Client Secret (\S+), then Save/)
  const relayPort = Number(printed(out, /Relay\s+127\.0\.0\.1:(\d+) STARTTLS/))
  // Step 7's command, run as printed.
  const curl = printed(out, /(curl -s -X POST [^\n]+\\\n[^\n]+)/)

  const browser = await chromium.launch(CHROMIUM)
  t.after(() => browser.close())
  const page = await (await browser.newContext()).newPage()
  await page.goto(`${node.url}/admin`)
  await page.getByLabel('Username').fill('admin')
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  // 1-2. Settings: the empty install's home page names General Settings as the next step.
  await page.getByRole('main').getByRole('link', { name: 'General Settings' }).click()
  await page.getByLabel('External Email Servers').check()
  const outlookCredentials = page.getByRole('group', { name: 'Outlook Credentials' })
  await outlookCredentials.getByLabel('Client ID').fill(clientId)
  await outlookCredentials.getByLabel('Client Secret', { exact: true }).fill(secret)
  await page.getByRole('button', { name: 'Save' }).click()
  // 3-5. The outgoing server, Connect, Test Connection.
  await page.getByRole('main').getByRole('link', { name: 'Outgoing Email Servers' }).click()
  await page.getByRole('link', { name: 'New' }).click()
  await page.getByLabel('Description').fill('Alice')
  await page.getByLabel('Username', { exact: true }).fill('alice@contoso.com')
  await page.getByRole('button', { name: 'Connect your Outlook account' }).click()
  await proceedPastCertificateWarning(page)
  await page.getByRole('button', { name: 'Yes' }).click()
  await page.locator('.tag.ok', { hasText: 'Outlook Token Valid' }).waitFor()
  await page.getByRole('button', { name: 'Test Connection' }).click()
  await page.getByText('Connection Test Successful!').waitFor()

  // 7. A mail to bob@contoso.com through the API, with the printed command's URL, token and body.
  const url = printed(curl, /POST (\S+)/)
  const token = printed(curl, /Bearer ([^"]+)"/)
  const body = printed(curl, /-d '([^']+)'/)
  const sent = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body })
  assert.equal(sent.status, 202, await sent.text())
  const subject = (JSON.parse(body) as { subject: string }).subject

  // 11-12. A relay user, and a mail through the relay.
  await page.getByRole('link', { name: 'SMTP Relay Users' }).click()
  await page.getByLabel('Username').fill('printer')
  await page.getByLabel('Password').fill('printer-password')
  await page.getByLabel('May send as').fill('alice@contoso.com')
  await page.getByRole('button', { name: 'Create' }).click()
  await page.getByText('Relay user created').waitFor()
  const relay = nodemailer.createTransport({ host: '127.0.0.1', port: relayPort, requireTLS: true, tls: { rejectUnauthorized: false }, auth: { user: 'printer', pass: 'printer-password' } })
  await relay.sendMail({ from: 'alice@contoso.com', to: 'bob@contoso.com', subject: 'Via the relay', text: 'Hi' })
  relay.close()

  // 8-10. Bob's incoming server, Connect, Test & Confirm, Fetch Now: both mails were delivered to his mailbox.
  await page.getByRole('link', { name: 'Incoming Email Servers' }).click()
  await page.getByRole('link', { name: 'New' }).click()
  assert.match(await page.getByLabel('Host').inputValue(), /^127\.0\.0\.1$/, 'the sandbox points new incoming servers at its Dovecot')
  await page.getByLabel('Description').fill('Bob')
  await page.getByLabel('Username', { exact: true }).fill('bob@contoso.com')
  await page.getByRole('button', { name: 'Connect your Outlook account' }).click()
  await page.getByRole('button', { name: 'Yes' }).click()
  await page.locator('.tag.ok', { hasText: 'Outlook Token Valid' }).waitFor()
  await page.getByRole('button', { name: 'Test & Confirm' }).click()
  await page.locator('.tag.ok', { hasText: 'Confirmed' }).waitFor()
  // Both mails leave through the queue; Fetch Now until the second has reached Dovecot (the relay answered 250 once
  // the mail was queued, not sent).
  let stored = 0
  for (let attempt = 0; stored < 2 && attempt < 100; attempt++) {
    await page.getByRole('button', { name: 'Fetch Now' }).click()
    stored += Number(printed(await page.getByText(/Fetch Now: \d+ fetched/).innerText(), /(\d+) stored/))
  }
  assert.equal(stored, 2, 'the API mail and the relay mail reached bob@contoso.com in Dovecot')
  await page.getByRole('link', { name: 'Messages', exact: true }).click()
  await page.getByRole('link', { name: subject }).waitFor()
  await page.getByRole('link', { name: 'Via the relay' }).waitFor()
})
