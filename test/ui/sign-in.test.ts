import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ALICE, CLIENT_ID, CLIENT_SECRET, startUiWorld, type UiWorld } from '../support/ui-world.ts'

const ADMIN = 'admin@contoso.com'

async function serverPage(w: UiWorld): Promise<string> {
  await w.mb.services.settings.update({ external_email_servers: true, microsoft_outlook_client_id: CLIENT_ID, microsoft_outlook_client_secret: CLIENT_SECRET })
  const res = await w.mb.api('POST', '/api/v1/outgoing-servers', { name: 'Sales', authentication: 'outlook', username: ALICE, host: w.smtp.host, port: w.smtp.port })
  assert.equal(res.statusCode, 201, res.body)
  await w.signIn()
  return `${w.url}/admin/outgoing-servers/${res.json().id}`
}

test('UI: Connect meets "Need admin approval"; the server page offers "Grant admin consent"; an admin grants it; then Connect asks no consent', async (t) => {
  const w = await startUiWorld()
  t.after(w.close)
  w.ms.addUser(ADMIN, { admin: true })
  w.ms.setConsentPolicy({ userConsent: 'admin_only' })
  const { page } = w
  const server = await serverPage(w)
  await page.goto(server)
  assert.equal(await page.locator('#admin-consent').count(), 0, 'nothing asks for an admin before Microsoft does')

  await page.getByRole('button', { name: 'Connect your Outlook account' }).click()
  await page.getByRole('button', { name: 'Yes' }).click()
  await page.getByRole('heading', { name: 'Need admin approval' }).waitFor()
  await page.getByRole('button', { name: 'Return to the application without granting consent' }).click()
  await page.getByText('the sign-in was cancelled').waitFor()
  await page.getByRole('link', { name: 'Back to the server' }).click()

  const card = page.locator('#admin-consent')
  await card.getByRole('heading', { name: 'Grant admin consent' }).waitFor()
  assert.match(await card.innerText(), /an administrator of the Microsoft 365 tenant of alice@contoso\.com/)
  assert.match(await card.innerText(), /gives Mailbridge no token/)
  await w.shot('grant-admin-consent')
  await card.getByRole('button', { name: 'Grant admin consent' }).click()
  await page.getByText('for all users in your organization').waitFor()
  await page.getByLabel('Email, phone, or Skype').fill(ADMIN)
  await page.getByRole('button', { name: 'Accept' }).click()
  await page.getByRole('heading', { name: 'Admin consent granted' }).waitFor()
  assert.match(await page.locator('main').innerText(), new RegExp(`tenant ${w.ms.tenantId}`))
  await page.getByRole('link', { name: 'Back to the server' }).click()
  assert.equal(await page.locator('#admin-consent').count(), 0, 'granted: the card is gone')

  await page.getByRole('button', { name: 'Connect your Outlook account' }).click()
  await page.getByRole('heading', { name: 'Sign in' }).waitFor()
  assert.equal(await page.getByText('Permissions requested').count(), 0, 'no consent prompt')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByText('Connected: alice@contoso.com is linked to Mailbridge.').waitFor()
  assert.equal(await page.getByRole('status').filter({ hasText: 'Outlook Token Valid' }).count(), 1)
})

test('UI: "Sign in with a code" shows the code and the URL; the page turns to "signed in" without a reload, and works without JavaScript', async (t) => {
  const w = await startUiWorld()
  t.after(w.close)
  w.mb.services.deviceCodes.start()
  t.after(() => w.mb.services.deviceCodes.stop())
  const { page, context } = w
  const server = await serverPage(w)
  await page.goto(server)
  await page.locator('#device-code').getByRole('button', { name: 'Sign in with a code' }).click()
  const card = page.locator('#sign-in')
  await card.getByRole('heading', { name: 'Sign in with a code' }).waitFor()
  const code = await card.locator('#user-code').innerText()
  assert.match(code, /^[A-Z0-9]{8}$/)
  assert.equal(await card.getByRole('link', { name: `${w.ms.url}/devicelogin` }).count(), 1)
  assert.equal(await card.getByRole('link', { name: 'Refresh' }).getAttribute('href'), new URL(server).pathname)
  await w.shot('device-code')
  await page.evaluate(() => ((window as unknown as { stayed: boolean }).stayed = true))

  // The same page without JavaScript: the code and a Refresh link.
  const plain = await w.browser.newContext({ javaScriptEnabled: false, storageState: await context.storageState() })
  t.after(() => plain.close())
  const noJs = await plain.newPage()
  await noJs.goto(server)
  assert.equal(await noJs.locator('#user-code').innerText(), code)

  // The person signs in at Microsoft on another device.
  const phone = await context.newPage()
  await phone.goto(`${w.ms.url}/devicelogin`)
  await phone.getByLabel('Code').fill(code)
  await phone.getByRole('button', { name: 'Next' }).click()
  await phone.getByLabel('Email, phone, or Skype').fill(ALICE)
  await phone.getByRole('button', { name: 'Continue' }).click()
  await phone.getByText('You have signed in to the Mailbridge application on your device').waitFor()
  // Microsoft's interval is 5 s: make the next poll due now rather than wait for it.
  await w.mb.services.database.db.updateTable('sign_ins').set({ next_poll_at: new Date(Date.now() - 1000).toISOString() }).execute()

  await card.getByText('Signed in with the code: alice@contoso.com is linked to Mailbridge.').waitFor()
  assert.equal(await page.evaluate(() => (window as unknown as { stayed?: boolean }).stayed), true, 'the page updated in place')
  await noJs.getByRole('link', { name: 'Refresh' }).click()
  await noJs.getByText('Signed in with the code').waitFor()
  assert.equal(await noJs.getByRole('status').filter({ hasText: 'Outlook Token Valid' }).count(), 1)
})
