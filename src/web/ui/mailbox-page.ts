import type { FastifyPluginAsync } from 'fastify'
import { notFound } from '../../errors.ts'
import { html } from '../../html.ts'
import { hourlyCounts, sumOf } from '../../mailboxes/hourly.ts'
import { mailboxOverview } from '../../mailboxes/overview.ts'
import { hourlyChart } from './chart.ts'
import { mailboxTable } from './home.ts'
import { sendPage, type Ui } from './kit.ts'

/** One mailbox: its row of the home page, its own last 24 hours, and where its mails and messages are. */
export const mailboxPages: FastifyPluginAsync<{ ui: Ui }> = async (app, { ui }) => {
  const { db } = ui.services.database

  app.get<{ Params: { mailbox: string } }>('/admin/mailboxes/:mailbox', async (req, reply) => {
    const mailbox = req.params.mailbox.toLowerCase()
    const hourly = await hourlyCounts(db)
    const [b] = await mailboxOverview(db, hourly, { mailbox })
    if (!b) throw notFound('Mailbox', mailbox)
    const ids = [...b.outgoing, ...b.incoming].map((s) => s.id)
    const links = [
      ...b.outgoing.map((s) => html`<li><a href="/admin/mail?server=${s.id}">Mail queue of ${s.name}</a></li>`),
      ...b.incoming.map((s) => html`<li><a href="/admin/messages?server_id=${s.id}">Messages of ${s.name}</a></li>`),
    ]
    const body = html`<h1>${b.mailbox}</h1>
<section class="card">${mailboxTable(req.admin!, [b])}</section>
<section class="card">${hourlyChart({ id: 'mailbox', title: `Last 24 hours of ${b.mailbox}`, hours: hourly.hours, counts: sumOf(hourly, ids) })}</section>
<section class="card"><h2>Mails and messages</h2><ul class="links-list">${links}</ul></section>`
    return sendPage(ui, req, reply, b.mailbox, body)
  })
}
