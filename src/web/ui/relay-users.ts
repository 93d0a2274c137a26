import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { html } from '../../html.ts'
import { MIN_PASSWORD } from '../../relay/users.ts'
import { banner, csrfField, field, formError, formValue, postButton, sendPage, seeOther, type FormError, type MenuItem, type Ui } from './kit.ts'

export const relayUserMenu: MenuItem[] = [{ group: 'Technical', label: 'SMTP Relay Users', href: '/admin/relay-users' }]

const BASE = '/admin/relay-users'
const NOTICES: Record<string, string> = { created: 'Relay user created. Give the device the username and password now: the password is not shown again.', deleted: 'Relay user deleted.' }
const when = (iso: string | null) => (iso ? `${iso.replace('T', ' ').slice(0, 19)} UTC` : 'never')

/** Settings → Technical → SMTP Relay Users: the logins of devices and legacy applications, and their last use. */
export const relayUserPages: FastifyPluginAsync<{ ui: Ui }> = async (app, { ui }) => {
  const { relayUsers, config } = ui.services

  const list = async (req: FastifyRequest, reply: FastifyReply, o: { notice?: string; error?: FormError; values?: { username?: string; allowed_from?: string } } = {}) => {
    const s = req.admin!
    const users = await relayUsers.list()
    const listening = config.relayPort ? html`The relay listens on port <code>${config.relayPort}</code> (STARTTLS${config.relay.tlsPort ? html`, implicit TLS on <code>${config.relay.tlsPort}</code>` : ''}).` : html`The relay is off: set <code>MAILBRIDGE_RELAY_PORT</code> to start it. Users can be prepared meanwhile.`
    const body = html`<h1>SMTP Relay Users</h1>
${o.notice ? banner('ok', o.notice) : ''}${o.error ? banner('bad', o.error.message) : ''}
<section class="card"><p>${listening} Devices sign in with AUTH PLAIN or LOGIN after TLS; their mail joins the queue and leaves through the matching outgoing server.</p>
${users.length
  ? html`<table><thead><tr><th scope="col">Username</th><th scope="col">May send as</th><th scope="col">Last use</th><th scope="col">Created</th><th scope="col"><span class="skip-label">Actions</span></th></tr></thead><tbody>${users.map(
      (u) => html`<tr><td><code>${u.username}</code></td><td>${u.allowed_from.length ? u.allowed_from.join(', ') : html`<span class="muted">any sender</span>`}</td><td>${when(u.last_used_at)}${u.last_used_from ? html` <span class="muted">from ${u.last_used_from}</span>` : ''}</td><td>${when(u.created_at)}</td><td>${postButton(s, `${BASE}/${encodeURIComponent(u.id)}/delete`, 'Delete', { cls: 'danger', aria: `Delete ${u.username}` })}</td></tr>`,
    )}</tbody></table>`
  : html`<p class="muted">No relay user yet.</p>`}</section>
<section class="card"><h2>New relay user</h2>
<form method="post" action="${BASE}">${csrfField(s)}
${field({ name: 'username', label: 'Username', value: o.values?.username, required: true, autocomplete: 'off', error: o.error, hint: 'What the device types as its SMTP login, such as scanner@contoso.com.' })}
${field({ name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'new-password', error: o.error, hint: `At least ${MIN_PASSWORD} characters; stored as a hash and never shown again.` })}
${field({ name: 'allowed_from', label: 'May send as', value: o.values?.allowed_from, autocomplete: 'off', error: o.error, hint: 'Addresses or domains, separated by commas; empty allows any sender.' })}
<button type="submit">Create</button></form></section>`
    return sendPage(ui, req, reply, 'SMTP Relay Users', body, o.error ? 400 : 200)
  }

  app.get<{ Querystring: { done?: string } }>(BASE, async (req, reply) => list(req, reply, { notice: NOTICES[req.query.done ?? ''] }))

  app.post(BASE, async (req, reply) => {
    const username = formValue(req.body, 'username') ?? ''
    const allowed = formValue(req.body, 'allowed_from') ?? ''
    const allowedFrom = allowed.split(',').map((v) => v.trim()).filter(Boolean)
    try {
      await relayUsers.create({ username, password: formValue(req.body, 'password') ?? '', allowed_from: allowedFrom })
    } catch (e) {
      const error = formError(e)
      // allowed_from[2] → the one field of the form
      if (error.field?.startsWith('allowed_from')) error.field = 'allowed_from'
      return list(req, reply, { error, values: { username, allowed_from: allowed } })
    }
    req.log.info({ session_id: req.admin!.id, relay_user: username }, 'relay user created from the admin UI')
    return seeOther(reply, `${BASE}?done=created`)
  })

  app.post<{ Params: { id: string } }>(`${BASE}/:id/delete`, async (req, reply) => {
    await relayUsers.delete(req.params.id)
    return seeOther(reply, `${BASE}?done=deleted`)
  })
}
