import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { html } from '../../html.ts'
import { notFound } from '../../errors.ts'
import { endpointParam } from '../../oauth/providers.ts'
import { banner, csrfField, field, formError, formValue, postButton, sendPage, seeOther, type FormError, type MenuItem, type Ui } from './kit.ts'

export const parameterMenu: MenuItem[] = [{ group: 'Technical', label: 'System Parameters', href: '/admin/parameters' }]

const BASE = '/admin/parameters'

/** The parameters Mailbridge reads, offered as suggestions for the key. */
const KNOWN: Array<[string, string]> = [
  ['mail.force.smtp.from', 'every mail leaves From this address (the Outlook Username); the sender becomes Reply-To'],
  ['microsoft_outlook.endpoint', `the identity platform; default ${endpointParam('microsoft_outlook.endpoint')!.default('global')} (put your tenant id for a single-tenant app)`],
  ['microsoft_graph.endpoint', `Microsoft Graph, for servers with transport Graph; default ${endpointParam('microsoft_graph.endpoint')!.default('global')} (it follows the national cloud)`],
]

const NOTICES: Record<string, string> = { saved: 'Parameter saved.', deleted: 'Parameter deleted.' }

/** Settings → Technical → System Parameters: list, create, edit, delete. */
export const parameterPages: FastifyPluginAsync<{ ui: Ui }> = async (app, { ui }) => {
  const { settings } = ui.services

  const list = async (req: FastifyRequest, reply: FastifyReply, o: { notice?: string; error?: FormError; values?: { key?: string; value?: string } } = {}) => {
    const items = await settings.listParameters()
    const s = req.admin!
    const body = html`<h1>System Parameters</h1>
${o.notice ? banner('ok', o.notice) : ''}${o.error ? banner('bad', o.error.message) : ''}
<section class="card">${items.length
      ? html`<table><thead><tr><th scope="col">Key</th><th scope="col">Value</th><th scope="col"><span class="skip-label">Actions</span></th></tr></thead><tbody>${items.map(
          (p) => html`<tr><td><code>${p.key}</code></td><td class="mono">${p.value}</td><td><div class="actions"><a class="button secondary small" href="${BASE}/${encodeURIComponent(p.key)}" aria-label="Edit ${p.key}">Edit</a>${postButton(s, `${BASE}/${encodeURIComponent(p.key)}/delete`, 'Delete', { cls: 'danger', aria: `Delete ${p.key}` })}</div></td></tr>`,
        )}</tbody></table>`
      : html`<p class="muted">No parameter is set; Mailbridge uses the defaults below.</p>`}</section>
<section class="card"><h2>New parameter</h2>
<form method="post" action="${BASE}">${csrfField(s)}
${field({ name: 'key', label: 'Key', value: o.values?.key, required: true, list: 'known-keys', error: o.error, autocomplete: 'off' })}
<datalist id="known-keys">${KNOWN.map(([k]) => html`<option value="${k}"></option>`)}</datalist>
${field({ name: 'value', label: 'Value', value: o.values?.value, error: o.error, autocomplete: 'off' })}
<button type="submit">Save</button></form>
<h2>Parameters Mailbridge reads</h2><ul>${KNOWN.map(([k, what]) => html`<li><code>${k}</code>: ${what}</li>`)}</ul></section>`
    return sendPage(ui, req, reply, 'System Parameters', body, o.error ? 400 : 200)
  }

  app.get<{ Querystring: { done?: string } }>(BASE, async (req, reply) => list(req, reply, { notice: NOTICES[req.query.done ?? ''] }))

  app.post(BASE, async (req, reply) => {
    const key = (formValue(req.body, 'key') ?? '').trim()
    const value = formValue(req.body, 'value') ?? ''
    try {
      await settings.setParameter(key, value.trim())
    } catch (e) {
      return list(req, reply, { error: formError(e), values: { key, value } })
    }
    req.log.info({ session_id: req.admin!.id, key }, 'parameter saved from the admin UI')
    return seeOther(reply, `${BASE}?done=saved`)
  })

  const edit = async (req: FastifyRequest, reply: FastifyReply, key: string, value: string, error?: FormError) => {
    const body = html`<h1>System Parameter <code>${key}</code></h1>${error ? banner('bad', error.message) : ''}
<section class="card"><form method="post" action="${BASE}/${encodeURIComponent(key)}">${csrfField(req.admin!)}
${field({ name: 'key', label: 'Key', value: key, readonly: true })}
${field({ name: 'value', label: 'Value', value, error, autocomplete: 'off' })}
<div class="actions"><button type="submit">Save</button><a class="button secondary" href="${BASE}">Cancel</a></div></form></section>`
    return sendPage(ui, req, reply, `System Parameter ${key}`, body, error ? 400 : 200)
  }

  const stored = async (key: string) => (await settings.listParameters()).find((p) => p.key === key)

  app.get<{ Params: { key: string } }>(`${BASE}/:key`, async (req, reply) => {
    const p = await stored(req.params.key)
    if (!p) throw notFound('Parameter', req.params.key)
    return edit(req, reply, p.key, p.value)
  })

  app.post<{ Params: { key: string } }>(`${BASE}/:key`, async (req, reply) => {
    const value = formValue(req.body, 'value') ?? ''
    try {
      await settings.setParameter(req.params.key, value.trim())
    } catch (e) {
      return edit(req, reply, req.params.key, value, formError(e))
    }
    req.log.info({ session_id: req.admin!.id, key: req.params.key }, 'parameter saved from the admin UI')
    return seeOther(reply, `${BASE}?done=saved`)
  })

  app.post<{ Params: { key: string } }>(`${BASE}/:key/delete`, async (req, reply) => {
    if (!(await settings.deleteParameter(req.params.key))) throw notFound('Parameter', req.params.key)
    req.log.info({ session_id: req.admin!.id, key: req.params.key }, 'parameter deleted from the admin UI')
    return seeOther(reply, `${BASE}?done=deleted`)
  })
}
