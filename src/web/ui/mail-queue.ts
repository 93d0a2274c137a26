import type { FastifyPluginAsync } from 'fastify'
import { Type } from 'typebox'
import type { MailState } from '../../db/schema.ts'
import { html, type Html } from '../../html.ts'
import { mailDetail } from '../../outgoing/mail-detail.ts'
import type { Mail } from '../../outgoing/mail-model.ts'
import { searchMails } from '../../outgoing/mail-search.ts'
import { Cursor } from '../../paging.ts'
import { banner, field, formValue, postButton, select, sendPage, seeOther, type MenuItem, type Ui } from './kit.ts'
import { ago, utc } from './when.ts'

export const mailQueueMenu: MenuItem[] = [{ group: 'Mail', label: 'Mail queue', href: '/admin/mail' }]

const BASE = '/admin/mail'
const PAGE = 50
const STATES: MailState[] = ['outgoing', 'sending', 'sent', 'exception', 'cancel', 'bounced']
const STATE_LABEL: Record<MailState, string> = { outgoing: 'Outgoing', sending: 'Sending', sent: 'Sent', exception: 'Failed', cancel: 'Cancelled', bounced: 'Bounced' }
const STATE_TAG: Record<MailState, string> = { outgoing: 'info', sending: 'warn', sent: 'ok', exception: 'bad', cancel: 'muted', bounced: 'bad' }
const OUTCOME_TAG = { sent: ['ok', 'Sent'], retry: ['warn', 'Retried later'], failed: ['bad', 'Failed'] } as const
const NOTICES: Record<string, string> = { retried: 'The mail is queued again and goes out at the next chance.', cancelled: 'The mail is cancelled and will not be sent.' }

const isState = (s: unknown): s is MailState => typeof s === 'string' && (STATES as string[]).includes(s)
const stateTag = (s: MailState) => html`<span class="tag ${STATE_TAG[s]}">${STATE_LABEL[s]}</span>`
const canAct = (m: Mail) => m.state === 'exception' || m.state === 'outgoing'

/** The delivery reports about a mail, one line per recipient: who, the status, what happened, the remote reply. */
const bounceLines = (m: Mail) =>
  m.bounces.map(
    (b) => html`<div class="reason"><span class="tag ${b.action === 'failed' ? 'bad' : 'warn'}">${b.action}</span> ${b.recipient}${b.status ? html` <code>${b.status}</code>` : ''}${b.diagnostic ? html` ${b.diagnostic}` : ''}</div>`,
  )

/** What happened to a mail, in one cell (cut to a few lines; its page has the whole text). */
function outcome(m: Mail): Html | '' {
  if (m.bounces.length) return html`${bounceLines(m)}`
  if (m.failure_reason) return html`<div class="reason">${m.failure_type ? html`<code>${m.failure_type}</code> ` : ''}${m.failure_reason}</div>`
  if (m.state === 'outgoing' && m.attempts > 0 && m.next_attempt_at) return html`<span class="reason muted">next attempt ${utc(m.next_attempt_at)}</span>`
  if (m.smtp_response) return html`<div class="reason muted">${m.smtp_response}</div>`
  return ''
}

const Query = Type.Object({
  state: Type.Optional(Type.String({ maxLength: 32 })),
  server: Type.Optional(Type.String({ maxLength: 64 })),
  q: Type.Optional(Type.String({ maxLength: 200 })),
  cursor: Cursor,
  done: Type.Optional(Type.String({ maxLength: 32 })),
})

/** The mail queue: filters by state, server and text, a page per mail with every attempt, Retry and Cancel. */
export const mailQueuePages: FastifyPluginAsync<{ ui: Ui }> = async (app, { ui }) => {
  const { mails, outgoingServers } = ui.services
  const { db } = ui.services.database

  app.get<{ Querystring: { state?: string; server?: string; q?: string; cursor?: string; done?: string } }>(BASE, { schema: { querystring: Query } }, async (req, reply) => {
    const state = isState(req.query.state) ? req.query.state : undefined
    const servers = await outgoingServers.rows()
    const server = servers.find((s) => s.id === req.query.server)
    const text = req.query.q?.trim() || undefined
    const page = await searchMails(db, { state, server_id: server?.id, text, cursor: req.query.cursor, limit: PAGE })
    const s = req.admin!
    const filters: Record<string, string> = { ...(state ? { state } : {}), ...(server ? { server: server.id } : {}), ...(text ? { q: text } : {}) }
    const names = new Map(servers.map((x) => [x.id, x.name]))
    const rows = page.items.map(
      (m) => html`<tr><td data-label="Queued" class="nowrap">${ago(m.created_at)}</td><td data-label="To" class="addr">${m.to.join(', ')}<div class="muted">from ${m.from}</div></td>
<td data-label="Subject"><a href="${BASE}/${m.id}">${m.subject || '(no subject)'}</a><div class="muted">${names.get(m.server_id) ?? m.server_id}</div></td>
<td data-label="State">${stateTag(m.state)}<div class="muted">${m.attempts} attempt${m.attempts === 1 ? '' : 's'}</div></td><td data-label="Failure reason / reply" class="outcome">${outcome(m)}</td>
<td data-label="Actions"><div class="actions">${canAct(m) ? html`${postButton(s, `${BASE}/${m.id}/retry`, 'Retry', { hidden: filters, aria: `Retry mail ${m.subject}` })}${postButton(s, `${BASE}/${m.id}/cancel`, 'Cancel', { hidden: filters, aria: `Cancel mail ${m.subject}` })}` : ''}</div></td></tr>`,
    )
    const filtered = Object.keys(filters).length > 0
    const body = html`<h1>Mail queue</h1>${NOTICES[req.query.done ?? ''] ? banner('ok', NOTICES[req.query.done!]!) : ''}
<section class="card"><form method="get" action="${BASE}" class="filters" role="search" aria-label="Filter the mail queue">
${select({ name: 'state', label: 'State', value: state ?? '', options: [['', 'All'], ...STATES.map((x): [string, string] => [x, STATE_LABEL[x]])] })}
${select({ name: 'server', label: 'Server', value: server?.id ?? '', options: [['', 'All'], ...servers.map((x): [string, string] => [x.id, `${x.name} (${x.username})`])] })}
${field({ name: 'q', label: 'Subject or recipient', type: 'text', value: text ?? '' })}
<button type="submit">Filter</button>${filtered ? html` <a href="${BASE}">Show all</a>` : ''}</form></section>
<section class="card">${page.items.length
      ? html`<div class="table-wrap"><table class="stack queue"><thead><tr><th scope="col">Queued</th><th scope="col">To</th><th scope="col">Subject</th><th scope="col">State</th><th scope="col">Failure reason / reply</th><th scope="col"><span class="skip-label">Actions</span></th></tr></thead><tbody>${rows}</tbody></table></div>`
      : html`<p class="muted">No mail${filtered ? ' matches these filters' : ''}.</p>`}
<p class="pager">${req.query.cursor ? html`<a href="${BASE}?${new URLSearchParams(filters).toString()}">Newest mails</a> ` : ''}${page.next_cursor ? html`<a href="${BASE}?${new URLSearchParams({ ...filters, cursor: page.next_cursor }).toString()}">Older mails</a>` : ''}</p></section>`
    return sendPage(ui, req, reply, 'Mail queue', body)
  })

  app.get<{ Params: { id: string }; Querystring: { done?: string } }>(`${BASE}/:id`, async (req, reply) => {
    const d = await mailDetail(db, req.params.id)
    const m = d.mail
    const s = req.admin!
    const server = await outgoingServers.rows().then((all) => all.find((x) => x.id === m.server_id))
    const row = (label: string, value: Html | string) => html`<tr><th scope="row">${label}</th><td>${value}</td></tr>`
    const attempts = d.attempts.map(
      (a) => html`<tr><td data-label="When" class="nowrap">${utc(a.at)}</td><td data-label="Outcome"><span class="tag ${OUTCOME_TAG[a.outcome][0]}">${OUTCOME_TAG[a.outcome][1]}</span></td><td data-label="The server's reply" class="mono">${a.reply ?? ''}</td><td data-label="Reason">${a.reason ?? ''}</td></tr>`,
    )
    const bounces = m.bounces.map(
      (b) => html`<tr><td data-label="Recipient">${b.recipient}</td><td data-label="Action"><span class="tag ${b.action === 'failed' ? 'bad' : 'warn'}">${b.action}</span></td><td data-label="Status"><code>${b.status ?? ''}</code></td><td data-label="Diagnostic">${b.diagnostic ?? ''}</td><td data-label="Reported" class="nowrap">${utc(b.reported_at)}${b.message_id ? html` <a href="/admin/messages/${b.message_id}">the report</a>` : ''}</td></tr>`,
    )
    const body = html`<h1>${m.subject || '(no subject)'}</h1>${NOTICES[req.query.done ?? ''] ? banner('ok', NOTICES[req.query.done!]!) : ''}
<section class="card"><p>${stateTag(m.state)} ${m.attempts} attempt${m.attempts === 1 ? '' : 's'}${m.state === 'outgoing' && m.next_attempt_at ? html`, next ${ago(m.next_attempt_at)}` : ''}${m.sent_at ? html`, sent ${utc(m.sent_at)}` : ''}</p>
${m.failure_reason ? banner('bad', html`${m.failure_type ? html`<code>${m.failure_type}</code> ` : ''}${m.failure_reason}`) : ''}
${canAct(m) ? html`<div class="actions">${postButton(s, `${BASE}/${m.id}/retry`, 'Retry', { cls: '', hidden: { back: 'mail' } })}${postButton(s, `${BASE}/${m.id}/cancel`, 'Cancel', { hidden: { back: 'mail' } })}</div>` : ''}</section>
<section class="card"><h2>Addresses</h2><div class="table-wrap"><table class="fields">
${row('From', m.from)}${row('To', m.to.join(', '))}${m.cc.length ? row('Cc', m.cc.join(', ')) : ''}${m.bcc.length ? row('Bcc', m.bcc.join(', ')) : ''}${d.reply_to ? row('Reply-To', d.reply_to) : ''}
${row('Server', server ? html`<a href="/admin/outgoing-servers/${server.id}">${server.name}</a> (${server.username})` : m.server_id)}${row('Message-ID', html`<span class="mono">${m.message_id}</span>`)}${row('Queued', utc(m.created_at))}
</table></div></section>
<section class="card"><h2>${d.raw ? 'Header (as relayed)' : 'Headers given by the application'}</h2>${d.headers.length ? html`<div class="table-wrap"><table class="fields">${d.headers.map(([k, v]) => row(k, html`<span class="mono">${v}</span>`))}</table></div>` : html`<p class="muted">None.</p>`}
${d.attachments.length ? html`<h2>Attachments</h2><ul>${d.attachments.map((a) => html`<li>${a.filename} <span class="muted">${a.content_type}, ${a.size} bytes</span></li>`)}</ul>` : ''}</section>
<section class="card"><h2>Attempts</h2>${attempts.length ? html`<div class="table-wrap"><table class="stack"><thead><tr><th scope="col">When (UTC)</th><th scope="col">Outcome</th><th scope="col">The server's reply</th><th scope="col">Reason</th></tr></thead><tbody>${attempts}</tbody></table></div>` : html`<p class="muted">${m.attempts ? html`Its ${m.attempts} attempt${m.attempts === 1 ? ' was' : 's were'} made before Mailbridge recorded each one${m.smtp_response ? html`; the last reply: <span class="mono">${m.smtp_response}</span>` : ''}.` : 'Not tried yet.'}</p>`}</section>
${bounces.length ? html`<section class="card"><h2>Bounces</h2><div class="table-wrap"><table class="stack"><thead><tr><th scope="col">Recipient</th><th scope="col">Action</th><th scope="col">Status</th><th scope="col">Diagnostic</th><th scope="col">Reported</th></tr></thead><tbody>${bounces}</tbody></table></div></section>` : ''}
<p><a href="${BASE}">Back to the mail queue</a></p>`
    return sendPage(ui, req, reply, m.subject || 'Mail', body)
  })

  /** After Retry or Cancel: the mail's page, or the list with the filters it was shown with. */
  const backTo = (id: string, body: unknown, done: string) => {
    if (formValue(body, 'back') === 'mail') return `${BASE}/${id}?done=${done}`
    const state = formValue(body, 'state')
    const server = formValue(body, 'server')
    const q = formValue(body, 'q')
    return `${BASE}?${new URLSearchParams({ ...(isState(state) ? { state } : {}), ...(server ? { server } : {}), ...(q ? { q } : {}), done }).toString()}`
  }

  // A refused Retry or Cancel (the mail was sent meanwhile) is a MailbridgeError 409: the admin page shows its text.
  app.post<{ Params: { id: string } }>(`${BASE}/:id/retry`, async (req, reply) => {
    await mails.retry(req.params.id)
    req.log.info({ session_id: req.admin!.id, mail_id: req.params.id }, 'mail retried from the admin UI')
    return seeOther(reply, backTo(req.params.id, req.body, 'retried'))
  })

  app.post<{ Params: { id: string } }>(`${BASE}/:id/cancel`, async (req, reply) => {
    await mails.cancel(req.params.id)
    req.log.info({ session_id: req.admin!.id, mail_id: req.params.id }, 'mail cancelled from the admin UI')
    return seeOther(reply, backTo(req.params.id, req.body, 'cancelled'))
  })
}
