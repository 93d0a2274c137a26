import type { FastifyPluginAsync } from 'fastify'
import type { AuditRecord } from '../../access/audit-log.ts'
import { html } from '../../html.ts'
import { sendPage, type MenuItem, type Ui } from './kit.ts'

export const auditLogMenu: MenuItem[] = [{ group: 'Technical', label: 'Audit Log', href: '/admin/audit' }]

const BASE = '/admin/audit'
const ACTOR: Record<AuditRecord['actor_type'], string> = { admin: 'admin session', api_token: 'API token', anonymous: 'not signed in' }

const detailOf = (d: AuditRecord['detail']) =>
  d ? Object.entries(d).map(([k, v], i) => html`${i ? '; ' : ''}${k.replace(/_/g, ' ')}: ${Array.isArray(v) ? v.join(', ') : v}`) : ''

/** Settings → Technical → Audit Log: who did which admin action, when, from where; newest first, paged. */
export const auditLogPages: FastifyPluginAsync<{ ui: Ui }> = async (app, { ui }) => {
  const { auditLog, config } = ui.services
  app.get<{ Querystring: { cursor?: string } }>(BASE, async (req, reply) => {
    const cursor = typeof req.query.cursor === 'string' && /^[0-9a-f]{1,64}$/.test(req.query.cursor) ? req.query.cursor : undefined
    const page = await auditLog.list({ cursor, limit: 100 })
    const rows = page.items.map(
      (e) => html`<tr><td class="nowrap">${e.at.replace('T', ' ').slice(0, 19)}</td><td>${e.actor} <span class="muted">(${ACTOR[e.actor_type]})</span></td><td><code>${e.action}</code></td><td>${e.target ? html`<code>${e.target}</code>` : ''}${e.detail ? html`<div class="reason muted">${detailOf(e.detail)}</div>` : ''}</td><td>${e.client ?? ''}</td></tr>`,
    )
    const body = html`<h1>Audit Log</h1>
<section class="card"><p class="hint">Sign-ins, settings, servers, Connect, API tokens, webhooks, parameters, Retry and Cancel, by admin session or API token, kept ${config.auditDays} days (<code>MAILBRIDGE_AUDIT_DAYS</code>). Values are never kept, only which fields changed.</p>
${page.items.length
  ? html`<table><thead><tr><th scope="col">When (UTC)</th><th scope="col">Who</th><th scope="col">Action</th><th scope="col">On</th><th scope="col">From</th></tr></thead><tbody>${rows}</tbody></table>`
  : html`<p class="muted">Nothing recorded yet.</p>`}
${page.next_cursor ? html`<p class="pager"><a href="${BASE}?cursor=${page.next_cursor}">Older entries</a></p>` : ''}</section>`
    return sendPage(ui, req, reply, 'Audit Log', body)
  })
}
