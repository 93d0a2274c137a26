import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { html, type Html } from '../../html.ts'
import { providerFor } from '../../oauth/providers.ts'
import type { OutgoingServer, OutgoingServerInput } from '../../outgoing/model.ts'
import { banner, csrfField, field, formValue, postButton, radios, select, sendPage, type FormError, type MenuItem, type Ui } from './kit.ts'
import { serverPages, type ServerForm } from './server-pages.ts'

export const outgoingServerMenu: MenuItem[] = [{ group: 'Settings', label: 'Outgoing Email Servers', href: '/admin/outgoing-servers' }]

const BASE = '/admin/outgoing-servers'
const FIELDS = ['name', 'authentication', 'transport', 'username', 'tenant_id', 'password', 'host', 'port', 'encryption', 'from_filter', 'sequence', 'max_per_minute'] as const
type Values = Partial<Record<(typeof FIELDS)[number], string>>

/** The OAuth choices, as Odoo's microsoft_outlook and google_gmail name them, and app-only access. */
export const OAUTH_CHOICES: Array<[string, string, string]> = [
  ['outlook', 'Outlook', 'OAuth with Microsoft 365: no password'],
  ['gmail', 'Gmail', 'OAuth with Google: no password'],
  ['outlook_app', 'Outlook (app-only)', 'A shared mailbox through the app\'s own permission: no one signs in'],
]

/** The Tenant ID field, shown for app-only access (the token is requested in that tenant). */
export const tenantField = (value: string | undefined, error: FormError | undefined): Html =>
  field({ name: 'tenant_id', label: 'Tenant ID', value, error, autocomplete: 'off', placeholder: '00000000-0000-0000-0000-000000000000', hint: 'Only for Outlook (app-only): the Directory (tenant) ID from the app\'s Overview page in Azure.' })

/**
 * The Transport choice of both server forms, with when to pick Graph. Host, port and encryption sit in a
 * `.mail-host` block the stylesheet hides while Graph is checked: no script, and without `:has()` they stay
 * shown and are ignored for Graph.
 */
export function transportChoice(kind: 'outgoing' | 'incoming', value: string | undefined, error: FormError | undefined): Html {
  const [plain, label, when] =
    kind === 'outgoing'
      ? ['smtp', 'SMTP', 'SMTP AUTH is disabled for the mailbox or its tenant (Test Connection answers 5.7.139)']
      : ['imap', 'IMAP', 'IMAP is turned off for the mailbox']
  return html`${radios({ name: 'transport', legend: 'Transport', value: value || plain, error, options: [[plain, label, 'to the host and port below'], ['graph', 'Microsoft Graph', 'the Graph API, over HTTPS']] })}
<p class="hint">Pick Microsoft Graph when ${when}; it needs authentication Outlook or Outlook (app-only) and the Graph permission ${kind === 'outgoing' ? 'Mail.Send' : 'Mail.ReadWrite'} (see the README).</p>`
}

const ENCRYPTIONS: Array<[string, string]> = [
  ['starttls', 'TLS (STARTTLS)'],
  ['ssl', 'SSL/TLS'],
  ['none', 'None'],
]

/** The token tag: green "Outlook Token Valid", or red with its cause (design.md §2, token health). */
export const tokenTag = (s: Pick<OutgoingServer, 'authentication' | 'token'>): Html | '' =>
  providerFor(s.authentication) ? html`<span class="tag ${s.token.valid ? 'ok' : 'bad'}" role="status">${s.token.label}</span>` : ''

const toValues = (s: OutgoingServer): Values => ({
  name: s.name,
  authentication: s.authentication,
  transport: s.transport,
  username: s.username,
  tenant_id: s.tenant_id ?? '',
  host: s.host,
  port: String(s.port),
  encryption: s.encryption,
  from_filter: s.from_filter ?? '',
  sequence: String(s.sequence),
  max_per_minute: s.max_per_minute === null ? '' : String(s.max_per_minute),
})

/**
 * Form fields → the API's input. An empty field means "the default" on create (Outlook fills in its host,
 * port, from_filter and rate) and "none" on update; an empty password keeps the stored one.
 */
function toInput(body: unknown, creating: boolean): OutgoingServerInput {
  const v = (k: (typeof FIELDS)[number]) => formValue(body, k)?.trim()
  const num = (k: (typeof FIELDS)[number]): number | undefined => {
    const raw = v(k)
    return raw ? Number(raw) : undefined
  }
  const input: OutgoingServerInput = {}
  const name = v('name')
  if (name !== undefined) input.name = name
  const auth = v('authentication')
  if (auth) input.authentication = auth as OutgoingServerInput['authentication']
  const transport = v('transport')
  if (transport) input.transport = transport as OutgoingServerInput['transport']
  const username = v('username')
  if (username !== undefined) input.username = username
  // The tenant belongs to app-only access; switching away from it clears it.
  const tenant = v('tenant_id')
  if (auth && providerFor(auth)?.needsTenant) input.tenant_id = tenant || null
  else if (!creating) input.tenant_id = null
  const password = formValue(body, 'password')
  if (password) input.password = password
  if (v('host')) input.host = v('host')
  if (num('port') !== undefined) input.port = num('port')
  if (v('encryption')) input.encryption = v('encryption') as OutgoingServerInput['encryption']
  const fromFilter = v('from_filter')
  if (fromFilter) input.from_filter = fromFilter
  else if (!creating && fromFilter !== undefined) input.from_filter = null
  if (num('sequence') !== undefined) input.sequence = num('sequence')
  const rate = v('max_per_minute')
  if (rate) input.max_per_minute = Number(rate)
  else if (!creating && rate !== undefined) input.max_per_minute = null
  return input
}

/** Numbers the schema would refuse, refused with a message before the service sees NaN. */
function checkNumbers(input: OutgoingServerInput): FormError | undefined {
  for (const [k, n, min, max] of [['port', input.port, 1, 65535], ['sequence', input.sequence, 0, 1_000_000], ['max_per_minute', input.max_per_minute, 1, 100_000]] as const) {
    if (n !== undefined && n !== null && (!Number.isInteger(n) || n < min || n > max)) return { field: k, message: `${k} must be a whole number from ${min} to ${max}.` }
  }
  return undefined
}

/** Outgoing Email Servers: list, form, Connect your Outlook account, Test Connection. */
export const outgoingServerPages: FastifyPluginAsync<{ ui: Ui }> = async (app, { ui }) => {
  const servers = ui.services.outgoingServers

  /**
   * Non-delivery reports come back to the sending mailbox (Exchange Online sends them there): without an incoming
   * server fetching it, Mailbridge never learns that a mail bounced.
   */
  const bounceHintFor = async (mailbox: string) => {
    if (!mailbox) return ''
    const fetched = (await ui.services.incomingServers.list()).some((i) => i.username.toLowerCase() === mailbox.toLowerCase())
    if (fetched) return ''
    return html`<p class="hint"><a href="/admin/incoming-servers/new">Connect an incoming server for ${mailbox}</a> to learn about bounces: non-delivery reports arrive in the sending mailbox.</p>`
  }

  app.get(BASE, async (req, reply) => {
    const items = await servers.list()
    const rows = items.map(
      (s) => html`<tr><td><a href="${BASE}/${s.id}">${s.name}</a></td><td>${s.username}</td><td>${s.transport === 'graph' ? 'Microsoft Graph' : `${s.host}:${s.port}`}</td><td>${s.from_filter ?? ''}</td><td>${tokenTag(s)}${s.paused_until && Date.parse(s.paused_until) > Date.now() ? html` <span class="tag warn">paused</span>` : ''}</td></tr>`,
    )
    const body = html`<section class="card"><h1>Outgoing Email Servers</h1>
<p><a class="button" href="${BASE}/new">New</a></p>
${items.length ? html`<table><thead><tr><th scope="col">Description</th><th scope="col">Username</th><th scope="col">Host</th><th scope="col">from_filter</th><th scope="col">Token</th></tr></thead><tbody>${rows}</tbody></table>` : html`<p class="muted">No outgoing server yet. Click New, pick Outlook, and give the mailbox address as Username.</p>`}
</section>`
    return sendPage(ui, req, reply, 'Outgoing Email Servers', body)
  })

  const form = async (req: FastifyRequest, reply: FastifyReply, o: ServerForm<OutgoingServer>) => {
    const s = o.server
    const v = o.values
    const auth = v.authentication ?? 'outlook'
    const p = providerFor(auth)
    const connected = s && p && s.token.status !== 'missing'
    const action = s ? `${BASE}/${s.id}` : BASE
    const bounceHint = s ? await bounceHintFor(s.username) : ''
    const body = html`<h1>${s ? s.name : 'New outgoing server'}</h1>
${o.notice ?? ''}${o.error ? banner('bad', o.error.message) : ''}
<section class="card"><form method="post" action="${action}">${csrfField(req.admin!)}
${field({ name: 'name', label: 'Description', value: v.name, required: true, error: o.error, hint: 'Any name, shown in lists.' })}
${radios({ name: 'authentication', legend: 'Authentication', value: auth, error: o.error, options: [...OAUTH_CHOICES, ['login', 'Username and password'], ['none', 'None']] })}
${transportChoice('outgoing', v.transport, o.error)}
${field({ name: 'username', label: 'Username', type: 'email', value: v.username, error: o.error, autocomplete: 'off', hint: 'For Outlook and Gmail, the mailbox address, such as alice@contoso.com: the account you will sign in with (for app-only, the shared mailbox).' })}
${tenantField(v.tenant_id, o.error)}
${s && p ? html`<p>${tokenTag(s)}</p>` : ''}
${field({ name: 'password', label: 'Password', type: 'password', error: o.error, autocomplete: 'new-password', placeholder: s?.password_set ? 'stored: leave empty to keep it' : '', hint: 'Only for "Username and password"; leave it empty for Outlook and Gmail.' })}
<div class="mail-host">
${field({ name: 'host', label: 'Host', value: v.host, error: o.error, placeholder: 'smtp.office365.com', hint: 'Left empty, Outlook fills in smtp.office365.com and Gmail smtp.gmail.com. Not used with Microsoft Graph.' })}
${field({ name: 'port', label: 'Port', type: 'number', value: v.port, error: o.error, min: 1, max: 65535, placeholder: '587' })}
${select({ name: 'encryption', label: 'Encryption', value: v.encryption ?? 'starttls', options: ENCRYPTIONS, error: o.error, hint: 'Outlook and Gmail need TLS (STARTTLS) on port 587.' })}
</div>
${field({ name: 'from_filter', label: 'from_filter', value: v.from_filter, error: o.error, hint: 'Addresses or domains this server sends for, separated by commas. Left empty on a new Outlook server, it is the Username.' })}
${field({ name: 'sequence', label: 'Sequence', type: 'number', value: v.sequence, error: o.error, min: 0, placeholder: '10', hint: 'Lower first, when several servers could send a mail.' })}
${field({ name: 'max_per_minute', label: 'Messages per minute at most', type: 'number', value: v.max_per_minute, error: o.error, min: 1, hint: 'Exchange Online allows 30 per mailbox; empty on update means no limit.' })}
<div class="actions"><button type="submit" name="then" value="save">Save</button>
${p?.route ? html`<button type="submit" name="then" value="connect" class="secondary">${connected ? `Reconnect your ${p.label} account` : `Connect your ${p.label} account`}</button>` : ''}</div>
${p?.route ? html`<p class="hint">Connect saves the form, then sends you to ${p.company} to sign in as the Username and accept.</p>` : ''}
${p && !p.route ? html`<p class="hint">No one signs in: Test Connection requests a token for the app in the tenant. An admin must have granted the app access to this mailbox (see the README).</p>` : ''}
</form></section>
${s ? html`<section class="card"><h2>Check</h2><div class="actions">${postButton(req.admin!, `${BASE}/${s.id}/test`, 'Test Connection', { cls: '' })}${postButton(req.admin!, `${BASE}/${s.id}/delete`, 'Delete', { cls: 'danger' })}</div>
<p class="hint">${s.transport === 'graph' ? 'Test Connection gets a Microsoft Graph token and reaches the mailbox without sending anything.' : `Test Connection signs in to ${s.host}:${s.port} and tries MAIL FROM / RCPT TO without sending anything.`}</p>${bounceHint}</section>` : ''}`
    return sendPage(ui, req, reply, s ? s.name : 'New outgoing server', body, o.status ?? (o.error ? 400 : 200))
  }

  app.get(`${BASE}/new`, async (req, reply) =>
    form(req, reply, { values: { authentication: 'outlook', encryption: 'starttls', host: ui.smtpDefaults?.host, port: ui.smtpDefaults ? String(ui.smtpDefaults.port) : undefined } }),
  )

  serverPages(app, {
    base: BASE,
    kind: 'outgoing',
    servers,
    form,
    toValues,
    read: (body, creating) => {
      const input = toInput(body, creating)
      return checkNumbers(input) ?? input
    },
    connected: (s) => `Connected: ${s.username} is linked to Mailbridge.`,
  })
}
