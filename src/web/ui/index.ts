import type { FastifyPluginAsync } from 'fastify'
import { databaseErrorCode, MailbridgeError } from '../../errors.ts'
import { html, page } from '../../html.ts'
import { apiTokenMenu, apiTokenPages } from './api-tokens.ts'
import { auditLogMenu, auditLogPages } from './audit-log.ts'
import { authRoutes } from './auth.ts'
import { banner, formValue, sendPage, seeOther, type Ui } from './kit.ts'
import { homeMenu, homePages } from './home.ts'
import { incomingServerMenu, incomingServerPages } from './incoming-servers.ts'
import { mailboxPages } from './mailbox-page.ts'
import { mailQueueMenu, mailQueuePages } from './mail-queue.ts'
import { messagePages, messagesMenu } from './messages.ts'
import { outgoingServerMenu, outgoingServerPages } from './outgoing-servers.ts'
import { parameterMenu, parameterPages } from './parameters.ts'
import { relayUserMenu, relayUserPages } from './relay-users.ts'
import { clearSessionCookie } from './session.ts'
import { settingsMenu, settingsPages } from './settings.ts'
import type { WebServices } from '../web-services.ts'

export interface AdminUiOptions {
  services: WebServices
  smtpDefaults?: Ui['smtpDefaults']
  imapDefaults?: Ui['imapDefaults']
}

/**
 * The admin web UI: server-rendered pages that follow the seed guide's "Setup in Odoo" labels. Every page
 * needs a signed-in admin; every POST needs the session's CSRF token. Each page module brings its menu entries.
 */
export const adminUi: FastifyPluginAsync<AdminUiOptions> = async (app, { services, smtpDefaults, imapDefaults }) => {
  const sessions = services.adminSessions
  const ui: Ui = { services, smtpDefaults, imapDefaults, menu: [...settingsMenu, ...outgoingServerMenu, ...incomingServerMenu, ...parameterMenu, ...relayUserMenu, ...apiTokenMenu, ...auditLogMenu, ...homeMenu, ...mailQueueMenu, ...messagesMenu] }
  await app.register(authRoutes, { sessions, baseUrl: services.config.baseUrl })

  await app.register(async (admin) => {
    admin.addHook('preHandler', async (req, reply) => {
      if (!req.admin) {
        const next = req.method === 'GET' ? req.url : '/admin'
        return reply.redirect(`/admin/login?next=${encodeURIComponent(next)}`, req.method === 'GET' ? 302 : 303)
      }
      if (req.method !== 'GET' && req.method !== 'HEAD' && !sessions.checkCsrf(req.admin, formValue(req.body, '_csrf'))) {
        req.log.warn({ session_id: req.admin.id, url: req.url }, 'admin form refused: missing or wrong CSRF token')
        const body = html`<section class="card"><h1>Form refused</h1>${banner('bad', 'This form expired or did not come from Mailbridge, so nothing was changed. Reload the page and try again.')}</section>`
        return sendPage(ui, req, reply, 'Form refused', body, 403)
      }
    })

    admin.setErrorHandler(async (thrown, req, reply) => {
      // The API's table decides here too: a busy or full database says so, and what a 5xx may show.
      const fromDatabase = databaseErrorCode(thrown)
      const e = fromDatabase ? new MailbridgeError(fromDatabase, {}, { cause: thrown }) : thrown
      const known = e instanceof MailbridgeError
      if (!known || e.status >= 500) req.log.error({ err: e }, 'admin page failed')
      const other = (e as { statusCode?: number }).statusCode
      const status = known ? e.status : other && other < 500 ? other : 500
      const message = known ? e.publicMessage : status < 500 ? (e as Error).message : 'Something went wrong inside Mailbridge; the details are in its log.'
      const body = html`<section class="card"><h1>${status === 404 ? 'Not found' : 'That did not work'}</h1>${banner('bad', message)}<p><a href="/admin">Back to Mailbridge</a></p></section>`
      if (!req.admin) return reply.code(status).type('text/html; charset=utf-8').send(page('Error', body))
      return sendPage(ui, req, reply, 'Error', body, status)
    })

    // Unknown admin paths get an HTML page with the menu, not the API's JSON 404.
    admin.get('/admin/*', async (req) => {
      throw new MailbridgeError('not_found', { what: 'The page', id: req.url.split('?')[0] })
    })
    admin.post('/admin/logout', async (req, reply) => {
      await sessions.logout(req.admin!.id)
      clearSessionCookie(reply, services.config.baseUrl)
      return seeOther(reply, '/admin/login')
    })
    await admin.register(homePages, { ui })
    await admin.register(mailboxPages, { ui })
    await admin.register(settingsPages, { ui })
    await admin.register(outgoingServerPages, { ui })
    await admin.register(parameterPages, { ui })
    await admin.register(relayUserPages, { ui })
    await admin.register(apiTokenPages, { ui })
    await admin.register(auditLogPages, { ui })
    await admin.register(mailQueuePages, { ui })
    await admin.register(incomingServerPages, { ui })
    await admin.register(messagePages, { ui })
  })
}
