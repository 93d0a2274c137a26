import type { FastifyPluginAsync } from 'fastify'
import { MailbridgeError } from '../errors.ts'
import { html, page } from '../html.ts'
import type { ConfirmOutcome, ConfirmQuery, ConfirmTarget, ConnectService } from './connect.ts'
import { consentProviders } from './providers.ts'

export const serverPath = (t: ConfirmTarget): string => `/admin/${t.serverKind}-servers/${encodeURIComponent(t.serverId)}`

const QueryString = {
  type: 'object',
  properties: {
    code: { type: 'string', maxLength: 8192 },
    state: { type: 'string', maxLength: 8192 },
    error: { type: 'string', maxLength: 8192 },
    error_description: { type: 'string', maxLength: 8192 },
    error_uri: { type: 'string', maxLength: 8192 },
    error_subcode: { type: 'string', maxLength: 8192 },
    admin_consent: { type: 'string', maxLength: 8192 },
    tenant: { type: 'string', maxLength: 8192 },
    scope: { type: 'string', maxLength: 8192 },
    session_state: { type: 'string', maxLength: 8192 },
    client_info: { type: 'string', maxLength: 8192 },
  },
} as const

/** The query's first refused parameter, said the way the callback's other refusals are. */
function confirmQueryError(e: Error & { validation?: Array<{ instancePath?: string }> }, provider: string): MailbridgeError {
  const name = e.validation?.[0]?.instancePath?.replace(/^\//, '')
  if (name === 'state') return new MailbridgeError('state_invalid', { provider })
  return new MailbridgeError('bad_request', { message: `The callback's ${name ?? 'query'} parameter is malformed (given twice, or too long). Click Connect again.` })
}

/** What the admin granted, in words: the tenant, each permission, and what to do next. */
function adminConsentedPage(o: Extract<ConfirmOutcome, { kind: 'admin_consented' }>) {
  const granted = o.scopes.map((s) => html`<li><code>${s}</code>${SCOPE_WORDS[s.slice(s.lastIndexOf('/') + 1)] ? html` — ${SCOPE_WORDS[s.slice(s.lastIndexOf('/') + 1)]!}` : ''}</li>`)
  return html`<section class="card"><h1>Admin consent granted</h1>
    <div class="banner ok" role="status">An administrator of tenant ${o.tenant || '(not named)'} granted Mailbridge these permissions for every user of the tenant, so no one is asked to consent again:</div>
    <ul>${granted}</ul>
    <p>Mailbridge still holds no token: each mailbox connects once, signed in as itself, without a consent prompt. Next, connect ${o.mailbox}.</p>
    <p><a class="button" href="${serverPath(o.target)}">Back to the server</a></p></section>`
}

/** The permissions Connect asks for, as the admin consent page lists them. */
const SCOPE_WORDS: Record<string, string> = {
  openid: 'sign the user in',
  email: 'read the user\'s e-mail address, to check who signed in',
  offline_access: 'keep access without a new sign-in (the refresh token)',
  'SMTP.Send': 'send mail as the user over SMTP (AUTH XOAUTH2)',
  'IMAP.AccessAsUser.All': 'read and change the user\'s mailbox over IMAP',
  'Mail.Send': 'send mail as the user through Microsoft Graph',
  'Mail.ReadWrite': 'read and change the user\'s mail through Microsoft Graph',
}

/**
 * The OAuth redirect targets (`/microsoft_outlook/confirm`, `/google_gmail/confirm`). The state alone authorises the call; a refusal is
 * a readable page that says what happened and links back to the server.
 */
export const confirmRoutes: FastifyPluginAsync<{
  connect: ConnectService
  sessionOf: (req: import('fastify').FastifyRequest) => string | undefined
  /** The admin UI at MAILBRIDGE_BASE_URL, where a Connect whose session is missing here must start again. */
  adminUrl: string
}> = async (app, { connect, sessionOf, adminUrl }) => {
  for (const p of consentProviders()) {
    const id = p.id
    app.get(`/${p.route}/confirm`, { schema: { querystring: QueryString, hide: true }, attachValidation: true }, async (req, reply) => {
      try {
        // A browser lands here: a query the schema refuses (a doubled or oversized parameter) gets the page too.
        if (req.validationError) throw confirmQueryError(req.validationError, p.label)
        const outcome = await connect.confirm(id, req.query as ConfirmQuery, sessionOf(req))
        if (outcome.kind === 'admin_consented') return reply.type('text/html; charset=utf-8').send(page('Admin consent granted', adminConsentedPage(outcome)))
        return reply.redirect(`${serverPath(outcome.target)}?connected=1`, 302)
      } catch (e) {
        if (!(e instanceof MailbridgeError) || e.status >= 500) throw e
        const target = e.detail.target as ConfirmTarget | undefined
        const body = html`<section class="card"><h1>${p.label} connection failed</h1>
          <div class="banner bad" role="alert">${e.message}</div>
          ${e.code === 'state_session_missing'
            ? html`<p><a class="button" href="${new URL(serverPath(target!), adminUrl).toString()}">Open Mailbridge at ${adminUrl}</a></p>`
            : target
              ? html`<p><a class="button" href="${serverPath(target)}">Back to the server</a></p>`
              : html`<p><a class="button" href="/admin">Back to Mailbridge</a></p>`}</section>`
        return reply.code(e.status).type('text/html; charset=utf-8').send(page(`${p.label} connection failed`, body))
      }
    })
  }
}
