import { explainAadsts, type ProviderErrorBody, type Explanation } from './aadsts.ts'

export type ProviderId = 'outlook'

export interface MailHost {
  host: string
  port: number
  encryption: 'starttls' | 'ssl'
}

/**
 * A provider is data run by one shared flow (oauth/protocol.ts, oauth/connect.ts, oauth/credentials.ts):
 * where to send the admin, which scopes to ask for, which mail hosts to default to, how to read its errors.
 */
export interface ProviderSpec {
  id: ProviderId
  /** As the seed guide writes it: "Outlook Credentials", "Connect your Outlook account", "Outlook Token Valid". */
  label: string
  /** Callback `/{route}/confirm`, and the prefix of its settings (`{route}_client_id`). */
  route: string
  endpointParam: string
  authorizeUrl(endpoint: string): string
  tokenUrl(endpoint: string): string
  scopes: readonly string[]
  /** Extra authorize parameters (Google needs access_type=offline and prompt=consent). */
  authorizeParams: Readonly<Record<string, string>>
  /** Microsoft rotates refresh tokens on every use; the new one must be saved (AADSTS700082 otherwise). */
  rotatesRefreshToken: boolean
  smtp: MailHost
  imap: MailHost
  explain(body: ProviderErrorBody): Explanation
}

export const SMTP_SEND = 'https://outlook.office.com/SMTP.Send'
export const IMAP_ALL = 'https://outlook.office.com/IMAP.AccessAsUser.All'

/**
 * One consent per mailbox asks for both mail scopes, so an outgoing and an incoming server share it; `openid email`
 * tell us who consented; `offline_access` gets the refresh token.
 * @see https://learn.microsoft.com/en-us/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth
 */
export const outlook = {
  id: 'outlook',
  label: 'Outlook',
  route: 'microsoft_outlook',
  endpointParam: 'microsoft_outlook.endpoint',
  authorizeUrl: (endpoint) => new URL('authorize', endpoint).toString(),
  tokenUrl: (endpoint) => new URL('token', endpoint).toString(),
  scopes: ['openid', 'email', 'offline_access', SMTP_SEND, IMAP_ALL],
  authorizeParams: { response_mode: 'query' },
  rotatesRefreshToken: true,
  smtp: { host: 'smtp.office365.com', port: 587, encryption: 'starttls' },
  imap: { host: 'outlook.office365.com', port: 993, encryption: 'ssl' },
  explain: explainAadsts,
} as const satisfies ProviderSpec

export const providers: Record<ProviderId, ProviderSpec> = { outlook }

export const providerFor = (authentication: string): ProviderSpec | undefined =>
  (providers as Record<string, ProviderSpec>)[authentication]
