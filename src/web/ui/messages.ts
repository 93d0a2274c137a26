import type { FastifyPluginAsync } from 'fastify'
import { html, visibleControls } from '../../html.ts'
import type { Message } from '../../incoming/model.ts'
import { banner, sendPage, type MenuItem, type Ui } from './kit.ts'

export const messagesMenu: MenuItem[] = [{ group: 'Mail', label: 'Messages', href: '/admin/messages' }]

const BASE = '/admin/messages'
const PAGE = 200
const day = (iso: string | null) => (iso ? iso.replace('T', ' ').slice(0, 16) : '')

/** Messages: the newest incoming messages, grouped by thread, and one message with its attachments. */
export const messagePages: FastifyPluginAsync<{ ui: Ui }> = async (app, { ui }) => {
  const { messages, incomingServers } = ui.services

  app.get<{ Querystring: { server_id?: string } }>(BASE, async (req, reply) => {
    const serverId = typeof req.query.server_id === 'string' && req.query.server_id.length <= 64 ? req.query.server_id : undefined
    // The API pages oldest first with an "after" cursor; walk to the end and keep the newest page.
    let cursor: string | undefined
    let newest: Message[] = []
    for (;;) {
      const page = await messages.list({ server_id: serverId, limit: 500, cursor })
      newest = [...newest, ...page.items].slice(-PAGE)
      if (!page.next_cursor) break
      cursor = page.next_cursor
    }
    const threads = new Map<string, Message[]>()
    for (const m of newest.reverse()) threads.set(m.thread_id, [...(threads.get(m.thread_id) ?? []), m])
    const names = new Map((await incomingServers.list()).map((s) => [s.id, s.name]))
    const body = html`<h1>Messages</h1>
<section class="card">${threads.size
      ? [...threads.values()].map(
          (thread) => html`<div class="thread"><h2>${thread[0]!.subject ?? '(no subject)'} <span class="muted">${thread.length} message${thread.length === 1 ? '' : 's'}</span></h2>
<table><thead><tr><th scope="col">Received</th><th scope="col">From</th><th scope="col">Subject</th><th scope="col">Server</th></tr></thead><tbody>${thread.map(
            (m) => html`<tr><td>${day(m.received_at)}</td><td>${m.from ?? ''}</td><td><a href="${BASE}/${m.id}">${m.subject ?? '(no subject)'}</a>${m.in_reply_to_mail_id ? html` <span class="tag muted">reply to a sent mail</span>` : ''}${m.parse_error ? html` <span class="tag bad">kept raw</span>` : ''}</td><td>${names.get(m.server_id) ?? m.server_id}</td></tr>`,
          )}</tbody></table></div>`,
        )
      : html`<p class="muted">No message yet. Confirm an incoming server (Test &amp; Confirm), then Fetch Now.</p>`}</section>`
    return sendPage(ui, req, reply, 'Messages', body)
  })

  app.get<{ Params: { id: string } }>(`${BASE}/:id`, async (req, reply) => {
    const m = await messages.get(req.params.id)
    const body = html`<h1>${m.subject ?? '(no subject)'}</h1>
${m.parse_error ? banner('bad', `This message could not be read (${m.parse_error}); it is kept raw.`) : ''}
<section class="card"><table>
<tr><th scope="row">From</th><td>${m.from ?? ''}</td></tr><tr><th scope="row">To</th><td>${m.to.join(', ')}</td></tr>
${m.cc.length ? html`<tr><th scope="row">Cc</th><td>${m.cc.join(', ')}</td></tr>` : ''}
<tr><th scope="row">Date</th><td>${m.date ?? ''}</td></tr><tr><th scope="row">Message-ID</th><td class="mono">${m.message_id ?? ''}</td></tr>
${m.in_reply_to ? html`<tr><th scope="row">In-Reply-To</th><td class="mono">${m.in_reply_to}${m.in_reply_to_mail_id ? html` (<a href="/admin/mail?focus=${m.in_reply_to_mail_id}">a mail Mailbridge sent</a>)` : ''}</td></tr>` : ''}
<tr><th scope="row">Received</th><td>${day(m.received_at)} UTC, ${m.folder} UID ${m.uid}</td></tr>
${m.attachments.length ? html`<tr><th scope="row">Attachments</th><td>${m.attachments.map((a) => html`<div>${a.filename === null ? '(unnamed)' : visibleControls(a.filename)} <span class="muted">${a.content_type}, ${a.size} bytes</span></div>`)}</td></tr>` : ''}
</table></section>
<section class="card"><h2>Text</h2><pre class="body">${m.text ?? (m.html ? '(HTML only: see the raw message through the API)' : '')}</pre>
<p class="hint">The raw message and attachments: <code>GET /api/v1/messages/${m.id}/raw</code>, <code>/attachments/{id}</code>.</p></section>`
    return sendPage(ui, req, reply, m.subject ?? 'Message', body)
  })
}
