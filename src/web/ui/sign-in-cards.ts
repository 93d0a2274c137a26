import type { AdminSession } from '../../access/admin-sessions.ts'
import { html, type Html } from '../../html.ts'
import { providerFor } from '../../oauth/providers.ts'
import type { TokenView } from '../../oauth/token-view.ts'
import { banner, postButton } from './kit.ts'

/** What the sign-in cards read of a server. */
export interface SignInSubject {
  id: string
  username: string
  authentication: string
  token: Pick<TokenView, 'valid' | 'sign_in' | 'admin_consent_required'>
}

/**
 * The device code card: while pending, the code and where to enter it, with a live wait (SCRIPT in html.ts fetches
 * `data-live` every few seconds and swaps the card for the answer, so the page updates without a reload) and a
 * Refresh link for browsers without JavaScript; afterwards, how the sign-in ended.
 */
export function deviceCodeCard(base: string, s: SignInSubject): Html | '' {
  const si = s.token.sign_in
  if (!si || si.flow !== 'device_code') return ''
  const page = `${base}/${encodeURIComponent(s.id)}`
  if (si.state === 'pending' && si.user_code && si.verification_uri) {
    const until = si.expires_at ? `${si.expires_at.slice(11, 16)} UTC` : 'the code expires'
    return html`<section class="card" id="sign-in" data-live="${page}/sign-in" data-state="pending" aria-live="polite"><h2>Sign in with a code</h2>
<p>On any device with a browser, open <a href="${si.verification_uri}" target="_blank" rel="noopener">${si.verification_uri}</a>, enter this code, sign in as <strong>${s.username}</strong> and accept:</p>
<p class="copy"><code id="user-code">${si.user_code}</code><button type="button" data-copy="user-code" hidden>Copy</button></p>
<p role="status">Waiting for the sign-in… Mailbridge checks with Microsoft every few seconds until ${until}.</p>
<p><a href="${page}">Refresh</a></p></section>`
  }
  if (si.state === 'completed') return html`<section class="card" id="sign-in" data-state="completed">${banner('ok', html`Signed in with the code: ${s.username} is linked to Mailbridge.`)}<p><a href="${page}">Reload the page</a></p></section>`
  if (si.state === 'expired' || si.state === 'declined' || si.state === 'failed') {
    return html`<section class="card" id="sign-in" data-state="${si.state}">${banner('bad', html`The sign-in with a code stopped: ${si.reason ?? si.state}`)}</section>`
  }
  return ''
}

/**
 * Where Microsoft asked for an administrator (AADSTS65001, 90094, 90095), or may have ("Need admin approval" left
 * with "Return to the application", which says no more): "Grant admin consent", explained for whoever must click it.
 */
export function adminConsentCard(base: string, session: AdminSession, s: SignInSubject): Html | '' {
  const p = providerFor(s.authentication)
  if (!p?.adminConsentBase || s.token.valid) return ''
  const maybe = s.token.sign_in?.error_code === 'cancel'
  if (!s.token.admin_consent_required && !maybe) return ''
  return html`<section class="card" id="admin-consent"><h2>Grant admin consent</h2>
<p>${maybe ? 'The sign-in was cancelled at Microsoft. If Microsoft showed "Need admin approval", your' : 'Microsoft answered that an administrator must consent: your'} organisation lets only administrators consent to apps, so ${s.username} cannot connect until one has.</p>
<p><strong>Who clicks it:</strong> an administrator of the Microsoft 365 tenant of ${s.username} (a Global Administrator, Privileged Role Administrator, Cloud Application Administrator or Application Administrator). You can also send them this server's admin consent URL (<code>POST …/admin-consent</code> in the API).</p>
<p><strong>What it grants:</strong> Mailbridge's app may, for each user of the tenant who then connects, sign them in, read their e-mail address, keep access without a new sign-in, send mail over SMTP and read their mailbox over IMAP. It gives Mailbridge no token and no access to any mailbox by itself: each mailbox still connects once, signed in as itself, now without a consent prompt.</p>
<div class="actions">${postButton(session, `${base}/${encodeURIComponent(s.id)}/admin-consent`, 'Grant admin consent', { cls: '' })}</div></section>`
}

/** For installs whose address cannot be an https redirect URI: the person signs in with a code instead of Connect. */
export function deviceCodeOffer(base: string, session: AdminSession, s: SignInSubject): Html | '' {
  const p = providerFor(s.authentication)
  if (!p?.offersDeviceCode || s.token.valid || s.token.sign_in?.state === 'pending') return ''
  return html`<section class="card" id="device-code"><h2>Cannot use Connect?</h2>
<p class="hint">When Mailbridge's address cannot be a redirect URI (an <code>http://</code> intranet address, or a host the browser cannot reach back), sign in with a code instead: you enter it at ${p.company} on any device, and Mailbridge asks ${p.company} until you have signed in.</p>
<div class="actions">${postButton(session, `${base}/${encodeURIComponent(s.id)}/device-code`, 'Sign in with a code', { cls: 'secondary' })}</div></section>`
}
