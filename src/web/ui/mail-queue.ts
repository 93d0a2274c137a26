import type { FastifyPluginAsync } from 'fastify'
import type { MailState } from '../../db/schema.ts'
import { html } from '../../html.ts'
import type { Mail } from '../../outgoing/mail-model.ts'
import { banner, formValue, postButton, select, sendPage, seeOther, type MenuItem, type Ui } from './kit.ts'

export const mailQueueMenu: MenuItem[] = [{ group: 'Mail', label: 'Mail queue', href: '/admin/mail' }]

const BASE = '/admin/mail'
const STATES: MailState[] = ['outgoing', 'sending', 'sent', 'exception', 'cancel', 'bounced']
const STATE_LABEL: Record<MailState, string> = { outgoing: 'Outgoing', sending: 'Sending', sent: 'Sent', exception: 'Failed', cancel: 'Cancelled', bounced: 'Bounced' }
const STATE_TAG: Record<MailState, string> = { outgoing: 'muted', sending: 'warn', sent: 'ok', exception: 'bad', cancel: 'muted', bounced: 'bad' }
const NOTICES: Record<string, string> = { retried: 'The mail is queued again and goes out at the next chance.', cancelled: 'The mail is cancelled and will not be sent.' }

const isState = (s: unknown): s is MailState => typeof s === 'string' && (STATES as string[]).includes(s)

/** The delivery reports about a mail, one line per recipient: who, the status, what happened, the remote reply. */
const bounceLines = (m: Mail) =>
  m.bounces.map(
    (b) => html`<div class="reason"><span class="tag ${b.action === 'failed' ? 'bad' : 'warn'}">${b.action}</span> ${b.recipient}${b.status ? html` <code>${b.status}</code>` : ''}${b.diagnostic ? html` ${b.diagnostic}` : ''}</div>`,
  )

/** What happened to a mail, in one cell: the delivery reports about it, the failure, the next attempt, or the server's reply. */
function outcome(m: Mail) {
  if (m.bounces.length) return bounceLines(m)
  if (m.failure_reason) return html`<div class="reason">${m.failure_type ? html`<code>${m.failure_type}</code> ` : ''}${m.failure_reason}</div>`
  if (m.state === 'outgoing' && m.attempts > 0 && m.next_attempt_at) return html`<span class="reason muted">next attempt ${m.next_attempt_at.replace('T', ' ').slice(0, 19)} UTC</span>`
  if (m.smtp_response) return html`<div class="reason muted">${m.smtp_response}</div>`
  return ''
}

/** The mail queue: state filter, failure reason, Retry, Cancel (Odoo's Emails menu, with the same buttons). */
export const mailQueuePages: FastifyPluginAsync<{ ui: Ui }> = async (app, { ui }) => {
  const { mails } = ui.services

  app.get<{ Querystring: { state?: string; cursor?: string; done?: string } }>(BASE, async (req, reply) => {
    const state = isState(req.query.state) ? req.query.state : undefined
    const cursor = typeof req.query.cursor === 'string' && /^[0-9a-f]{1,64}$/.test(req.query.cursor) ? req.query.cursor : undefined
    const page = await mails.list({ state, cursor, limit: 50 })
    const s = req.admin!
    const back = { state: state ?? '' }
    const rows = page.items.map(
      (m) => html`<tr><td class="nowrap">${m.created_at.replace('T', ' ').slice(0, 19)}</td><td>${m.from}</td><td>${m.to.join(', ')}</td><td>${m.subject}</td>
<td><span class="tag ${STATE_TAG[m.state]}">${STATE_LABEL[m.state]}</span></td><td>${m.attempts}</td><td>${outcome(m)}</td>
<td><div class="actions">${m.state === 'exception' || m.state === 'outgoing' ? postButton(s, `${BASE}/${m.id}/retry`, 'Retry', { hidden: back, aria: `Retry mail ${m.subject}` }) : ''}${m.state === 'exception' || m.state === 'outgoing' ? postButton(s, `${BASE}/${m.id}/cancel`, 'Cancel', { hidden: back, aria: `Cancel mail ${m.subject}` }) : ''}</div></td></tr>`,
    )
    const body = html`<h1>Mail queue</h1>${NOTICES[req.query.done ?? ''] ? banner('ok', NOTICES[req.query.done!]!) : ''}
<section class="card"><form method="get" action="${BASE}" class="filters">
${select({ name: 'state', label: 'State', value: state ?? '', options: [['', 'All'], ...STATES.map((x): [string, string] => [x, STATE_LABEL[x]])] })}
<button type="submit">Filter</button></form></section>
<section class="card">${page.items.length
      ? html`<table><thead><tr><th scope="col">Queued (UTC)</th><th scope="col">From</th><th scope="col">To</th><th scope="col">Subject</th><th scope="col">State</th><th scope="col">Attempts</th><th scope="col">Failure reason / reply</th><th scope="col"><span class="skip-label">Actions</span></th></tr></thead><tbody>${rows}</tbody></table>`
      : html`<p class="muted">No mail${state ? html` in state ${STATE_LABEL[state]}` : ''}.</p>`}
${page.next_cursor ? html`<p class="pager"><a href="${BASE}?${new URLSearchParams({ ...(state ? { state } : {}), cursor: page.next_cursor }).toString()}">Older mails</a></p>` : ''}</section>`
    return sendPage(ui, req, reply, 'Mail queue', body)
  })

  const backTo = (body: unknown, done: string) => {
    const state = formValue(body, 'state')
    return `${BASE}?${new URLSearchParams({ ...(isState(state) ? { state } : {}), done }).toString()}`
  }

  // A refused Retry or Cancel (the mail was sent meanwhile) is a MailbridgeError 409: the admin page shows its text.
  app.post<{ Params: { id: string } }>(`${BASE}/:id/retry`, async (req, reply) => {
    await mails.retry(req.params.id)
    req.log.info({ session_id: req.admin!.id, mail_id: req.params.id }, 'mail retried from the admin UI')
    return seeOther(reply, backTo(req.body, 'retried'))
  })

  app.post<{ Params: { id: string } }>(`${BASE}/:id/cancel`, async (req, reply) => {
    await mails.cancel(req.params.id)
    req.log.info({ session_id: req.admin!.id, mail_id: req.params.id }, 'mail cancelled from the admin UI')
    return seeOther(reply, backTo(req.body, 'cancelled'))
  })
}
