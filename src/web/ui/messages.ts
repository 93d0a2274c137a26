import type { FastifyPluginAsync } from 'fastify'
import { Type } from 'typebox'
import { html, visibleControls, type Html } from '../../html.ts'
import { attachmentDisposition } from '../../incoming/attachment-name.ts'
import { searchMessages } from '../../incoming/message-search.ts'
import type { Message } from '../../incoming/model.ts'
import { threadTree, type ThreadNode } from '../../incoming/thread-layout.ts'
import { Cursor } from '../../paging.ts'
import { banner, field, select, sendPage, type MenuItem, type Ui } from './kit.ts'
import { ago, utc } from './when.ts'

export const messagesMenu: MenuItem[] = [{ group: 'Mail', label: 'Messages', href: '/admin/messages' }]

const BASE = '/admin/messages'
const PAGE = 50
/** The Date header as people read it, in UTC like every time here; as written when it is not a date. */
const dateOf = (m: Message) => (m.date && !Number.isNaN(Date.parse(m.date)) ? utc(new Date(m.date).toISOString()) : (m.date ?? ''))

const tags = (m: Message): Html => html`${m.in_reply_to_mail_id ? html` <a class="tag info" href="/admin/mail/${m.in_reply_to_mail_id}">reply to a sent mail</a>` : ''}${m.bounce ? html` <span class="tag bad">delivery report</span>` : ''}${m.auto_reply ? html` <span class="tag muted">automatic reply</span>` : ''}${m.parse_error ? html` <span class="tag bad">kept raw</span>` : ''}`

function node(n: ThreadNode, names: Map<string, string>): Html {
  const m = n.message
  return html`<li><div class="msg"><a href="${BASE}/${m.id}">${m.subject ?? '(no subject)'}</a>${tags(m)}<div>${m.from ?? ''}</div>
<div class="muted">${m.date ? html`Date ${dateOf(m)} · ` : ''}fetched ${ago(m.received_at)} · ${names.get(m.server_id) ?? m.server_id}${m.attachments.length ? html` · ${m.attachments.length} attachment${m.attachments.length === 1 ? '' : 's'}` : ''}</div></div>
${n.replies.length ? html`<ul>${n.replies.map((r) => node(r, names))}</ul>` : ''}</li>`
}

const Query = Type.Object({ server_id: Type.Optional(Type.String({ maxLength: 64 })), q: Type.Optional(Type.String({ maxLength: 200 })), cursor: Cursor })

/** Messages: search by subject, sender and server, newest first a page at a time, laid out by thread; one message, its attachments. */
export const messagePages: FastifyPluginAsync<{ ui: Ui }> = async (app, { ui }) => {
  const { messages, incomingServers } = ui.services
  const { db } = ui.services.database

  app.get<{ Querystring: { server_id?: string; q?: string; cursor?: string } }>(BASE, { schema: { querystring: Query } }, async (req, reply) => {
    const servers = await incomingServers.list()
    const server = servers.find((s) => s.id === req.query.server_id)
    const text = req.query.q?.trim() || undefined
    const page = await searchMessages(db, { server_id: server?.id, text, cursor: req.query.cursor, limit: PAGE })
    const threads = new Map<string, Message[]>()
    for (const m of page.items) threads.set(m.thread_id, [...(threads.get(m.thread_id) ?? []), m])
    const names = new Map(servers.map((s) => [s.id, s.name]))
    const filters: Record<string, string> = { ...(server ? { server_id: server.id } : {}), ...(text ? { q: text } : {}) }
    const filtered = Object.keys(filters).length > 0
    const body = html`<h1>Messages</h1>
<section class="card"><form method="get" action="${BASE}" class="filters" role="search" aria-label="Search the messages">
${field({ name: 'q', label: 'Subject or sender', value: text ?? '' })}
${select({ name: 'server_id', label: 'Server', value: server?.id ?? '', options: [['', 'All'], ...servers.map((s): [string, string] => [s.id, `${s.name} (${s.username})`])] })}
<button type="submit">Search</button>${filtered ? html` <a href="${BASE}">Show all</a>` : ''}</form></section>
${threads.size
      ? [...threads.values()].map((thread) => {
          const roots = threadTree(thread)
          return html`<section class="card thread"><h2>${roots[0]!.message.subject ?? '(no subject)'} <span class="muted">${thread.length} message${thread.length === 1 ? '' : 's'}</span></h2><ul class="thread-tree">${roots.map((r) => node(r, names))}</ul></section>`
        })
      : html`<section class="card"><p class="muted">${filtered ? 'No message matches this search.' : html`No message yet. Confirm an incoming server (Test &amp; Confirm), then Fetch Now.`}</p></section>`}
<p class="pager">${req.query.cursor ? html`<a href="${filtered ? `${BASE}?${new URLSearchParams(filters).toString()}` : BASE}">Newest messages</a> ` : ''}${page.next_cursor ? html`<a href="${BASE}?${new URLSearchParams({ ...filters, cursor: page.next_cursor }).toString()}">Older messages</a>` : ''}</p>`
    return sendPage(ui, req, reply, 'Messages', body)
  })

  app.get<{ Params: { id: string } }>(`${BASE}/:id`, async (req, reply) => {
    const m = await messages.get(req.params.id)
    const body = html`<h1>${m.subject ?? '(no subject)'}</h1>
${m.parse_error ? banner('bad', `This message could not be read (${m.parse_error}); it is kept raw.`) : ''}
<section class="card"><div class="table-wrap"><table class="fields">
<tr><th scope="row">From</th><td>${m.from ?? ''}</td></tr><tr><th scope="row">To</th><td>${m.to.join(', ')}</td></tr>
${m.cc.length ? html`<tr><th scope="row">Cc</th><td>${m.cc.join(', ')}</td></tr>` : ''}
<tr><th scope="row">Date</th><td>${m.date ? dateOf(m) : ''}</td></tr><tr><th scope="row">Fetched</th><td>${utc(m.received_at)} (${ago(m.received_at)}), ${m.folder} UID ${m.uid}</td></tr>
<tr><th scope="row">Message-ID</th><td class="mono">${m.message_id ?? ''}</td></tr>
${m.in_reply_to ? html`<tr><th scope="row">In-Reply-To</th><td class="mono">${m.in_reply_to}${m.in_reply_to_mail_id ? html` (<a href="/admin/mail/${m.in_reply_to_mail_id}">a mail Mailbridge sent</a>)` : ''}</td></tr>` : ''}
${m.attachments.length ? html`<tr><th scope="row">Attachments</th><td>${m.attachments.map((a) => html`<div><a href="${BASE}/${m.id}/attachments/${a.id}" download>${a.filename === null ? '(unnamed)' : visibleControls(a.filename)}</a> <span class="muted">${a.content_type}, ${a.size} bytes</span></div>`)}</td></tr>` : ''}
</table></div></section>
<section class="card"><h2>Text</h2><pre class="body">${m.text ?? (m.html ? '(HTML only: see the raw message through the API)' : '')}</pre>
<p class="hint">The raw message: <code>GET /api/v1/messages/${m.id}/raw</code>.</p></section>`
    return sendPage(ui, req, reply, m.subject ?? 'Message', body)
  })

  // For a signed-in admin (the admin hook has checked the session): always a download, never shown on this origin.
  app.get<{ Params: { id: string; attachment_id: string } }>(`${BASE}/:id/attachments/:attachment_id`, async (req, reply) => {
    const a = await messages.attachment(req.params.id, req.params.attachment_id)
    return reply.type(a.contentType).header('content-disposition', attachmentDisposition(a.filename)).send(a.content)
  })
}
