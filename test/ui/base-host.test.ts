import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ADMIN_PASSWORD, ALICE, CLIENT_ID, CLIENT_SECRET, startUiWorld, type UiWorld } from '../support/ui-world.ts'

// MAILBRIDGE_BASE_URL says localhost; the same node also answers on 127.0.0.1, the address its banner prints first.
const world = async (t: { after: (fn: () => Promise<void>) => void }) => {
  const w = await startUiWorld({ baseHost: 'localhost' })
  t.after(w.close)
  await w.mb.services.settings.update({ external_email_servers: true, microsoft_outlook_client_id: CLIENT_ID, microsoft_outlook_client_secret: CLIENT_SECRET })
  const server = await w.mb.services.outgoingServers.create({ name: 'Sales', authentication: 'outlook', host: w.smtp.host, port: w.smtp.port, encryption: 'starttls', username: ALICE })
  const other = w.url.replace('//localhost:', '//127.0.0.1:')
  return { w, server, other }
}

async function signInAt(w: UiWorld, url: string) {
  const { page } = w
  await page.goto(url)
  await page.getByLabel('Username').fill('admin')
  await page.getByLabel('Password').fill(ADMIN_PASSWORD)
  await page.getByRole('button', { name: 'Sign in' }).click()
}

test('base host: the UI opened on 127.0.0.1 moves to the base URL (localhost) before sign-in, so Connect ends on "Outlook Token Valid"', async (t) => {
  const { w, server, other } = await world(t)
  const { page } = w
  await signInAt(w, `${other}/admin/outgoing-servers/${server.id}`)
  assert.equal(new URL(page.url()).host, new URL(w.url).host, 'signed in on the base URL\'s host')
  await page.getByRole('button', { name: 'Connect your Outlook account' }).click()
  await page.getByRole('button', { name: 'Yes' }).click()
  await page.locator('.tag', { hasText: 'Outlook Token Valid' }).waitFor()
  assert.match(page.url(), /\/admin\/outgoing-servers\/[0-9a-f]+\?connected=1$/)
})

test('base host: a consent that comes back without the session it was started in says so and links to the base URL', async (t) => {
  const { w, server } = await world(t)
  const { page } = w
  await signInAt(w, `${w.url}/admin/outgoing-servers/${server.id}`)
  await page.getByRole('button', { name: 'Connect your Outlook account' }).click()
  await page.getByRole('heading', { name: 'Permissions requested' }).waitFor()
  // The consent finished in another browser profile, which has no Mailbridge session (as on another host name).
  const elsewhere = await (await w.browser.newContext({ ignoreHTTPSErrors: true })).newPage()
  await elsewhere.goto(page.url())
  await elsewhere.getByRole('button', { name: 'Yes' }).click()
  await elsewhere.getByRole('alert').waitFor()
  assert.match(await elsewhere.getByRole('alert').innerText(), /admin UI must be opened at Mailbridge's public URL \(MAILBRIDGE_BASE_URL\)/)
  const link = elsewhere.getByRole('link', { name: `Open Mailbridge at ${w.url}/admin` })
  assert.equal(await link.getAttribute('href'), `${w.url}/admin/outgoing-servers/${server.id}`)
  await elsewhere.context().close()
})
