import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { test } from 'node:test'
import { createSelfSigned } from '../../src/crypto/self-signed.ts'
import { CLIENT_ID, CLIENT_SECRET, startUiWorld } from '../support/ui-world.ts'

test('settings page in Chromium: Generate a certificate downloads the .cer, it waits until used, then the page shows its thumbprint and expiry; one expiring soon is warned', async (t) => {
  const w = await startUiWorld()
  t.after(w.close)
  const { page, url, mb, ms } = w
  await mb.services.settings.update({ external_email_servers: true, microsoft_outlook_client_id: CLIENT_ID, microsoft_outlook_client_secret: CLIENT_SECRET })
  await w.signIn()
  await page.goto(`${url}/admin/settings`)
  await page.getByRole('heading', { name: 'Generate a certificate for Azure' }).waitFor()

  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Generate a certificate' }).click()])
  assert.equal(download.suggestedFilename(), 'mailbridge-outlook.cer')
  const pem = await readFile((await download.path())!, 'utf8')
  assert.ok(!pem.includes('PRIVATE KEY'), 'the download is the public certificate only')
  const cert = new X509Certificate(pem)
  const thumbprint = cert.fingerprint.replace(/:/g, '')
  // Not in use yet: the secret still signs the app in until the admin has uploaded it and chosen it.
  assert.equal((await mb.services.settings.view()).microsoft_outlook_client_certificate_set, false)

  await page.goto(`${url}/admin/settings`)
  await page.locator('#pending-certificate').getByText(thumbprint).waitFor()
  ms.uploadCertificate(CLIENT_ID, pem)
  await w.shot('settings-certificate-pending')
  await page.getByRole('button', { name: 'Use this certificate' }).click()
  await page.getByText('Settings saved.').waitFor()
  assert.equal(await page.locator('#certificate-thumbprint').innerText(), thumbprint)
  assert.equal(await page.locator('#certificate-expires').innerText(), new Date(cert.validTo).toISOString().slice(0, 10))
  assert.equal(await page.locator('#pending-certificate').count(), 0, 'no longer pending')
  const view = await mb.services.settings.view()
  assert.equal(view.microsoft_outlook_client_certificate_set, true)
  assert.equal(view.microsoft_outlook_client_certificate_thumbprint, thumbprint)

  // A certificate with 10 days left: every page warns, and says what to do.
  const short = await createSelfSigned({ subject: 'Mailbridge', days: 10 })
  ms.uploadCertificate(CLIENT_ID, short.certificatePem)
  await page.getByLabel('Client certificate (PEM certificate and private key)').fill(short.certificatePem + short.privateKeyPem)
  await page.getByRole('button', { name: 'Save', exact: true }).click()
  await page.getByText('Settings saved.').waitFor()
  await page.goto(`${url}/admin/outgoing-servers`)
  await page.getByRole('alert').filter({ hasText: /The Outlook client certificate expires on \d{4}-\d\d-\d\d, in 1[01] days\. Generate a new certificate/ }).waitFor()
  await w.shot('settings-certificate-expiring')

  // The next secret and its expiry are on the form too.
  await page.goto(`${url}/admin/settings`)
  assert.equal(await page.getByLabel('Next Client Secret', { exact: true }).getAttribute('type'), 'password')
  await page.getByLabel('Next Client Secret expiry date').waitFor()
})
