import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startGoogleEmulator } from '../support/google-emulator.ts'
import { adminClient } from '../support/admin-client.ts'
import { CAROL, GMAIL_CLIENT_ID, GMAIL_CLIENT_SECRET } from '../support/gmail-world.ts'
import { startUiWorld } from '../support/ui-world.ts'
import { startWorld } from '../support/world.ts'

test('ui: "Gmail Credentials" → new server with Gmail → "Connect your Gmail account" → Google\'s consent → "Gmail Token Valid"', async (t) => {
  const w = await startUiWorld()
  const google = await startGoogleEmulator()
  t.after(async () => {
    await w.close()
    await google.close()
  })
  google.registerClient({ clientId: GMAIL_CLIENT_ID, clientSecret: GMAIL_CLIENT_SECRET, redirectUris: [`${w.url}/google_gmail/confirm`], name: 'Mailbridge' })
  google.addUser(CAROL)
  await w.mb.services.settings.setParameter('google_gmail.auth_endpoint', google.authEndpoint)
  await w.mb.services.settings.setParameter('google_gmail.token_endpoint', google.tokenEndpoint)
  const { page, url } = w
  await w.signIn()
  await page.goto(`${url}/admin/settings`)

  await page.getByLabel('External Email Servers').check()
  const credentials = page.getByRole('group', { name: 'Gmail Credentials' })
  assert.equal(await credentials.isVisible(), true)
  await credentials.getByLabel('Client ID').fill(GMAIL_CLIENT_ID)
  await credentials.getByLabel('Client Secret', { exact: true }).fill(GMAIL_CLIENT_SECRET)
  assert.equal(await page.locator('#gmail-redirect-uri').innerText(), `${url}/google_gmail/confirm`)
  await page.getByRole('button', { name: 'Save' }).click()
  await page.getByText('Settings saved.').waitFor()
  assert.equal(await credentials.getByLabel('Client ID').inputValue(), GMAIL_CLIENT_ID)
  assert.equal(await credentials.locator('.tag.set').innerText(), 'set')
  assert.ok(!(await page.content()).includes(GMAIL_CLIENT_SECRET))
  await w.shot('gmail-credentials')

  await page.getByRole('main').getByRole('link', { name: 'Outgoing Email Servers' }).click()
  await page.getByRole('link', { name: 'New' }).click()
  await page.getByLabel('Gmail', { exact: true }).check()
  await page.getByLabel('Description').fill('Carol\'s Gmail')
  await page.getByLabel('Username', { exact: true }).fill(CAROL)
  // Host left empty: Gmail fills in smtp.gmail.com.
  await page.getByRole('button', { name: 'Save' }).click()
  await page.getByText('Saved.').waitFor()
  assert.equal(await page.getByLabel('Host').inputValue(), 'smtp.gmail.com')
  assert.equal(await page.locator('.tag', { hasText: 'Gmail Token Missing' }).isVisible(), true)
  await page.getByRole('button', { name: 'Connect your Gmail account' }).click()

  // Google's consent page (the emulator's): the account is pre-filled from login_hint; "Allow".
  await page.getByRole('heading', { name: /wants access to your Google Account/ }).waitFor()
  assert.equal(new URL(page.url()).origin, google.url)
  assert.equal(await page.getByLabel('Email or phone').inputValue(), CAROL)
  await page.getByRole('button', { name: 'Allow' }).click()

  await page.waitForURL(/\/admin\/outgoing-servers\/[0-9a-f]+\?connected=1$/)
  const tag = page.locator('.tag', { hasText: 'Gmail Token Valid' })
  await tag.waitFor()
  assert.equal(await tag.evaluate((e) => getComputedStyle(e).backgroundColor), 'rgb(26, 127, 55)', 'the tag is green')
  assert.equal(await page.getByRole('button', { name: 'Reconnect your Gmail account' }).isVisible(), true)
  await w.shot('gmail-server')
})

test('ui: an Outlook (app-only) server shows a Tenant ID, no Connect button, and Test Connection turns its tag green', async (t) => {
  const w = await startWorld()
  t.after(w.close)
  const TENANT = '8f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b'
  w.ms.grantAppAccess({ clientId: (await w.mb.services.settings.get('microsoft_outlook_client_id'))!, tenant: TENANT, roles: ['SMTP.SendAsApp'], mailboxes: ['sales@contoso.com'] })
  const admin = await adminClient(w.mb.app, w.mb.services)
  const fields = { name: 'Sales', authentication: 'outlook_app', username: 'sales@contoso.com', host: w.smtp.host, port: String(w.smtp.port), encryption: 'starttls', then: 'save' }
  const missing = await admin.post('/admin/outgoing-servers', { ...fields, tenant_id: '' })
  assert.equal(missing.statusCode, 400)
  assert.match(missing.body, /needs its tenant_id/)
  const created = await admin.post('/admin/outgoing-servers', { ...fields, tenant_id: TENANT })
  assert.equal(created.statusCode, 303, created.body)
  const page = await admin.get(created.headers.location as string)
  assert.match(page.body, /Tenant ID/)
  assert.match(page.body, new RegExp(`value="${TENANT}"`))
  assert.doesNotMatch(page.body, /Connect your/)
  assert.match(page.body, /No one signs in/)
  const tested = await admin.post(`${(created.headers.location as string).split('?')[0]}/test`)
  assert.match(tested.body, /Connection Test Successful!/)
  assert.match(tested.body, /Outlook \(app-only\) Token Valid/)
})
