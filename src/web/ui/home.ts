import type { FastifyPluginAsync } from 'fastify'
import { html, type Html } from '../../html.ts'
import { hourlyCounts, sumOf } from '../../mailboxes/hourly.ts'
import { mailboxOverview, syncsRunning, type IncomingSide, type MailboxOverview, type OutgoingSide } from '../../mailboxes/overview.ts'
import { providerFor } from '../../oauth/providers.ts'
import type { TokenView } from '../../oauth/token-view.ts'
import { resumeServer } from '../../outgoing/resume.ts'
import type { AdminSession } from '../../access/admin-sessions.ts'
import { hourlyChart } from './chart.ts'
import { banner, postButton, sendPage, seeOther, type MenuItem, type Ui } from './kit.ts'
import { ago, utc } from './when.ts'

export const homeMenu: MenuItem[] = [{ group: 'Mail', label: 'Mailboxes', href: '/admin' }]

const PAGE = 100
const NOTICES: Record<string, string> = { resumed: 'Resumed: the mails this server held back go out at the next chance.' }

export const mailboxHref = (mailbox: string) => `/admin/mailboxes/${encodeURIComponent(mailbox)}`
const serverHref = (kind: 'outgoing' | 'incoming', id: string) => `/admin/${kind}-servers/${id}`
const isPaused = (s: OutgoingSide, at = Date.now()) => !!s.paused_until && Date.parse(s.paused_until) > at

/** What needs an admin: a token that does not work, a pause, failed mails, a fetch that failed. */
const needsAttention = (b: MailboxOverview) =>
  [...b.outgoing, ...b.incoming].some((s) => s.token && !s.token.valid) || b.outgoing.some((s) => isPaused(s)) || b.failed > 0 || b.bounced > 0 || b.failures_24h > 0 || b.incoming.some((s) => s.last_error)

/**
 * Where "Grant admin consent" goes, beside Reconnect, once Mailbridge can ask for it: Microsoft says so with
 * AADSTS65001, 90094 or 90095 (design.md §10, Admin consent). Nothing to offer until then.
 */
const adminConsentAction = (_s: AdminSession, _kind: 'outgoing' | 'incoming', _server: { id: string; token: TokenView | null }): Html | '' => ''

/** One tag per credential the mailbox's servers use (they share one consent), with what to do about it. */
function tokenCell(s: AdminSession, b: MailboxOverview): Html {
  const sides = [...b.outgoing.map((x) => ({ kind: 'outgoing' as const, x })), ...b.incoming.map((x) => ({ kind: 'incoming' as const, x }))]
  const seen = new Set<string>()
  const cells = sides.flatMap(({ kind, x }) => {
    if (!x.token) return []
    const key = `${x.authentication}:${x.token.label}`
    if (seen.has(key)) return []
    seen.add(key)
    const p = providerFor(x.authentication)!
    const action = x.token.valid
      ? ''
      : p.route
        ? postButton(s, `${serverHref(kind, x.id)}/connect`, x.token.status === 'missing' ? 'Connect' : 'Reconnect', { aria: `${x.token.status === 'missing' ? 'Connect' : 'Reconnect'} ${b.mailbox}` })
        : html`<a href="${serverHref(kind, x.id)}">Check the app's permissions, then Test Connection</a>`
    return [html`<div class="token"><span class="tag ${x.token.valid ? 'ok' : 'bad'}">${x.token.valid ? x.token.label : x.token.status === 'missing' ? 'Not connected' : x.token.status === 'expired' ? 'Token expired' : 'Token invalid'}</span>${x.token.valid ? '' : html`<div class="reason">${x.token.label}</div>`}<div class="actions">${action}${adminConsentAction(s, kind, x)}</div></div>`]
  })
  return cells.length ? html`${cells}` : html`<span class="muted">Password or none</span>`
}

function sendingCell(s: AdminSession, b: MailboxOverview): Html {
  if (!b.outgoing.length) return html`<span class="muted">No outgoing server.</span> <a href="/admin/outgoing-servers/new">Add one</a>`
  return html`${b.outgoing.map(
    (x) => html`<div>${isPaused(x)
      ? html`<span class="tag warn">Paused until ${utc(x.paused_until!)}</span>${x.pause_reason ? html`<div class="reason">${x.pause_reason}</div>` : ''}<div class="actions">${postButton(s, `${serverHref('outgoing', x.id)}/resume`, 'Resume', { aria: `Resume ${x.name}` })}</div>`
      : ''}Last sent ${ago(x.last_sent_at)}</div>`,
  )}`
}

const progress = (x: IncomingSide) =>
  x.sync
    ? html`<div class="sync"><progress id="sync-${x.id}" data-sync="${x.id}" max="${x.sync.total}" value="${x.sync.done}" aria-label="First sync of ${x.name}"></progress> <span id="sync-${x.id}-text">${x.sync.done} of ${x.sync.total} new messages stored</span></div>`
    : ''

function receivingCell(b: MailboxOverview): Html {
  if (!b.incoming.length) return html`<span class="muted">No incoming server.</span> <a href="/admin/incoming-servers/new">Add one</a>`
  return html`${b.incoming.map(
    (x) => html`<div>${x.state === 'draft' ? html`<span class="tag muted">Not Confirmed</span> ` : ''}Last fetched ${ago(x.last_fetch_ok_at ?? x.last_fetch_at)}${x.last_error ? html`<div class="reason">${x.last_error}</div>` : ''}${progress(x)}</div>`,
  )}`
}

/** Waiting, failed and bounced mails, each a link to the queue filtered so (by server when the mailbox has one). */
function mailsCell(b: MailboxOverview): Html {
  const server: Record<string, string> = b.outgoing.length === 1 ? { server: b.outgoing[0]!.id } : {}
  const link = (n: number, label: string, state: string, cls = '') =>
    n ? html`<a${cls ? html` class="${cls}"` : ''} href="/admin/mail?${new URLSearchParams({ state, ...server }).toString()}">${n} ${label}</a>` : html`<span class="muted">0 ${label}</span>`
  return html`<div>${link(b.waiting, 'waiting', 'outgoing')}</div><div>${link(b.failed, 'failed', 'exception', 'bad')}</div><div>${link(b.bounced, 'bounced', 'bounced', 'bad')}</div>`
}

export function mailboxRow(s: AdminSession, b: MailboxOverview): Html {
  const servers = [...b.outgoing.map((x) => html`<a href="${serverHref('outgoing', x.id)}">${x.name}</a> <span class="muted">(outgoing)</span>`), ...b.incoming.map((x) => html`<a href="${serverHref('incoming', x.id)}">${x.name}</a> <span class="muted">(incoming)</span>`)]
  return html`<tr><td data-label="Mailbox"><a class="mailbox" href="${mailboxHref(b.mailbox)}">${b.mailbox}</a><div class="servers">${servers.map((x, i) => html`${i ? ', ' : ''}${x}`)}</div></td>
<td data-label="Token">${tokenCell(s, b)}</td><td data-label="Sending">${sendingCell(s, b)}</td><td data-label="Receiving">${receivingCell(b)}</td>
<td data-label="Mails" class="nowrap">${mailsCell(b)}</td><td data-label="Failures (24 h)"${b.failures_24h ? html` class="bad-text"` : ''}>${b.failures_24h}</td></tr>`
}

export const mailboxTable = (s: AdminSession, boxes: MailboxOverview[]): Html =>
  html`<div class="table-wrap"><table class="stack mailboxes"><thead><tr><th scope="col">Mailbox</th><th scope="col">Token</th><th scope="col">Sending</th><th scope="col">Receiving</th><th scope="col">Mails</th><th scope="col">Failures (24 h)</th></tr></thead><tbody>${boxes.map((b) => mailboxRow(s, b))}</tbody></table></div>`

/** The empty install: the one next step of the seed guide. */
async function nextStep(ui: Ui): Promise<Html> {
  const v = await ui.services.settings.view()
  const credentials = v.external_email_servers && (v.microsoft_outlook_client_id || v.google_gmail_client_id)
  return html`<section class="card"><h2>No mailbox yet</h2>${credentials
    ? html`<p>Next step: <a href="/admin/outgoing-servers/new">create an outgoing server</a> for a mailbox and click <strong>Connect your Outlook account</strong>; then an <a href="/admin/incoming-servers/new">incoming server</a> to receive its mail.</p>`
    : html`<p>Next step: open <a href="/admin/settings">General Settings</a>, tick <strong>External Email Servers</strong> and enter the <strong>Outlook Credentials</strong> (Client ID and Client Secret) of your Azure app.</p>`}</section>`
}

/** The home page: every mailbox's health at a glance, the last 24 hours as a chart; Resume, Reconnect. */
export const homePages: FastifyPluginAsync<{ ui: Ui }> = async (app, { ui }) => {
  const { db } = ui.services.database

  app.get<{ Querystring: { from?: string; done?: string } }>('/admin', async (req, reply) => {
    const hourly = await hourlyCounts(db)
    const all = await mailboxOverview(db, hourly)
    const s = req.admin!
    const notice = NOTICES[req.query.done ?? ''] ? banner('ok', NOTICES[req.query.done!]!) : ''
    if (!all.length) return sendPage(ui, req, reply, 'Mailboxes', html`<h1>Mailboxes</h1>${notice}${await nextStep(ui)}`)
    const sorted = [...all.filter(needsAttention), ...all.filter((b) => !needsAttention(b))]
    const from = Math.max(0, Math.min(Number(req.query.from) || 0, sorted.length - 1))
    const shown = sorted.slice(from, from + PAGE)
    const attention = all.filter(needsAttention).length
    const pager = sorted.length > PAGE
      ? html`<p class="pager">Mailboxes ${from + 1}–${from + shown.length} of ${sorted.length}. ${from > 0 ? html`<a href="/admin?from=${Math.max(0, from - PAGE)}">Previous ${PAGE}</a> ` : ''}${from + PAGE < sorted.length ? html`<a href="/admin?from=${from + PAGE}">Next ${PAGE}</a>` : ''}</p>`
      : ''
    const body = html`<h1>Mailboxes</h1>${notice}
<section class="card">${hourlyChart({ id: 'all', title: 'Last 24 hours, all mailboxes', hours: hourly.hours, counts: sumOf(hourly) })}</section>
<section class="card" aria-labelledby="boxes"><h2 id="boxes">${all.length} mailbox${all.length === 1 ? '' : 'es'}${attention ? html`, <span class="bad-text">${attention} need${attention === 1 ? 's' : ''} attention</span> (listed first)` : ''}</h2>
${mailboxTable(s, shown)}${pager}</section>`
    return sendPage(ui, req, reply, 'Mailboxes', body)
  })

  // Resume and Connect live under the server's URL, so the audit log names the server (outgoing_server.resume).
  app.post<{ Params: { id: string } }>('/admin/outgoing-servers/:id/resume', async (req, reply) => {
    const due = await resumeServer(db, req.params.id)
    ui.services.mails.events.emit('queued', req.params.id)
    req.log.info({ session_id: req.admin!.id, server_id: req.params.id, mails: due }, 'outgoing server resumed from the admin UI')
    return seeOther(reply, '/admin?done=resumed')
  })

  for (const kind of ['outgoing', 'incoming'] as const) {
    const servers = kind === 'outgoing' ? ui.services.outgoingServers : ui.services.incomingServers
    app.post<{ Params: { id: string } }>(`/admin/${kind}-servers/:id/connect`, async (req, reply) => {
      const url = await servers.connect(req.params.id, req.admin!.id)
      req.log.info({ server_id: req.params.id }, 'sending the admin to the provider to reconnect, from the home page')
      return seeOther(reply, url)
    })
  }

  /** The running fetches' progress, for the bars on the home page to move without a reload. */
  app.get('/admin/sync-progress', async (_req, reply) => reply.type('application/json').send({ servers: await syncsRunning(db) }))
}
