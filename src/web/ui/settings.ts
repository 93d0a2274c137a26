import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { html } from '../../html.ts'
import { clouds, CLOUD_IDS, type Cloud } from '../../oauth/clouds.ts'
import { gmail, outlook } from '../../oauth/providers.ts'
import { updateCheckingSecrets } from '../../settings/checked-update.ts'
import { generateCertificate, pendingCertificate, usePendingCertificate } from '../../settings/generated-certificate.ts'
import type { SettingsPatch } from '../../settings/service.ts'
import { banner, checkbox, csrfField, field, formError, formValue, hasPage, postButton, select, sendPage, seeOther, type FormError, type MenuItem, type Ui } from './kit.ts'

const CERTIFICATE_FILE = 'mailbridge-outlook.cer'

export const settingsMenu: MenuItem[] = [{ group: 'Settings', label: 'General Settings', href: '/admin/settings' }]

/** Settings → General Settings, Discuss section, as the seed guide's "Enter Microsoft Outlook credentials" walks it. */
export const settingsPages: FastifyPluginAsync<{ ui: Ui }> = async (app, { ui }) => {
  const { settings, connect, credentials } = ui.services

  const render = async (req: FastifyRequest, reply: FastifyReply, o: { error?: FormError; saved?: boolean; checks?: Array<{ result: 'accepted' | 'unchecked'; message: string }>; values?: Partial<Record<string, string>> } = {}) => {
    const v = await settings.view()
    const enabled = o.values ? o.values.external_email_servers === '1' : v.external_email_servers
    const redirect = connect.redirectUri(outlook)
    const gmailRedirect = connect.redirectUri(gmail)
    const incoming = hasPage(ui, 'Incoming Email Servers')
    const pending = await pendingCertificate(settings)
    const setTag = (set: boolean) => (set ? html`<span class="tag set">set</span> ` : html`<span class="tag muted">not set</span> `)
    const body = html`<h1>General Settings</h1>
${o.saved ? banner('ok', 'Settings saved.') : ''}${(o.checks ?? []).map((c) => banner(c.result === 'accepted' ? 'ok' : 'warn', c.message))}${o.error ? banner('bad', o.error.message) : ''}
<form method="post" action="/admin/settings">${csrfField(req.admin!)}
<section class="card" aria-labelledby="discuss"><h2 id="discuss">Discuss</h2>
<div class="setting">
${checkbox({ name: 'external_email_servers', label: 'External Email Servers', checked: enabled, controls: 'provider-credentials', hint: 'Send and receive mail through your own Microsoft 365 / Outlook or Gmail mailboxes.' })}
<p class="links"><a href="/admin/outgoing-servers">Outgoing Email Servers</a>${incoming ? html`<a href="${incoming.href}">Incoming Email Servers</a>` : html`<span class="muted" title="Arrives with incoming mail">Incoming Email Servers (not available yet)</span>`}</p>
<div id="provider-credentials"${enabled ? '' : html` hidden`}>
<fieldset id="outlook-credentials"><legend>Outlook Credentials</legend>
${field({ name: 'microsoft_outlook_client_id', label: 'Client ID', value: o.values?.microsoft_outlook_client_id ?? v.microsoft_outlook_client_id, error: o.error, placeholder: 'ID of your Outlook app', autocomplete: 'off', hint: 'The Application (client) ID from the app\'s Overview page in Azure.' })}
${field({ name: 'microsoft_outlook_client_secret', label: 'Client Secret', type: 'password', error: o.error, autocomplete: 'new-password', placeholder: v.microsoft_outlook_client_secret_set ? 'stored: leave empty to keep it' : 'Secret of your Outlook app', hint: html`${v.microsoft_outlook_client_secret_set ? html`<span class="tag set">set</span> ` : html`<span class="tag muted">not set</span> `}The secret's <strong>Value</strong> from Certificates &amp; secrets (not its Secret ID). It is stored encrypted and never shown again.` })}
${field({ name: 'microsoft_outlook_client_secret_expires_at', label: 'Client Secret expiry date', type: 'date', value: o.values?.microsoft_outlook_client_secret_expires_at ?? v.microsoft_outlook_client_secret_expires_at?.slice(0, 10) ?? '', error: o.error, hint: 'Shown in Azure beside the secret. Mailbridge warns from 30 days before it.' })}
${field({ name: 'microsoft_outlook_client_secret_next', label: 'Next Client Secret', type: 'password', error: o.error, autocomplete: 'new-password', placeholder: v.microsoft_outlook_client_secret_next_set ? 'stored: leave empty to keep it' : 'A second secret of your Outlook app', hint: html`${setTag(v.microsoft_outlook_client_secret_next_set)}Create a second secret in Azure before the first one expires: when Microsoft refuses the current secret as expired or wrong (AADSTS7000222, 7000215), Mailbridge switches to this one with no interruption, and it becomes the current one.` })}
${field({ name: 'microsoft_outlook_client_secret_next_expires_at', label: 'Next Client Secret expiry date', type: 'date', value: o.values?.microsoft_outlook_client_secret_next_expires_at ?? v.microsoft_outlook_client_secret_next_expires_at?.slice(0, 10) ?? '', error: o.error })}
<div class="field${o.error?.field === 'microsoft_outlook_client_certificate' ? ' invalid' : ''}"><label for="f-microsoft_outlook_client_certificate">Client certificate (PEM certificate and private key)</label>
<textarea id="f-microsoft_outlook_client_certificate" name="microsoft_outlook_client_certificate" rows="3" autocomplete="off" spellcheck="false" aria-describedby="f-microsoft_outlook_client_certificate-hint${o.error?.field === 'microsoft_outlook_client_certificate' ? ' f-microsoft_outlook_client_certificate-error' : ''}" placeholder="${v.microsoft_outlook_client_certificate_set ? 'stored: leave empty to keep it' : '-----BEGIN CERTIFICATE----- … -----BEGIN PRIVATE KEY----- …'}"></textarea>
<p class="hint" id="f-microsoft_outlook_client_certificate-hint">${setTag(v.microsoft_outlook_client_certificate_set)}${v.microsoft_outlook_client_certificate_set ? html`Thumbprint <code id="certificate-thumbprint">${v.microsoft_outlook_client_certificate_thumbprint}</code>, expires <span id="certificate-expires">${v.microsoft_outlook_client_certificate_expires_at?.slice(0, 10)}</span>. Token requests carry an assertion signed with it; the secret is not sent. ` : ''}Microsoft recommends a certificate over a secret. Paste one whose certificate is uploaded to the app in Azure (Certificates &amp; secrets → Certificates), or generate one below. The key is stored encrypted and never shown again.</p>
${o.error?.field === 'microsoft_outlook_client_certificate' ? html`<p class="error" id="f-microsoft_outlook_client_certificate-error">${o.error.message}</p>` : ''}</div>
<div class="field"><span class="label" id="redirect-label">Redirect URI to register in Azure (platform Web)</span>
<p class="copy"><code id="redirect-uri" aria-labelledby="redirect-label">${redirect}</code><button type="button" class="secondary" data-copy="redirect-uri" hidden>Copy</button></p>
<p class="hint">It comes from MAILBRIDGE_BASE_URL and must match character for character (else AADSTS50011).</p></div>
${select({ name: 'microsoft_outlook_cloud', label: 'Microsoft cloud', value: o.values?.microsoft_outlook_cloud || v.microsoft_outlook_cloud, error: o.error, options: CLOUD_IDS.map((c) => [c, clouds[c].label]), hint: 'National clouds have their own sign-in host and mail hosts: register the app in that cloud\'s portal. Changes the defaults of new servers, not existing ones.' })}
</fieldset>
<fieldset id="gmail-credentials"><legend>Gmail Credentials</legend>
${field({ name: 'google_gmail_client_id', label: 'Client ID', value: o.values?.google_gmail_client_id ?? v.google_gmail_client_id, error: o.error, placeholder: 'ID of your Google app', autocomplete: 'off', hint: 'The OAuth client ID from Google Cloud console → APIs & Services → Credentials (type "Web application").' })}
${field({ name: 'google_gmail_client_secret', label: 'Client Secret', type: 'password', error: o.error, autocomplete: 'new-password', placeholder: v.google_gmail_client_secret_set ? 'stored: leave empty to keep it' : 'Secret of your Google app', hint: html`${v.google_gmail_client_secret_set ? html`<span class="tag set">set</span> ` : html`<span class="tag muted">not set</span> `}Stored encrypted and never shown again.` })}
<div class="field"><span class="label" id="gmail-redirect-label">Authorized redirect URI to register in Google Cloud console</span>
<p class="copy"><code id="gmail-redirect-uri" aria-labelledby="gmail-redirect-label">${gmailRedirect}</code><button type="button" class="secondary" data-copy="gmail-redirect-uri" hidden>Copy</button></p></div>
</fieldset>
</div>
</div>
<button type="submit">Save</button>
</section></form>
<section class="card" aria-labelledby="generate-certificate"><h2 id="generate-certificate">Generate a certificate for Azure</h2>
<p>Mailbridge makes a key and a self-signed certificate, keeps the key encrypted, and downloads the certificate (${CERTIFICATE_FILE}) for you to upload in Azure: App registrations → your app → Certificates &amp; secrets → Certificates → Upload certificate. It is not used until you click Use this certificate.</p>
${pending ? html`<div id="pending-certificate">${banner('warn', html`A generated certificate waits: thumbprint <code>${pending.thumbprint}</code>, expires ${pending.expiresAt.slice(0, 10)}. <a href="/admin/settings/certificate.cer" download>Download ${CERTIFICATE_FILE} again</a>, upload it to Azure, then use it.`)}</div>
${postButton(req.admin!, '/admin/settings/certificate/use', 'Use this certificate', { cls: 'primary' })}` : ''}
${postButton(req.admin!, '/admin/settings/certificate', pending ? 'Generate another certificate' : 'Generate a certificate')}
</section>`
    return sendPage(ui, req, reply, 'General Settings', body, o.error ? 400 : 200)
  }

  app.get<{ Querystring: { saved?: string } }>('/admin/settings', async (req, reply) => render(req, reply, { saved: req.query.saved === '1' }))

  app.post('/admin/settings', async (req, reply) => {
    const enabled = formValue(req.body, 'external_email_servers') === '1'
    const patch: SettingsPatch = { external_email_servers: enabled }
    const id = formValue(req.body, 'microsoft_outlook_client_id')
    const secret = formValue(req.body, 'microsoft_outlook_client_secret')
    const expires = formValue(req.body, 'microsoft_outlook_client_secret_expires_at')
    const next = formValue(req.body, 'microsoft_outlook_client_secret_next')
    const nextExpires = formValue(req.body, 'microsoft_outlook_client_secret_next_expires_at')
    const certificate = formValue(req.body, 'microsoft_outlook_client_certificate')
    const cloud = formValue(req.body, 'microsoft_outlook_cloud')
    const gmailId = formValue(req.body, 'google_gmail_client_id')
    const gmailSecret = formValue(req.body, 'google_gmail_client_secret')
    if (id !== undefined) patch.microsoft_outlook_client_id = id
    if (cloud) patch.microsoft_outlook_cloud = cloud as Cloud
    if (gmailId !== undefined) patch.google_gmail_client_id = gmailId
    if (gmailSecret) patch.google_gmail_client_secret = gmailSecret
    // The secret is never shown back: an empty field means "keep the stored one".
    if (secret) patch.microsoft_outlook_client_secret = secret
    if (expires !== undefined) patch.microsoft_outlook_client_secret_expires_at = expires.trim() || null
    if (next) patch.microsoft_outlook_client_secret_next = next
    if (nextExpires !== undefined) patch.microsoft_outlook_client_secret_next_expires_at = nextExpires.trim() || null
    if (certificate?.trim()) patch.microsoft_outlook_client_certificate = certificate
    let checks: Array<{ result: 'accepted' | 'unchecked'; message: string }>
    try {
      const saved = await updateCheckingSecrets({ settings, credentials }, patch)
      checks = [saved.microsoft_outlook_client_secret_check, saved.microsoft_outlook_client_secret_next_check, saved.microsoft_outlook_client_certificate_check, saved.google_gmail_client_secret_check].flatMap((c) => (c ? [c] : []))
    } catch (e) {
      const values = { external_email_servers: enabled ? '1' : '', microsoft_outlook_client_id: id ?? '', microsoft_outlook_client_secret_expires_at: expires ?? '', microsoft_outlook_client_secret_next_expires_at: nextExpires ?? '', microsoft_outlook_cloud: cloud ?? '', google_gmail_client_id: gmailId ?? '' }
      return render(req, reply, { error: formError(e), values })
    }
    req.log.info({ session_id: req.admin!.id, external_email_servers: enabled, secret_changed: !!secret, next_secret_changed: !!next, certificate_changed: !!certificate?.trim(), gmail_secret_changed: !!gmailSecret }, 'settings saved from the admin UI')
    // What the secret check found is shown on the page itself: a redirect would lose it.
    if (checks.length) return render(req, reply, { saved: true, checks })
    return seeOther(reply, '/admin/settings?saved=1')
  })

  // Generate: the certificate comes back as a download at once; the page shows it pending until it is used.
  app.post('/admin/settings/certificate', async (req, reply) => {
    const made = await generateCertificate(settings)
    req.log.info({ session_id: req.admin!.id, thumbprint: made.thumbprint }, 'client certificate generated (pending until used)')
    return sendCertificate(reply, made.certificatePem)
  })
  app.get('/admin/settings/certificate.cer', async (_req, reply) => {
    const pending = await pendingCertificate(settings)
    if (!pending) return seeOther(reply, '/admin/settings')
    return sendCertificate(reply, pending.certificatePem)
  })
  app.post('/admin/settings/certificate/use', async (req, reply) => {
    let checks: Array<{ result: 'accepted' | 'unchecked'; message: string }>
    try {
      const saved = await usePendingCertificate({ settings, credentials })
      checks = saved.microsoft_outlook_client_certificate_check ? [saved.microsoft_outlook_client_certificate_check] : []
    } catch (e) {
      return render(req, reply, { error: formError(e) })
    }
    req.log.info({ session_id: req.admin!.id }, 'generated client certificate in use')
    return render(req, reply, { saved: true, checks })
  })
}

/** The public certificate as a file Azure's upload takes (.cer, PEM-encoded). */
const sendCertificate = (reply: FastifyReply, pem: string) =>
  reply.header('content-type', 'application/x-pem-file').header('content-disposition', `attachment; filename="${CERTIFICATE_FILE}"`).header('cache-control', 'no-store').send(pem)
