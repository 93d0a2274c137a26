import type { FastifyReply, FastifyRequest } from 'fastify'
import { MailbridgeError } from '../../errors.ts'
import { html, page, raw, type Html } from '../../html.ts'
import type { AdminSession } from '../../access/admin-sessions.ts'
import { providerFor } from '../../oauth/providers.ts'
import type { WebServices } from '../web-services.ts'

/** One entry of the admin menu; page modules export theirs, so incoming servers and messages slot in later. */
export interface MenuItem {
  group: 'Settings' | 'Technical' | 'Mail'
  label: string
  href: string
}

export interface Ui {
  services: WebServices
  menu: MenuItem[]
  /** Pre-filled host and port of a new Outlook server (the sandbox points them at its SMTP peer). */
  smtpDefaults?: { host: string; port: number }
  /** Pre-filled host and SSL/TLS port of a new Outlook incoming server (the sandbox's Dovecot). */
  imapDefaults?: { host: string; port: number }
}

export const hasPage = (ui: Ui, label: string): MenuItem | undefined => ui.menu.find((m) => m.label === label)

/** The hidden synchronizer token every POST form of a session carries. */
export const csrfField = (s: AdminSession): Html => html`<input type="hidden" name="_csrf" value="${s.csrf_token}">`

/** A form with one button, for actions on a row (Retry, Cancel, Delete…). */
export const postButton = (s: AdminSession, action: string, label: string, o: { cls?: string; hidden?: Record<string, string>; aria?: string } = {}): Html =>
  html`<form method="post" action="${action}" class="inline">${csrfField(s)}${Object.entries(o.hidden ?? {}).map(([k, v]) => html`<input type="hidden" name="${k}" value="${v}">`)}<button type="submit" class="${o.cls ?? 'secondary'}"${o.aria ? html` aria-label="${o.aria}"` : ''}>${label}</button></form>`

export interface FieldOptions {
  name: string
  label: string
  value?: string | number | null
  type?: 'text' | 'email' | 'password' | 'number' | 'date' | 'url'
  hint?: string | Html
  error?: FormError
  required?: boolean
  placeholder?: string
  autocomplete?: string
  readonly?: boolean
  list?: string
  min?: number
  max?: number
}

export interface FormError {
  field?: string
  message: string
}

const errorFor = (name: string, e?: FormError): string | undefined => (e && e.field === name ? e.message : undefined)

/** A labelled input: the label is bound by id, the hint and the error are read out with it (aria-describedby). */
export function field(o: FieldOptions): Html {
  const id = `f-${o.name}`
  const err = errorFor(o.name, o.error)
  const described = [o.hint ? `${id}-hint` : '', err ? `${id}-error` : ''].filter(Boolean).join(' ')
  return html`<div class="field${err ? ' invalid' : ''}"><label for="${id}">${o.label}</label>
<input id="${id}" name="${o.name}" type="${o.type ?? 'text'}" value="${o.value ?? ''}"${o.required ? raw(' required') : ''}${o.readonly ? raw(' readonly') : ''}${o.placeholder ? html` placeholder="${o.placeholder}"` : ''}${o.autocomplete ? html` autocomplete="${o.autocomplete}"` : ''}${o.list ? html` list="${o.list}"` : ''}${o.min !== undefined ? html` min="${o.min}"` : ''}${o.max !== undefined ? html` max="${o.max}"` : ''}${described ? html` aria-describedby="${described}"` : ''}${err ? raw(' aria-invalid="true"') : ''}>
${o.hint ? html`<p class="hint" id="${id}-hint">${o.hint}</p>` : ''}${err ? html`<p class="error" id="${id}-error">${err}</p>` : ''}</div>`
}

export function select(o: { name: string; label: string; value: string; options: Array<[string, string]>; error?: FormError; hint?: string }): Html {
  const id = `f-${o.name}`
  const err = errorFor(o.name, o.error)
  return html`<div class="field${err ? ' invalid' : ''}"><label for="${id}">${o.label}</label>
<select id="${id}" name="${o.name}"${err ? html` aria-invalid="true" aria-describedby="${id}-error"` : ''}>${o.options.map(([v, l]) => html`<option value="${v}"${v === o.value ? raw(' selected') : ''}>${l}</option>`)}</select>
${o.hint ? html`<p class="hint">${o.hint}</p>` : ''}${err ? html`<p class="error" id="${id}-error">${err}</p>` : ''}</div>`
}

/** Radio buttons in a fieldset whose legend names the choice. */
export function radios(o: { name: string; legend: string; value: string; options: Array<[string, string, string?]>; error?: FormError }): Html {
  const err = errorFor(o.name, o.error)
  return html`<fieldset class="choice${err ? ' invalid' : ''}"><legend>${o.legend}</legend>${o.options.map(
    ([v, l, hint]) => html`<div class="check"><input type="radio" id="f-${o.name}-${v}" name="${o.name}" value="${v}"${v === o.value ? raw(' checked') : ''}><label for="f-${o.name}-${v}">${l}</label>${hint ? html`<span class="hint">${hint}</span>` : ''}</div>`,
  )}${err ? html`<p class="error">${err}</p>` : ''}</fieldset>`
}

export function checkbox(o: { name: string; label: string; checked: boolean; hint?: string; controls?: string }): Html {
  const id = `f-${o.name}`
  return html`<div class="check"><input type="checkbox" id="${id}" name="${o.name}" value="1"${o.checked ? raw(' checked') : ''}${o.controls ? html` aria-controls="${o.controls}"` : ''}${o.hint ? html` aria-describedby="${id}-hint"` : ''}><label for="${id}">${o.label}</label></div>${o.hint ? html`<p class="hint" id="${id}-hint">${o.hint}</p>` : ''}`
}

export const banner = (kind: 'ok' | 'bad' | 'warn', text: string | Html): Html =>
  html`<div class="banner ${kind}" role="${kind === 'ok' ? 'status' : 'alert'}">${text}</div>`

/** A form field comes back as a string, an array (repeated name) or nothing; take the last string. */
export const formValue = (body: unknown, name: string): string | undefined => {
  const v = (body as Record<string, unknown> | undefined)?.[name]
  const one = Array.isArray(v) ? v.at(-1) : v
  return typeof one === 'string' ? one : undefined
}

/** A MailbridgeError a form can show beside its field; anything else is not the admin's to fix. */
export function formError(e: unknown): FormError {
  if (e instanceof MailbridgeError && e.status < 500) return { field: e.detail.field, message: e.message }
  throw e
}

function nav(ui: Ui, s: AdminSession, current: string): Html {
  // The home page is /admin itself, the prefix of every page: it is current on itself and on a mailbox's page.
  const here = (m: MenuItem) => (m.href === '/admin' ? current === '/admin' || current.startsWith('/admin/mailboxes') : current.startsWith(m.href))
  const link = (m: MenuItem) => html`<li><a href="${m.href}"${here(m) ? raw(' aria-current="page"') : ''}>${m.label}</a></li>`
  const group = (g: MenuItem['group'], title: string) => {
    const items = ui.menu.filter((m) => m.group === g)
    return items.length ? html`<li class="group"><span class="group-title">${title}</span><ul>${items.map(link)}</ul></li>` : ''
  }
  return html`<a class="skip" href="#main">Skip to content</a><a class="brand" href="/admin">Mailbridge</a>
<button type="button" class="menu-toggle" aria-expanded="false" aria-controls="main-menu" hidden>Menu</button>
<nav aria-label="Main"><ul id="main-menu">${group('Settings', 'Settings')}${group('Technical', 'Technical')}${group('Mail', 'Mail')}</ul></nav>
<form method="post" action="/admin/logout" class="logout">${csrfField(s)}<button type="submit" class="link">Sign out (${s.username})</button></form>`
}

/** The client secret's expiry warning, on every page from 30 days before (Azure secrets last at most 24 months). */
export async function expiryBanner(ui: Ui): Promise<Html | ''> {
  const at = (await ui.services.settings.view()).microsoft_outlook_client_secret_expires_at
  if (!at) return ''
  const days = Math.ceil((Date.parse(at) - Date.now()) / 86_400_000)
  if (days > 30) return ''
  const date = at.slice(0, 10)
  const what = days <= 0 ? html`The Outlook Client Secret expired on ${date}: every mailbox has stopped (AADSTS7000222).` : html`The Outlook Client Secret expires on ${date}, in ${days} day${days === 1 ? '' : 's'}.`
  return banner(
    days <= 0 ? 'bad' : 'warn',
    html`${what} Create a new client secret in Azure (App registrations → Certificates &amp; secrets), then enter its Value and expiry date in <a href="/admin/settings">General Settings</a>.`,
  )
}

/**
 * Servers whose mailbox lost its token (refused, revoked, expired), on every page: their mail waits, or their
 * inbox is not read, until someone clicks Reconnect on the server's page.
 */
export async function tokenBanner(ui: Ui): Promise<Html | ''> {
  // Every page renders this: with a thousand mailboxes, listing each server's token is thousands of queries.
  if (!(await ui.services.credentials.anyFailing())) return ''
  const [outgoing, incoming] = await Promise.all([ui.services.outgoingServers.list(), ui.services.incomingServers.list()])
  const dead = [...outgoing.map((s) => ({ s, href: `/admin/outgoing-servers/${s.id}` })), ...incoming.map((s) => ({ s, href: `/admin/incoming-servers/${s.id}` }))].filter(
    ({ s }) => s.token.status === 'invalid' || s.token.status === 'expired',
  )
  if (!dead.length) return ''
  // App-only servers have nothing to reconnect: an admin fixes the app's permissions, then Test Connection.
  const appOnly = dead.some(({ s }) => providerFor(s.authentication)?.route === null)
  return banner('bad', html`The token of ${dead.length === 1 ? 'this server' : 'these servers'} no longer works, so ${dead.length === 1 ? 'it waits' : 'they wait'} for a Reconnect${appOnly ? ' (app-only servers: for the app\'s permissions, then Test Connection)' : ''}: ${dead.map(({ s, href }, i) => html`${i ? ', ' : ''}<a href="${href}">${s.name} (${s.username})</a>`)}.`)
}

/** Send a full admin page: menu, the warnings that need an admin (secret expiry, dead tokens), content. */
export async function sendPage(ui: Ui, req: FastifyRequest, reply: FastifyReply, title: string, body: Html, status = 200): Promise<FastifyReply> {
  const s = req.admin!
  const content = html`${await expiryBanner(ui)}${await tokenBanner(ui)}${body}`
  return reply
    .code(status)
    .header('cache-control', 'no-store')
    .type('text/html; charset=utf-8')
    .send(page(title, content, { nav: nav(ui, s, req.url.split('?')[0]!) }))
}

/** Post/Redirect/Get: 303 so a reload does not post again. */
export const seeOther = (reply: FastifyReply, to: string) => reply.redirect(to, 303)
