/**
 * Servers with a transport (issue 16, design.md §10): outgoing "smtp" | "graph", incoming "imap" | "graph", Graph
 * only for Outlook and Outlook (app-only); the parameter microsoft_graph.endpoint following the national cloud.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startMailbridge } from '../support/harness.ts'

const TENANT = '8f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b'

test('servers: transport defaults to smtp / imap, takes "graph" for Outlook, and is read back and updated', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const plain = (await mb.api('POST', '/api/v1/outgoing-servers', { name: 'SMTP', authentication: 'outlook', username: 'alice@contoso.com' })).json()
  assert.equal(plain.transport, 'smtp')
  const created = await mb.api('POST', '/api/v1/outgoing-servers', { name: 'Graph', authentication: 'outlook', transport: 'graph', username: 'alice@contoso.com', encryption: 'ssl' })
  assert.equal(created.statusCode, 201, created.body)
  const graph = created.json()
  assert.equal(graph.transport, 'graph', 'encryption is not checked for Graph: it is not used')
  assert.equal((await mb.api('GET', `/api/v1/outgoing-servers/${graph.id}`)).json().transport, 'graph')
  const back = await mb.api('PATCH', `/api/v1/outgoing-servers/${graph.id}`, { transport: 'smtp', encryption: 'starttls' })
  assert.equal(back.json().transport, 'smtp')
  assert.equal((await mb.api('PATCH', `/api/v1/outgoing-servers/${graph.id}`, { name: 'Renamed' })).json().transport, 'smtp', 'a patch without transport keeps it')

  const inbox = (await mb.api('POST', '/api/v1/incoming-servers', { name: 'IMAP', authentication: 'outlook', username: 'alice@contoso.com' })).json()
  assert.equal(inbox.transport, 'imap')
  const app = await mb.api('POST', '/api/v1/incoming-servers', { name: 'Graph', authentication: 'outlook_app', transport: 'graph', username: 'sales@contoso.com', tenant_id: TENANT })
  assert.equal(app.statusCode, 201, app.body)
  assert.equal(app.json().transport, 'graph')
  const confirmed = await mb.services.database.db.updateTable('incoming_servers').set({ state: 'confirmed' }).where('id', '=', inbox.id).execute()
  assert.equal(confirmed[0]!.numUpdatedRows, 1n)
  const moved = (await mb.api('PATCH', `/api/v1/incoming-servers/${inbox.id}`, { transport: 'graph' })).json()
  assert.deepEqual([moved.transport, moved.state], ['graph', 'draft'], 'another transport is tested and confirmed again')
})

test('servers: transport "graph" without Outlook authentication is 400 naming the field and what to choose', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const cases: Array<[string, Record<string, unknown>]> = [
    ['outgoing', { name: 'x', authentication: 'gmail', transport: 'graph', username: 'carol@gmail.com' }],
    ['outgoing', { name: 'x', authentication: 'login', transport: 'graph', host: 'smtp.example.com', username: 'a@example.com', password: 'p' }],
    ['outgoing', { name: 'x', authentication: 'none', transport: 'graph', host: 'smtp.example.com' }],
    ['incoming', { name: 'x', authentication: 'gmail', transport: 'graph', username: 'carol@gmail.com' }],
  ]
  for (const [kind, body] of cases) {
    const res = await mb.api('POST', `/api/v1/${kind}-servers`, body)
    assert.equal(res.statusCode, 400, JSON.stringify(body))
    assert.equal(res.json().error.field, 'transport')
    assert.match(res.json().error.message, /needs authentication "outlook" or "outlook_app"/)
  }
  for (const [kind, transport] of [['outgoing', 'imap'], ['incoming', 'smtp'], ['outgoing', 'ews']]) {
    const res = await mb.api('POST', `/api/v1/${kind}-servers`, { name: 'x', authentication: 'outlook', username: 'alice@contoso.com', transport })
    assert.equal(res.statusCode, 400, `${kind} ${transport}`)
  }
  const s = (await mb.api('POST', '/api/v1/outgoing-servers', { name: 'x', authentication: 'outlook', username: 'alice@contoso.com', transport: 'graph' })).json()
  const toGmail = await mb.api('PATCH', `/api/v1/outgoing-servers/${s.id}`, { authentication: 'gmail', username: 'carol@gmail.com', transport: 'graph' })
  assert.equal(toGmail.statusCode, 400)
  const switched = await mb.api('PATCH', `/api/v1/outgoing-servers/${s.id}`, { authentication: 'gmail', username: 'carol@gmail.com' })
  assert.equal(switched.json().transport, 'smtp', 'a switch to a provider without Graph falls back to SMTP')
  assert.equal((await mb.api('GET', '/api/v1/incoming-servers')).json().items.length, 0, 'nothing was stored')
})

test('servers: the OpenAPI document gives transport its choices and says when to pick Graph', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const doc = (await mb.app.inject({ method: 'GET', url: '/openapi.json' })).json()
  const schemas = Object.values(doc.components.schemas) as Array<{ title?: string; properties: Record<string, { anyOf: Array<{ enum: string[] }>; description: string }> }>
  const transport = (title: string) => schemas.find((s) => s.title === title)!.properties.transport!
  assert.deepEqual(transport('OutgoingServer').anyOf.flatMap((a) => a.enum), ['smtp', 'graph'])
  assert.deepEqual(transport('IncomingServer').anyOf.flatMap((a) => a.enum), ['imap', 'graph'])
  assert.match(transport('OutgoingServer').description, /SMTP AUTH is disabled/)
  assert.match(transport('IncomingServer').description, /IMAP is off/)
})

test('parameter microsoft_graph.endpoint: its default follows the national cloud; a stored value must be https and keeps a trailing slash', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const value = async () => (await mb.api('GET', '/api/v1/parameters/microsoft_graph.endpoint')).json().value
  assert.equal(await value(), 'https://graph.microsoft.com/')
  for (const [cloud, endpoint] of [['usgov', 'https://graph.microsoft.us/'], ['china', 'https://microsoftgraph.chinacloudapi.cn/'], ['global', 'https://graph.microsoft.com/']]) {
    await mb.api('PATCH', '/api/v1/settings', { microsoft_outlook_cloud: cloud })
    assert.equal(await value(), endpoint, cloud)
  }
  const http = await mb.api('PUT', '/api/v1/parameters/microsoft_graph.endpoint', { value: 'http://graph.microsoft.com/' })
  assert.equal(http.statusCode, 400)
  assert.match(http.json().error.message, /https/)
  // DoD's Graph is a US Government host: refused in the global cloud, taken in usgov (trusted hosts, design.md §10).
  const elsewhere = await mb.api('PUT', '/api/v1/parameters/microsoft_graph.endpoint', { value: 'https://dod-graph.microsoft.us' })
  assert.equal(elsewhere.statusCode, 400)
  assert.match(elsewhere.json().error.message, /graph\.microsoft\.com/)
  await mb.api('PATCH', '/api/v1/settings', { microsoft_outlook_cloud: 'usgov' })
  const put = await mb.api('PUT', '/api/v1/parameters/microsoft_graph.endpoint', { value: 'https://dod-graph.microsoft.us' })
  assert.equal(put.json().value, 'https://dod-graph.microsoft.us/')
  await mb.api('PATCH', '/api/v1/settings', { microsoft_outlook_cloud: 'china' })
  assert.equal(await value(), 'https://dod-graph.microsoft.us/', 'a stored endpoint wins over the cloud')
})
