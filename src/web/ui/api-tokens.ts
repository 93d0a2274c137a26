import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { SCOPES, type ApiToken, type CreatedApiToken, type Scope } from '../../access/api-tokens.ts'
import { invalid } from '../../errors.ts'
import { html, raw, type Html } from '../../html.ts'
import { banner, csrfField, field, formError, formValue, sendPage, seeOther, type FormError, type MenuItem, type Ui } from './kit.ts'

export const apiTokenMenu: MenuItem[] = [{ group: 'Technical', label: 'API Tokens', href: '/admin/api-tokens' }]

const BASE = '/admin/api-tokens'
const SCOPE_HINT: Record<Scope, string> = {
  'mail:send': 'send mail (POST /api/v1/mail)',
  'mail:read': 'read the mail queue (GET /api/v1/mail…)',
  'messages:read': 'read fetched messages (GET /api/v1/messages…)',
  admin: 'everything else: servers, settings, webhooks, tokens, the audit log (and the three above)',
}
const when = (iso: string | null) => (iso ? `${iso.replace('T', ' ').slice(0, 16)} UTC` : 'never')

/** Every value a form field came back with: checkboxes of one name give several. */
const formValues = (body: unknown, name: string): string[] => {
  const v = (body as Record<string, unknown> | undefined)?.[name]
  return (Array.isArray(v) ? v : [v]).filter((x): x is string => typeof x === 'string' && x !== '')
}

interface Values {
  name?: string
  scopes?: string[]
  server_ids?: string[]
}

const box = (name: string, value: string, label: string | Html, checked: boolean, hint?: string): Html => {
  const id = `f-${name}-${value.replace(/[^\w-]/g, '-')}`
  return html`<div class="check"><input type="checkbox" id="${id}" name="${name}" value="${value}"${checked ? raw(' checked') : ''}><label for="${id}">${label}</label>${hint ? html`<span class="hint">${hint}</span>` : ''}</div>`
}

/** Settings → Technical → API Tokens: one token per application, its scopes and servers; shown once, revoked with a confirm. */
export const apiTokenPages: FastifyPluginAsync<{ ui: Ui }> = async (app, { ui }) => {
  const { apiTokens, outgoingServers, incomingServers } = ui.services

  const list = async (req: FastifyRequest, reply: FastifyReply, o: { notice?: string; created?: CreatedApiToken; error?: FormError; values?: Values } = {}) => {
    const s = req.admin!
    const [tokens, outgoing, incoming] = await Promise.all([apiTokens.list(), outgoingServers.list(), incomingServers.list()])
    const serverName = new Map([...outgoing.map((x) => [x.id, `${x.name} (outgoing)`] as const), ...incoming.map((x) => [x.id, `${x.name} (incoming)`] as const)])
    const servers = (t: ApiToken) => (t.server_ids ? t.server_ids.map((id) => serverName.get(id) ?? `${id} (deleted)`).join(', ') : html`<span class="muted">every server</span>`)
    const v = o.values ?? {}
    const err = o.error
    const body = html`<h1>API Tokens</h1>
${o.notice ? banner('ok', o.notice) : ''}${err ? banner('bad', err.message) : ''}
${o.created
  ? html`<section class="card"><h2>Token for ${o.created.name}</h2>${banner('warn', 'Copy this token now and give it to the application: Mailbridge keeps only its hash and cannot show it again.')}
<p class="copy"><code id="new-token">${o.created.token}</code><button type="button" class="secondary" data-copy="new-token" hidden>Copy</button></p>
<p class="hint">The application sends it as <code>Authorization: Bearer &lt;token&gt;</code>.</p></section>`
  : ''}
<section class="card">${tokens.length
  ? html`<table><thead><tr><th scope="col">Name</th><th scope="col">Scopes</th><th scope="col">Servers</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col"><span class="skip-label">Actions</span></th></tr></thead><tbody>${tokens.map(
      (t) => html`<tr><td>${t.name}</td><td>${t.scopes.map((x, i) => html`${i ? ', ' : ''}<code>${x}</code>`)}</td><td>${servers(t)}</td><td class="nowrap">${when(t.created_at)}</td><td class="nowrap">${when(t.last_used_at)}</td><td><a class="button secondary small" href="${BASE}/${t.id}/revoke" aria-label="Revoke ${t.name}">Revoke</a></td></tr>`,
    )}</tbody></table>`
  : html`<p class="muted">No API token: applications cannot call the API until you create one.</p>`}</section>
<section class="card"><h2>New API token</h2>
<form method="post" action="${BASE}">${csrfField(s)}
${field({ name: 'name', label: 'Name', value: v.name, required: true, autocomplete: 'off', error: err, hint: 'The application that will use it, such as "billing": the audit log names it.' })}
<fieldset class="choice${err?.field === 'scopes' ? ' invalid' : ''}"><legend>Scopes</legend>${SCOPES.map((x) => box('scopes', x, html`<code>${x}</code>`, v.scopes?.includes(x) ?? false, SCOPE_HINT[x]))}${err?.field === 'scopes' ? html`<p class="error">${err.message}</p>` : ''}</fieldset>
<fieldset class="choice${err?.field === 'server_ids' ? ' invalid' : ''}"><legend>Servers</legend><p class="hint">Leave all unticked for every server. A token limited to servers sends only through its outgoing servers and reads only their mails and its incoming servers' messages; an admin token cannot be limited.</p>
${[...outgoing.map((x) => [x.id, `${x.name} (outgoing, ${x.username})`] as const), ...incoming.map((x) => [x.id, `${x.name} (incoming, ${x.username})`] as const)].map(([id, label]) => box('server_ids', id, label, v.server_ids?.includes(id) ?? false))}
${outgoing.length + incoming.length ? '' : html`<p class="muted">No server yet.</p>`}${err?.field === 'server_ids' ? html`<p class="error">${err.message}</p>` : ''}</fieldset>
<button type="submit">Create token</button></form></section>`
    return sendPage(ui, req, reply, 'API Tokens', body, err ? 400 : 200)
  }

  app.get<{ Querystring: { done?: string } }>(BASE, async (req, reply) => list(req, reply, { notice: req.query.done === 'revoked' ? 'Token revoked: the application using it gets 401 from its next request on.' : undefined }))

  // The token is on this answer only (no-store): never in a URL a redirect would put it in.
  app.post(BASE, async (req, reply) => {
    const values: Values = { name: formValue(req.body, 'name') ?? '', scopes: formValues(req.body, 'scopes'), server_ids: formValues(req.body, 'server_ids') }
    let created: CreatedApiToken
    try {
      if (!values.scopes!.length) throw invalid('scopes', 'Tick at least one scope: what the application may do.')
      if (values.scopes!.some((x) => !(SCOPES as string[]).includes(x))) throw invalid('scopes', `The scopes are ${SCOPES.join(', ')}.`)
      created = await apiTokens.create({ name: values.name!, scopes: values.scopes as Scope[], ...(values.server_ids!.length ? { server_ids: values.server_ids } : {}) })
    } catch (e) {
      const error = formError(e)
      // server_ids[1] → the one fieldset of the form
      if (error.field?.startsWith('server_ids')) error.field = 'server_ids'
      return list(req, reply, { error, values })
    }
    req.auditTarget = created.id
    req.auditNote = { name: created.name, scopes: [...created.scopes], ...(created.server_ids ? { server_ids: created.server_ids } : {}) }
    req.log.info({ session_id: req.admin!.id, api_token_id: created.id }, 'API token created from the admin UI')
    return list(req, reply, { created, notice: 'Token created.' })
  })

  const find = async (id: string) => (await apiTokens.list()).find((t) => t.id === id)

  app.get<{ Params: { id: string } }>(`${BASE}/:id/revoke`, async (req, reply) => {
    const t = await find(req.params.id)
    if (!t) return seeOther(reply, BASE)
    const body = html`<h1>Revoke ${t.name}?</h1>
<section class="card"><p>The application using this token gets 401 from its next request on. This cannot be undone: it would need a new token.</p>
<form method="post" action="${BASE}/${t.id}/revoke">${csrfField(req.admin!)}<button type="submit" class="danger">Revoke ${t.name}</button><a class="button secondary" href="${BASE}">Keep it</a></form></section>`
    return sendPage(ui, req, reply, `Revoke ${t.name}`, body)
  })

  app.post<{ Params: { id: string } }>(`${BASE}/:id/revoke`, async (req, reply) => {
    const t = await apiTokens.revoke(req.params.id)
    req.auditNote = { name: t.name }
    req.log.info({ session_id: req.admin!.id, api_token_id: t.id }, 'API token revoked from the admin UI')
    return seeOther(reply, `${BASE}?done=revoked`)
  })
}
