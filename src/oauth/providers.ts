import { explainAadsts, type ProviderErrorBody, type Explanation } from './aadsts.ts'
import { clouds, defaultMicrosoftEndpoint, type Cloud } from './clouds.ts'
import { explainGoogle } from './google-errors.ts'

export type ProviderId = 'outlook' | 'outlook_app' | 'gmail'

export interface MailHost {
  host: string
  port: number
  encryption: 'starttls' | 'ssl'
}

/** Where the admin signs in and where tokens are fetched. */
export interface Endpoints {
  authorize: string
  token: string
  /** The device authorization endpoint (RFC 8628 §3.1), where the provider offers it for mail scopes. */
  deviceCode?: string
}

/** A system parameter a provider's endpoints are read from; a stored value replaces the default. */
export interface EndpointParam {
  key: string
  /** The value while the parameter is not set (Microsoft's login host follows the national cloud). */
  default(cloud: Cloud): string
  /** What a value looks like, for the message refusing a wrong one; the global default when absent. */
  example?: string
  /** A base URL the endpoints are resolved against (`new URL('token', base)`): kept with its trailing slash. */
  base: boolean
  /** The provider's own hosts a value may name in this cloud: the client secret and refresh tokens go there (§10). */
  hosts(cloud: Cloud): readonly string[]
}

/**
 * `authorization_code`: a person consents once, Mailbridge keeps a refresh token (RFC 6749 §4.1).
 * `client_credentials`: the app itself gets tokens, no person and no refresh token (RFC 6749 §4.4).
 */
export type Grant = 'authorization_code' | 'client_credentials'

/**
 * A provider is data run by one shared flow (oauth/protocol.ts, oauth/connect.ts, oauth/credentials.ts):
 * where to send the admin, which scopes to ask for, which mail hosts to default to, how to read its errors.
 * Nothing outside this file asks which provider it is; it asks the provider.
 */
export interface ProviderSpec {
  id: ProviderId
  /** As the seed guide writes it: "Connect your Outlook account", "Outlook Token Valid"; "Gmail Token Valid". */
  label: string
  /** "An" Outlook server, "A" Gmail server. */
  article: 'A' | 'An'
  /** Who runs the identity platform, for messages ("Microsoft refused the sign-in"). */
  company: string
  /** The settings block holding the app's Client ID and Secret: `{prefix}_client_id`, "{credentialsLabel} Credentials". */
  settingsPrefix: 'microsoft_outlook' | 'google_gmail'
  credentialsLabel: string
  /** Where the Client ID is found, for the message refusing a malformed one. */
  clientIdHint: string
  /** Where the redirect URI is registered, for the start-up banner and the settings page. */
  registerRedirectAt: string
  /** Callback `/{route}/confirm`; null when no person consents (client credentials). */
  route: string | null
  grant: Grant
  /** The parameters the endpoints are read from (`microsoft_outlook.endpoint`, `google_gmail.token_endpoint`). */
  endpointParams: readonly EndpointParam[]
  endpoints(values: Readonly<Record<string, string>>, o: { tenant: string | null }): Endpoints
  /** Whether Microsoft's national-cloud setting applies. */
  cloudAware: boolean
  /** Scopes of the consent (or of the client-credentials request). */
  scopes(cloud: Cloud): string[]
  /** Scopes sent with a refresh; null sends none (the grant's scopes are kept, RFC 6749 §6). */
  refreshScopes(cloud: Cloud): string[] | null
  /** Extra authorize parameters (Google needs access_type=offline and prompt=consent). */
  authorizeParams: Readonly<Record<string, string>>
  smtp(cloud: Cloud): MailHost
  imap(cloud: Cloud): MailHost
  /** The mail hosts (SMTP and IMAP) this provider's tokens may be sent to in this cloud; nothing else gets one (§10). */
  mailHosts(cloud: Cloud): readonly string[]
  /** Default per-server submission rate; null for none. */
  maxPerMinute: number | null
  /** The tenant id is a server field for app-only access (the token URL names it). */
  needsTenant: boolean
  explain(body: ProviderErrorBody): Explanation
  /**
   * The admin consent endpoint for the tenant of this mailbox (an administrator grants the consent's scopes for every
   * user of the tenant); null where the provider has none.
   */
  adminConsentBase: ((endpoints: Endpoints, mailbox: string) => string) | null
  /** A person may sign in with a code on another device (RFC 8628) instead of Connect's redirect. */
  offersDeviceCode: boolean
  /** What to check when the mail server refuses a token this provider issued. */
  refusedHint(protocol: 'smtp' | 'imap', mailbox: string): string
}

/** Outlook's per-mailbox submission limit (Exchange Online limits: 30 messages per minute). */
export const OUTLOOK_MAX_PER_MINUTE = 30

const microsoftEndpoints = (values: Readonly<Record<string, string>>): Endpoints => {
  const endpoint = values['microsoft_outlook.endpoint']!
  return { authorize: new URL('authorize', endpoint).toString(), token: new URL('token', endpoint).toString(), deviceCode: new URL('devicecode', endpoint).toString() }
}

/**
 * `{login host}/{tenant}/v2.0/adminconsent`. "Do not use 'common', as personal accounts cannot provide admin consent
 * except in the context of a tenant": on common (or consumers) the mailbox's domain names the tenant, since a tenant
 * is named by any verified domain and a Microsoft 365 mailbox's domain is one; a tenant id or organizations stays.
 * @see https://learn.microsoft.com/entra/identity-platform/v2-admin-consent#request-the-permissions-from-a-directory-admin
 */
const microsoftAdminConsent = (endpoints: Endpoints, mailbox: string): string => {
  const url = new URL(endpoints.token)
  const segment = decodeURIComponent(url.pathname.split('/')[1] ?? '')
  const domain = mailbox.slice(mailbox.lastIndexOf('@') + 1)
  const tenant = ['common', 'consumers', ''].includes(segment.toLowerCase()) && domain ? domain : segment
  return new URL(`/${encodeURIComponent(tenant)}/v2.0/adminconsent`, url.origin).toString()
}

/**
 * One consent per mailbox asks for both mail scopes, so an outgoing and an incoming server share it; `openid email`
 * tell us who consented; `offline_access` gets the refresh token. The scope host follows the national cloud.
 * @see https://learn.microsoft.com/en-us/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth
 */
export const outlook: ProviderSpec = {
  id: 'outlook',
  label: 'Outlook',
  article: 'An',
  company: 'Microsoft',
  settingsPrefix: 'microsoft_outlook',
  credentialsLabel: 'Outlook',
  clientIdHint: 'The Client ID is the Application (client) ID from the app\'s Overview page in Azure, a GUID.',
  registerRedirectAt: 'in Azure (Web platform)',
  route: 'microsoft_outlook',
  grant: 'authorization_code',
  endpointParams: [
    { key: 'microsoft_outlook.endpoint', default: defaultMicrosoftEndpoint, example: 'https://login.microsoftonline.com/<tenant id>/oauth2/v2.0/', base: true, hosts: (cloud) => clouds[cloud].loginHosts },
  ],
  endpoints: (values) => microsoftEndpoints(values),
  cloudAware: true,
  scopes: (cloud) => ['openid', 'email', 'offline_access', `${clouds[cloud].resource}/SMTP.Send`, `${clouds[cloud].resource}/IMAP.AccessAsUser.All`],
  // The refresh names one resource plus offline_access, as Microsoft requires (AADSTS700022).
  refreshScopes: (cloud) => ['offline_access', `${clouds[cloud].resource}/SMTP.Send`, `${clouds[cloud].resource}/IMAP.AccessAsUser.All`],
  authorizeParams: { response_mode: 'query' },
  smtp: (cloud) => ({ host: clouds[cloud].smtpHost, port: 587, encryption: 'starttls' }),
  imap: (cloud) => ({ host: clouds[cloud].imapHost, port: 993, encryption: 'ssl' }),
  mailHosts: (cloud) => clouds[cloud].mailHosts,
  maxPerMinute: OUTLOOK_MAX_PER_MINUTE,
  needsTenant: false,
  explain: explainAadsts,
  adminConsentBase: microsoftAdminConsent,
  offersDeviceCode: true,
  refusedHint: (protocol, mailbox) =>
    protocol === 'smtp'
      ? `Check that the account that consented is ${mailbox}, that it has a mailbox, and that SMTP AUTH is enabled for it; then Reconnect.`
      : `Check that the account that consented is ${mailbox}, that IMAP is enabled for it and that the app has the IMAP.AccessAsUser.All permission; then Reconnect.`,
}

/**
 * Microsoft app-only access (client credentials) for shared mailboxes: no person consents; an admin grants the
 * app IMAP.AccessAsApp / SMTP.SendAsApp and mailbox permissions in Exchange. The token URL names the tenant
 * (client credentials are refused on /common: AADSTS9001023), and there is no refresh token.
 * @see https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
 * @see https://learn.microsoft.com/en-us/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth#use-client-credentials-grant-flow-to-authenticate-smtp-imap-and-pop-connections
 */
export const outlookApp: ProviderSpec = {
  ...outlook,
  id: 'outlook_app',
  label: 'Outlook (app-only)',
  route: null,
  grant: 'client_credentials',
  endpoints: (values, o) => {
    // The parameter's tenant segment (common, or a tenant id) is replaced by the server's tenant.
    const url = new URL(values['microsoft_outlook.endpoint']!)
    const parts = url.pathname.split('/')
    parts[1] = encodeURIComponent(o.tenant ?? '')
    url.pathname = parts.join('/')
    return microsoftEndpoints({ 'microsoft_outlook.endpoint': url.toString() })
  },
  scopes: (cloud) => [`${clouds[cloud].appResource}/.default`],
  refreshScopes: () => null,
  authorizeParams: {},
  needsTenant: true,
  // The application permissions are granted in Azure (API permissions → Grant admin consent), not through Connect.
  adminConsentBase: null,
  offersDeviceCode: false,
  refusedHint: (protocol, mailbox) =>
    `Check that the app has the ${protocol === 'smtp' ? 'SMTP.SendAsApp' : 'IMAP.AccessAsApp'} application permission with admin consent, ` +
    `that an Exchange admin ran New-ServicePrincipal for it and Add-MailboxPermission -Identity ${mailbox} -User <service principal> -AccessRights FullAccess` +
    `${protocol === 'smtp' ? `, and that SMTP AUTH is enabled for ${mailbox}` : ''}.`,
}

/**
 * Gmail as Odoo's google_gmail: Google's authorize and token endpoints, the full-mail scope, and
 * access_type=offline + prompt=consent so a refresh token comes back on every consent. Odoo asks for
 * mail.google.com alone and never learns who consented; Mailbridge adds `openid email` so the id_token's
 * `email` claim can be checked against the server's username, as for Outlook.
 * @see https://developers.google.com/identity/protocols/oauth2/web-server
 * @see https://developers.google.com/gmail/imap/xoauth2-protocol
 * @see https://developers.google.com/identity/openid-connect/openid-connect#an-id-tokens-payload
 */
export const gmail: ProviderSpec = {
  id: 'gmail',
  label: 'Gmail',
  article: 'A',
  company: 'Google',
  settingsPrefix: 'google_gmail',
  credentialsLabel: 'Gmail',
  clientIdHint: 'The Client ID is the OAuth client\'s ID from Google Cloud console (…apps.googleusercontent.com).',
  registerRedirectAt: 'in Google Cloud console (Authorized redirect URIs)',
  route: 'google_gmail',
  grant: 'authorization_code',
  endpointParams: [
    { key: 'google_gmail.auth_endpoint', default: () => 'https://accounts.google.com/o/oauth2/v2/auth', base: false, hosts: () => ['accounts.google.com'] },
    // www.googleapis.com/oauth2/v4/token is the older address of the same token endpoint.
    { key: 'google_gmail.token_endpoint', default: () => 'https://oauth2.googleapis.com/token', base: false, hosts: () => ['oauth2.googleapis.com', 'www.googleapis.com'] },
  ],
  endpoints: (values) => ({ authorize: values['google_gmail.auth_endpoint']!, token: values['google_gmail.token_endpoint']! }),
  cloudAware: false,
  scopes: () => ['openid', 'email', 'https://mail.google.com/'],
  // Google's refresh request takes no scope: the token keeps what was granted (web-server guide, "Refreshing").
  refreshScopes: () => null,
  authorizeParams: { access_type: 'offline', prompt: 'consent' },
  smtp: () => ({ host: 'smtp.gmail.com', port: 587, encryption: 'starttls' }),
  imap: () => ({ host: 'imap.gmail.com', port: 993, encryption: 'ssl' }),
  mailHosts: () => ['smtp.gmail.com', 'imap.gmail.com'],
  maxPerMinute: null,
  needsTenant: false,
  explain: explainGoogle,
  // Google has no tenant-wide consent here, and its device flow does not allow the Gmail scope
  // (https://developers.google.com/identity/protocols/oauth2/limited-input-device#allowedscopes).
  adminConsentBase: null,
  offersDeviceCode: false,
  refusedHint: (protocol, mailbox) =>
    `Check that the account that consented is ${mailbox}${protocol === 'imap' ? ' and that IMAP is on in its Gmail settings (Forwarding and POP/IMAP)' : ''}; then Reconnect.`,
}

export const providers: Record<ProviderId, ProviderSpec> = { outlook, outlook_app: outlookApp, gmail }

/** The providers a person connects through a callback (`/{route}/confirm`). */
export const consentProviders = (): ProviderSpec[] => Object.values(providers).filter((p) => p.route !== null)

export const providerFor = (authentication: string): ProviderSpec | undefined =>
  (providers as Record<string, ProviderSpec>)[authentication]

/** The settings blocks of app credentials, one provider each (app-only Outlook shares Outlook's app). */
export const credentialProviders = (): ProviderSpec[] =>
  Object.values(providers).filter((p, i, all) => all.findIndex((q) => q.settingsPrefix === p.settingsPrefix) === i)

/** The provider endpoint parameter of this key, if a provider reads one. */
export const endpointParam = (key: string): EndpointParam | undefined =>
  Object.values(providers)
    .flatMap((p) => p.endpointParams)
    .find((e) => e.key === key)
