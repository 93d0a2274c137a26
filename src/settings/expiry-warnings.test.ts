import assert from 'node:assert/strict'
import { test } from 'node:test'
import { credentialWarnings } from './expiry-warnings.ts'
import type { SettingsView } from './service.ts'

const NOW = Date.UTC(2027, 5, 1)
const inDays = (d: number) => new Date(NOW + d * 86_400_000).toISOString()
const view = (o: Partial<SettingsView>): SettingsView => ({
  external_email_servers: true, microsoft_outlook_client_id: 'x', microsoft_outlook_client_secret_set: true, microsoft_outlook_client_secret_expires_at: null,
  microsoft_outlook_client_secret_next_set: false, microsoft_outlook_client_secret_next_expires_at: null, microsoft_outlook_client_secret_promoted_at: null,
  microsoft_outlook_client_certificate_set: false, microsoft_outlook_client_certificate_thumbprint: null, microsoft_outlook_client_certificate_expires_at: null,
  microsoft_outlook_cloud: 'global', google_gmail_client_id: '', google_gmail_client_secret_set: false, ...o,
})
const texts = (o: Partial<SettingsView>) => credentialWarnings(view(o), NOW).map((w) => `${w.level}: ${w.text}`)

test('credentialWarnings(): nothing until 30 days before an expiry', () => {
  assert.deepEqual(texts({ microsoft_outlook_client_secret_expires_at: inDays(31) }), [])
  assert.deepEqual(texts({}), [])
})

test('credentialWarnings(): a secret expiring with no next one says to add the next one; expired says every mailbox stopped', () => {
  const [soon] = texts({ microsoft_outlook_client_secret_expires_at: inDays(12) })
  assert.match(soon!, /^warn: The Outlook Client Secret expires on 2027-06-13, in 12 days\. .*as the next secret in General Settings/)
  assert.match(texts({ microsoft_outlook_client_secret_expires_at: inDays(-2) })[0]!, /^bad: .*expired on 2027-05-30: every mailbox has stopped \(AADSTS7000222\)/)
})

test('credentialWarnings(): with a next secret the current one\'s end is no outage; the next one is warned about in its turn', () => {
  assert.deepEqual(texts({ microsoft_outlook_client_secret_expires_at: inDays(5), microsoft_outlook_client_secret_next_set: true, microsoft_outlook_client_secret_next_expires_at: inDays(400) }), [
    'warn: The Outlook Client Secret expires on 2027-06-06, in 5 days; the next secret takes over when Microsoft refuses it, with no interruption.',
  ])
  assert.match(texts({ microsoft_outlook_client_secret_next_set: true, microsoft_outlook_client_secret_next_expires_at: inDays(20) })[0]!, /^warn: The next Outlook Client Secret expires on 2027-06-21, in 20 days: create another/)
})

test('credentialWarnings(): after a rollover, until a new next secret is saved', () => {
  assert.match(texts({ microsoft_outlook_client_secret_promoted_at: inDays(-1) })[0]!, /^warn: On 2027-05-31 Microsoft refused the Outlook Client Secret, and the next secret took over/)
  assert.deepEqual(texts({ microsoft_outlook_client_secret_promoted_at: inDays(-1), microsoft_outlook_client_secret_next_set: true }), [])
})

test('credentialWarnings(): with a certificate, its expiry is warned and the unused secrets are not', () => {
  const cert = { microsoft_outlook_client_certificate_set: true, microsoft_outlook_client_secret_expires_at: inDays(-10) }
  assert.deepEqual(texts({ ...cert, microsoft_outlook_client_certificate_expires_at: inDays(200) }), [])
  assert.match(texts({ ...cert, microsoft_outlook_client_certificate_expires_at: inDays(3) })[0]!, /^warn: The Outlook client certificate expires on 2027-06-04, in 3 days\. Generate a new certificate/)
  assert.match(texts({ ...cert, microsoft_outlook_client_certificate_expires_at: inDays(-1) })[0]!, /^bad: .*expired on 2027-05-31: every mailbox has stopped \(AADSTS700027\)/)
})
