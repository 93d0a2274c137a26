import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { html, type Html } from '../../html.ts'
import type { IncomingServer, IncomingServerInput } from '../../incoming/model.ts'
import { banner, csrfField, field, formError, formValue, postButton, radios, select, sendPage, type FormError, type MenuItem, type Ui } from './kit.ts'
import { providerFor } from '../../oauth/providers.ts'
import { OAUTH_CHOICES, tenantField, tokenTag, transportChoice } from './outgoing-servers.ts'
import { serverPages, type ServerForm } from './server-pages.ts'

export const incomingServerMenu: MenuItem[] = [{ group: 'Settings', label: 'Incoming Email Servers', href: '/admin/incoming-servers' }]

const BASE = '/admin/incoming-servers'
type Values = Partial<Record<'name' | 'authentication' | 'transport' | 'username' | 'tenant_id' | 'host' | 'port' | 'encryption' | 'folder' | 'poll_interval_s' | 'mark_seen', string>>

const toValues = (s: IncomingServer): Values => ({
  name: s.name,
  authentication: s.authentication,
  transport: s.transport,
  username: s.username,
  tenant_id: s.tenant_id ?? '',
  host: s.host,
  port: String(s.port),
  encryption: s.encryption,
  folder: s.folder,
  poll_interval_s: String(s.poll_interval_s),
  mark_seen: s.mark_seen ? '1' : '0',
})

/** Form fields → the API's input; empty means the default (the provider's host and port, INBOX, 60 s). */
function toInput(body: unknown, creating: boolean): IncomingServerInput | FormError {
  const v = (k: keyof Values) => formValue(body, k)?.trim()
  const auth = (v('authentication') || 'outlook') as NonNullable<IncomingServerInput['authentication']>
  const input: IncomingServerInput = { authentication: auth }
  const transport = v('transport')
  if (transport) input.transport = transport as IncomingServerInput['transport']
  if (v('name') !== undefined) input.name = v('name')
  if (v('username') !== undefined) input.username = v('username')
  if (providerFor(auth)?.needsTenant) input.tenant_id = v('tenant_id') || null
  else if (!creating) input.tenant_id = null
  if (v('host')) input.host = v('host')
  if (v('encryption')) input.encryption = v('encryption') as IncomingServerInput['encryption']
  if (v('folder')) input.folder = v('folder')
  for (const [k, min, max] of [['port', 1, 65535], ['poll_interval_s', 1, 86_400]] as const) {
    const raw = v(k)
    if (!raw) continue
    const n = Number(raw)
    if (!Number.isInteger(n) || n < min || n > max) return { field: k, message: `${k} must be a whole number from ${min} to ${max}.` }
    input[k] = n
  }
  input.mark_seen = v('mark_seen') !== '0'
  return input
}


/** Incoming Email Servers: list, form, Connect your Outlook account, Test & Confirm, Fetch Now. */
export const incomingServerPages: FastifyPluginAsync<{ ui: Ui }> = async (app, { ui }) => {
  const servers = ui.services.incomingServers
  const fetcher = ui.services.fetcher

  app.get(BASE, async (req, reply) => {
    const items = await servers.list()
    const rows = items.map(
      (s) => html`<tr><td><a href="${BASE}/${s.id}">${s.name}</a></td><td>${s.username}</td><td>${s.transport === 'graph' ? 'Microsoft Graph' : `${s.host}:${s.port}`} ${s.folder}</td><td><span class="tag ${s.state === 'confirmed' ? 'ok' : 'muted'}">${s.state === 'confirmed' ? 'Confirmed' : 'Not Confirmed'}</span></td><td>${tokenTag(s)}</td><td>${s.last_fetch_at ? s.last_fetch_at.replace('T', ' ').slice(0, 19) : 'never'}${s.last_error ? html`<div class="reason">${s.last_error}</div>` : ''}</td></tr>`,
    )
    const body = html`<section class="card"><h1>Incoming Email Servers</h1>
<p><a class="button" href="${BASE}/new">New</a></p>
${items.length ? html`<table><thead><tr><th scope="col">Description</th><th scope="col">Username</th><th scope="col">Server</th><th scope="col">State</th><th scope="col">Token</th><th scope="col">Last fetch</th></tr></thead><tbody>${rows}</tbody></table>` : html`<p class="muted">No incoming server yet. Click New, give the mailbox address as Username, connect it, then Test &amp; Confirm.</p>`}
</section>`
    return sendPage(ui, req, reply, 'Incoming Email Servers', body)
  })

  const form = async (req: FastifyRequest, reply: FastifyReply, o: ServerForm<IncomingServer>) => {
    const s = o.server
    const v = o.values
    const connected = s && s.token.status !== 'missing'
    const p = providerFor(v.authentication ?? 'outlook')
    const body = html`<h1>${s ? s.name : 'New incoming server'}</h1>
${o.notice ?? ''}${o.error ? banner('bad', o.error.message) : ''}
<section class="card"><form method="post" action="${s ? `${BASE}/${s.id}` : BASE}">${csrfField(req.admin!)}
${field({ name: 'name', label: 'Description', value: v.name, required: true, error: o.error, hint: 'Any name, shown in lists.' })}
${radios({ name: 'authentication', legend: 'Authentication', value: v.authentication ?? 'outlook', error: o.error, options: OAUTH_CHOICES })}
${transportChoice('incoming', v.transport, o.error)}
${field({ name: 'username', label: 'Username', type: 'email', value: v.username, error: o.error, autocomplete: 'off', hint: 'The mailbox address; one consent serves its outgoing and incoming servers.' })}
${tenantField(v.tenant_id, o.error)}
${s ? html`<p>${tokenTag(s)} <span class="tag ${s.state === 'confirmed' ? 'ok' : 'muted'}">${s.state === 'confirmed' ? 'Confirmed' : 'Not Confirmed'}</span></p>` : ''}
${s?.sync_progress ? banner('warn', `Fetching: ${s.sync_progress}`) : ''}
<div class="mail-host">
${field({ name: 'host', label: 'Host', value: v.host, error: o.error, placeholder: 'outlook.office365.com', hint: 'Left empty, Outlook fills in outlook.office365.com and Gmail imap.gmail.com. Not used with Microsoft Graph.' })}
${field({ name: 'port', label: 'Port', type: 'number', value: v.port, error: o.error, min: 1, max: 65535, placeholder: '993' })}
${select({ name: 'encryption', label: 'Encryption', value: v.encryption ?? 'ssl', options: [['ssl', 'SSL/TLS'], ['starttls', 'TLS (STARTTLS)']], error: o.error })}
</div>
${field({ name: 'folder', label: 'Folder', value: v.folder, error: o.error, placeholder: 'INBOX' })}
${field({ name: 'poll_interval_s', label: 'Fetch every (seconds)', type: 'number', value: v.poll_interval_s, error: o.error, min: 1, placeholder: '60' })}
${select({ name: 'mark_seen', label: 'After storing a message', value: v.mark_seen ?? '1', options: [['1', 'Mark it read (\\Seen)'], ['0', 'Leave its flags alone']] })}
<div class="actions"><button type="submit" name="then" value="save">Save</button>
${p?.route ? html`<button type="submit" name="then" value="connect" class="secondary">${connected ? `Reconnect your ${p.label} account` : `Connect your ${p.label} account`}</button>` : ''}</div>
${p?.route ? html`<p class="hint">Connect saves the form, then sends you to ${p.company} to sign in as the Username and accept.</p>` : html`<p class="hint">No one signs in: Test &amp; Confirm requests a token for the app in the tenant.</p>`}
</form></section>
${s ? html`<section class="card"><h2>Check</h2><div class="actions">${postButton(req.admin!, `${BASE}/${s.id}/test`, 'Test & Confirm', { cls: '' })}${postButton(req.admin!, `${BASE}/${s.id}/fetch`, 'Fetch Now')}${postButton(req.admin!, `${BASE}/${s.id}/delete`, 'Delete', { cls: 'danger' })}</div>
<p class="hint">Test &amp; Confirm ${s.transport === 'graph' ? 'gets a Microsoft Graph token and opens' : html`signs in to ${s.host}:${s.port} with XOAUTH2 and opens`} ${s.folder}; a confirmed server is fetched every ${s.poll_interval_s} s. Last fetch: ${s.last_fetch_at ? s.last_fetch_at.replace('T', ' ').slice(0, 19) + ' UTC' : 'never'}.</p>
${s.last_error ? banner('bad', s.last_error) : ''}<p><a href="/admin/messages?server_id=${s.id}">Messages of this server</a></p></section>` : ''}`
    return sendPage(ui, req, reply, s ? s.name : 'New incoming server', body, o.status ?? (o.error ? 400 : 200))
  }

  app.get(`${BASE}/new`, async (req, reply) =>
    form(req, reply, { values: { authentication: 'outlook', encryption: 'ssl', mark_seen: '1', host: ui.imapDefaults?.host, port: ui.imapDefaults ? String(ui.imapDefaults.port) : undefined } }),
  )

  serverPages(app, {
    base: BASE,
    kind: 'incoming',
    servers,
    form,
    toValues,
    read: toInput,
    connected: (s) => `Connected: ${s.username} is linked to Mailbridge. Click Test & Confirm to start fetching.`,
  })

  app.post<{ Params: { id: string } }>(`${BASE}/:id/fetch`, async (req, reply) => {
    const s = await servers.get(req.params.id)
    let notice: Html
    try {
      const r = (await fetcher.fetch(s.id))!
      notice = banner(r.failed ? 'warn' : 'ok', `Fetch Now: ${r.fetched} fetched, ${r.stored} stored, ${r.duplicates} duplicates, ${r.failed} failed${r.parse_errors ? `, ${r.parse_errors} kept raw (unreadable)` : ''}.`)
    } catch (e) {
      notice = banner('bad', formError(e).message)
    }
    const fresh = await servers.get(s.id)
    return form(req, reply, { server: fresh, values: toValues(fresh), notice })
  })
}
