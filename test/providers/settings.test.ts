import assert from 'node:assert/strict'
import { test } from 'node:test'
import { outlookApp } from '../../src/oauth/providers.ts'
import { startMailbridge } from '../support/harness.ts'
import { ALICE, CLIENT_ID, CLIENT_SECRET } from '../support/world.ts'

const TENANT = '8f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b'

test('national clouds: US Government moves the login host, the scopes and the default mail hosts together; China likewise', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  await mb.api('PATCH', '/api/v1/settings', { external_email_servers: true, microsoft_outlook_client_id: CLIENT_ID, microsoft_outlook_client_secret: CLIENT_SECRET })
  const global = (await mb.api('POST', '/api/v1/outgoing-servers', { name: 'g', authentication: 'outlook', username: ALICE })).json()
  assert.equal(global.host, 'smtp.office365.com')

  const patched = await mb.api('PATCH', '/api/v1/settings', { microsoft_outlook_cloud: 'usgov' })
  assert.equal(patched.statusCode, 200, patched.body)
  assert.equal(patched.json().microsoft_outlook_cloud, 'usgov')
  assert.equal((await mb.api('GET', '/api/v1/parameters/microsoft_outlook.endpoint')).json().value, 'https://login.microsoftonline.us/common/oauth2/v2.0/')
  const out = (await mb.api('POST', '/api/v1/outgoing-servers', { name: 'gov', authentication: 'outlook', username: ALICE })).json()
  assert.deepEqual([out.host, out.port, out.encryption], ['smtp.office365.us', 587, 'starttls'])
  const imap = (await mb.api('POST', '/api/v1/incoming-servers', { name: 'gov in', authentication: 'outlook', username: ALICE })).json()
  assert.deepEqual([imap.host, imap.port], ['outlook.office365.us', 993])
  const url = new URL((await mb.api('POST', `/api/v1/outgoing-servers/${out.id}/connect`)).json().authorize_url)
  assert.equal(url.origin + url.pathname, 'https://login.microsoftonline.us/common/oauth2/v2.0/authorize')
  assert.equal(url.searchParams.get('scope'), 'openid email offline_access https://outlook.office365.us/SMTP.Send https://outlook.office365.us/IMAP.AccessAsUser.All')
  const app = await mb.services.credentials.client(outlookApp, { tenant: TENANT })
  assert.equal(app.endpoints.token, `https://login.microsoftonline.us/${TENANT}/oauth2/v2.0/token`)
  assert.deepEqual(app.scopes, ['https://outlook.office365.us/.default'])

  await mb.api('PATCH', '/api/v1/settings', { microsoft_outlook_cloud: 'china' })
  const cn = (await mb.api('POST', '/api/v1/outgoing-servers', { name: 'cn', authentication: 'outlook', username: ALICE })).json()
  assert.equal(cn.host, 'smtp.partner.outlook.cn')
  const cnUrl = new URL((await mb.api('POST', `/api/v1/outgoing-servers/${cn.id}/connect`)).json().authorize_url)
  assert.equal(cnUrl.origin, 'https://login.partner.microsoftonline.cn')
  assert.match(cnUrl.searchParams.get('scope')!, /https:\/\/partner\.outlook\.cn\/SMTP\.Send/)

  // A stored endpoint (a single-tenant app, or an emulator) still wins over the cloud's default host.
  await mb.api('PUT', '/api/v1/parameters/microsoft_outlook.endpoint', { value: `https://login.partner.microsoftonline.cn/${TENANT}/oauth2/v2.0/` })
  const pinned = new URL((await mb.api('POST', `/api/v1/outgoing-servers/${cn.id}/connect`)).json().authorize_url)
  assert.equal(pinned.pathname, `/${TENANT}/oauth2/v2.0/authorize`)
  // Servers already made keep their hosts: the cloud only changes defaults.
  assert.equal((await mb.api('GET', `/api/v1/outgoing-servers/${global.id}`)).json().host, 'smtp.office365.com')

  const bad = await mb.api('PATCH', '/api/v1/settings', { microsoft_outlook_cloud: 'mars' })
  assert.equal(bad.statusCode, 400)
})

test('settings: Gmail Credentials are stored with a write-only, sealed secret; the endpoints are https parameters; Gmail redirect URI is listed', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const res = await mb.api('PATCH', '/api/v1/settings', { google_gmail_client_id: '123-abc.apps.googleusercontent.com', google_gmail_client_secret: 'GOCSPX-secret' })
  assert.equal(res.statusCode, 200, res.body)
  const v = res.json()
  assert.equal(v.google_gmail_client_id, '123-abc.apps.googleusercontent.com')
  assert.equal(v.google_gmail_client_secret_set, true)
  assert.equal(JSON.stringify(v).includes('GOCSPX-secret'), false, 'the secret is never returned')
  assert.equal(v.redirect_uris.gmail, 'http://localhost:8080/google_gmail/confirm')
  assert.equal(v.redirect_uris.outlook_app, undefined, 'app-only access has no redirect URI')
  const stored = await mb.services.database.db.selectFrom('settings').select('value').where('key', '=', 'google_gmail_client_secret').executeTakeFirstOrThrow()
  assert.equal(stored.value.includes('GOCSPX-secret'), false, 'sealed at rest')

  assert.equal((await mb.api('GET', '/api/v1/parameters/google_gmail.auth_endpoint')).json().value, 'https://accounts.google.com/o/oauth2/v2/auth')
  assert.equal((await mb.api('GET', '/api/v1/parameters/google_gmail.token_endpoint')).json().value, 'https://oauth2.googleapis.com/token')
  const http = await mb.api('PUT', '/api/v1/parameters/google_gmail.token_endpoint', { value: 'http://127.0.0.1:1/token' })
  assert.equal(http.statusCode, 400)
  assert.match(http.json().error.message, /google_gmail\.token_endpoint must use https/)
  const notUrl = await mb.api('PUT', '/api/v1/parameters/google_gmail.auth_endpoint', { value: 'accounts.google.com' })
  assert.equal(notUrl.statusCode, 400)

  const twoLines = await mb.api('PATCH', '/api/v1/settings', { google_gmail_client_secret: 'a\nb' })
  assert.equal(twoLines.statusCode, 400)
  assert.equal(twoLines.json().error.field, 'google_gmail_client_secret')
  const noCreds = await mb.api('POST', '/api/v1/outgoing-servers', { name: 'm', authentication: 'gmail', username: 'carol@gmail.com' })
  await mb.api('PATCH', '/api/v1/settings', { google_gmail_client_secret: null })
  const refused = await mb.api('POST', `/api/v1/outgoing-servers/${noCreds.json().id}/connect`)
  assert.equal(refused.statusCode, 409)
  assert.match(refused.json().error.message, /Gmail Credentials/)
})
