import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ALICE, CLIENT_ID, CLIENT_SECRET, startUiWorld } from '../support/ui-world.ts'

/** Where each label stands in the settings form (the banners above it may name them too: "…Outlook Credentials…"). */
const positions = async (page: import('playwright-core').Page, labels: string[]) => {
  const text = await page.locator('main form').first().innerText()
  return labels.map((l) => text.indexOf(l))
}

test('guide: a person following "Setup in Odoo" in Chromium goes from sign-in to "Connection Test Successful!"', async (t) => {
  const w = await startUiWorld()
  t.after(w.close)
  const { page, url } = w

  // A logged-out visit lands on the sign-in form, which asks for "Username" and "Password".
  await page.goto(`${url}/admin/settings`)
  assert.equal(new URL(page.url()).pathname, '/admin/login')
  await w.shot('login')
  await w.signIn()

  // Settings → General Settings, Discuss section, "External Email Servers" ticked populates "Outlook Credentials".
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'General Settings' }).click()
  await page.getByRole('heading', { name: 'General Settings' }).waitFor()
  await page.getByRole('heading', { name: 'Discuss' }).waitFor()
  const credentials = page.getByRole('group', { name: 'Outlook Credentials' })
  assert.equal(await credentials.isVisible(), false, 'Outlook Credentials wait for the checkbox')
  await page.getByLabel('External Email Servers').check()
  assert.equal(await credentials.isVisible(), true)
  await page.getByRole('button', { name: 'Save' }).click()
  await page.getByText('Settings saved.').waitFor()
  assert.equal(await page.getByLabel('External Email Servers').isChecked(), true)
  await credentials.getByLabel('Client ID').fill(CLIENT_ID)
  await credentials.getByLabel('Client Secret', { exact: true }).fill(CLIENT_SECRET)
  await page.getByRole('button', { name: 'Save' }).click()
  await page.getByText('Settings saved.').waitFor()
  // No mailbox yet to try the secret with: the page says so, and that connecting one checks it.
  await page.getByRole('alert').filter({ hasText: 'No mailbox is connected with the Outlook Credentials yet' }).waitFor()
  assert.equal(await credentials.getByLabel('Client ID').inputValue(), CLIENT_ID)
  assert.equal(await credentials.getByLabel('Client Secret', { exact: true }).inputValue(), '', 'the secret is never shown back')
  assert.ok(!(await page.content()).includes(CLIENT_SECRET))
  assert.equal(await credentials.locator('.tag.set').innerText(), 'set')
  assert.equal(await page.locator('#redirect-uri').innerText(), `${url}/microsoft_outlook/confirm`)
  assert.equal(await credentials.getByRole('button', { name: 'Copy' }).isVisible(), true)
  const order = await positions(page, ['Discuss', 'External Email Servers', 'Outlook Credentials', 'Client ID', 'Client Secret'])
  assert.ok(order.every((p, i) => p >= 0 && (i === 0 || p > order[i - 1]!)), `labels in the guide's order: ${order}`)
  await w.shot('general-settings')

  // Under External Email Servers, the "Outgoing Email Servers" link; a new server with the "Outlook" option.
  await page.getByRole('main').getByRole('link', { name: 'Outgoing Email Servers' }).click()
  await page.getByRole('link', { name: 'New' }).click()
  await page.getByLabel('Outlook', { exact: true }).check()
  await page.getByLabel('Description').fill('Sales mailbox')
  await page.getByLabel('Username', { exact: true }).fill(ALICE)
  // The SMTP peer stands in for smtp.office365.com.
  await page.getByLabel('Host').fill(w.smtp.host)
  await page.getByLabel('Port').fill(String(w.smtp.port))
  const form = await positions(page, ['Description', 'Outlook', 'Username', 'Connect your Outlook account'])
  assert.ok(form.every((p, i) => p >= 0 && (i === 0 || p > form[i - 1]!)), `form labels in the guide's order: ${form}`)
  await page.getByRole('button', { name: 'Connect your Outlook account' }).click()

  // Microsoft's consent page (the emulator's): sign in as the Username, then "Yes".
  await page.getByRole('heading', { name: 'Permissions requested' }).waitFor()
  assert.equal(new URL(page.url()).origin, w.ms.url)
  assert.equal(await page.getByLabel('Email, phone, or Skype').inputValue(), ALICE, 'login_hint carries the Username')
  await page.getByRole('button', { name: 'Yes' }).click()

  // Back on the server: the green "Outlook Token Valid" tag.
  await page.waitForURL(/\/admin\/outgoing-servers\/[0-9a-f]+\?connected=1$/)
  const tag = page.locator('.tag', { hasText: 'Outlook Token Valid' })
  await tag.waitFor()
  assert.equal(await tag.evaluate((e) => getComputedStyle(e).backgroundColor), 'rgb(26, 127, 55)', 'the tag is green')
  assert.equal(await page.getByRole('button', { name: 'Reconnect your Outlook account' }).isVisible(), true)
  const serverId = new URL(page.url()).pathname.split('/').at(-1)!
  const stored = await w.mb.services.database.db.selectFrom('oauth_states').select('session').executeTakeFirstOrThrow()
  const session = await w.mb.services.database.db.selectFrom('admin_sessions').select('id').executeTakeFirstOrThrow()
  assert.equal(stored.session, session.id, 'the Connect started in the UI was bound to the admin session')

  // "Test Connection" → "Connection Test Successful!", after a real XOAUTH2 AUTH at the SMTP peer.
  await page.getByRole('button', { name: 'Test Connection' }).click()
  await page.getByText('Connection Test Successful!').waitFor()
  assert.deepEqual(w.smtp.authAttempts.at(-1), { user: ALICE, ok: true })
  await w.shot('outgoing-server')

  // The guide's tip: Settings → Technical → System Parameters, mail.force.smtp.from = the Username.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'System Parameters' }).click()
  await page.getByLabel('Key').fill('mail.force.smtp.from')
  await page.getByLabel('Value').fill(ALICE)
  await page.getByRole('button', { name: 'Save' }).click()
  await page.getByText('Parameter saved.').waitFor()
  assert.equal(await w.mb.services.settings.parameter('mail.force.smtp.from'), ALICE)
  await w.shot('system-parameters')

  // A mail sent through the API goes out through the server just connected, and shows in the Mail queue.
  const sent = await w.mb.api('POST', '/api/v1/mail', { to: ['bob@fabrikam.com'], subject: 'Hello from the guide', text: 'Hi' })
  assert.equal(sent.statusCode, 202)
  await w.mb.services.mailWorker.tick()
  await w.mb.services.mailWorker.idle()
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Mail queue' }).click()
  const row = page.getByRole('row', { name: /Hello from the guide/ })
  assert.match(await row.innerText(), /Sent/)
  assert.equal(w.smtp.messages.length, 1)
  assert.equal((await w.mb.services.outgoingServers.get(serverId)).token.valid, true)
  await w.shot('mail-queue')
})
