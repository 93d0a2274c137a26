/**
 * Microsoft's national clouds: each has its own login host, its own Exchange Online resource (the host the mail
 * scopes name) and its own mail hosts. They change together; an app registered in one cloud does not exist in
 * another.
 * @see https://learn.microsoft.com/entra/identity-platform/authentication-national-cloud (login hosts)
 * @see https://learn.microsoft.com/microsoft-365/enterprise/microsoft-365-u-s-government-gcc-high-endpoints (outlook.office365.us)
 * @see https://learn.microsoft.com/microsoft-365/enterprise/urls-and-ip-address-ranges-21vianet (partner.outlook.cn)
 * @see https://learn.microsoft.com/graph/deployments#microsoft-graph-and-graph-explorer-service-root-endpoints (Graph per cloud)
 */
export type Cloud = 'global' | 'usgov' | 'china'

export interface CloudSpec {
  /** As the settings page names it. */
  label: string
  /** The identity platform's host, without a tenant. */
  login: string
  /** The resource delegated mail scopes name (`{resource}/SMTP.Send`). */
  resource: string
  /** The resource of the app-only `.default` scope. */
  appResource: string
  smtpHost: string
  imapHost: string
  /** The hosts `microsoft_outlook.endpoint` may name: the login host, and its documented aliases. */
  loginHosts: readonly string[]
  /** Every Exchange Online host a token of this cloud may be sent to (SMTP and IMAP); nothing else gets one. */
  mailHosts: readonly string[]
  /** Microsoft Graph's service root in this cloud: the app id URI its scopes name, and (with a slash) its endpoint. */
  graph: string
}

export const clouds: Record<Cloud, CloudSpec> = {
  global: {
    label: 'Global (Microsoft 365)',
    login: 'https://login.microsoftonline.com',
    resource: 'https://outlook.office.com',
    appResource: 'https://outlook.office365.com',
    smtpHost: 'smtp.office365.com',
    imapHost: 'outlook.office365.com',
    loginHosts: ['login.microsoftonline.com'],
    // smtp-mail.outlook.com / imap-mail.outlook.com serve Outlook.com accounts; smtp-hve.office365.com is High Volume Email.
    mailHosts: ['smtp.office365.com', 'outlook.office365.com', 'smtp-mail.outlook.com', 'imap-mail.outlook.com', 'smtp-hve.office365.com'],
    graph: 'https://graph.microsoft.com',
  },
  // GCC High and DoD tenants sign in at login.microsoftonline.us and reach Exchange at outlook.office365.us.
  usgov: {
    label: 'US Government (GCC High, DoD)',
    login: 'https://login.microsoftonline.us',
    resource: 'https://outlook.office365.us',
    appResource: 'https://outlook.office365.us',
    smtpHost: 'smtp.office365.us',
    imapHost: 'outlook.office365.us',
    loginHosts: ['login.microsoftonline.us'],
    mailHosts: ['smtp.office365.us', 'outlook.office365.us'],
    // GCC High's Graph; DoD tenants use dod-graph.microsoft.us (set microsoft_graph.endpoint).
    graph: 'https://graph.microsoft.us',
  },
  // Microsoft 365 operated by 21Vianet: login.partner.microsoftonline.cn (Microsoft's national-cloud page; EmailEngine
  // uses login.chinacloudapi.cn, an older alias) and Exchange at partner.outlook.cn.
  china: {
    label: 'China (operated by 21Vianet)',
    login: 'https://login.partner.microsoftonline.cn',
    resource: 'https://partner.outlook.cn',
    appResource: 'https://partner.outlook.cn',
    smtpHost: 'smtp.partner.outlook.cn',
    imapHost: 'partner.outlook.cn',
    loginHosts: ['login.partner.microsoftonline.cn', 'login.chinacloudapi.cn'],
    mailHosts: ['smtp.partner.outlook.cn', 'partner.outlook.cn'],
    graph: 'https://microsoftgraph.chinacloudapi.cn',
  },
}

export const CLOUD_IDS = Object.keys(clouds) as Cloud[]

export const isCloud = (v: unknown): v is Cloud => typeof v === 'string' && v in clouds

/** The identity platform endpoint Mailbridge uses when `microsoft_outlook.endpoint` is not set. */
export const defaultMicrosoftEndpoint = (cloud: Cloud): string => `${clouds[cloud].login}/common/oauth2/v2.0/`

/** Microsoft Graph's endpoint when `microsoft_graph.endpoint` is not set: the cloud's service root. */
export const defaultGraphEndpoint = (cloud: Cloud): string => `${clouds[cloud].graph}/`

/** The setting holding Microsoft's national cloud (General Settings → Microsoft cloud). */
export const CLOUD_SETTING = 'microsoft_outlook_cloud'

/** The cloud a stored setting names; 'global' while none (or none known) is stored. */
export const cloudOf = (stored: string | undefined): Cloud => (isCloud(stored) ? stored : 'global')

/** The hosts `microsoft_graph.endpoint` may name: the cloud's Graph, and the US Government DoD Graph beside GCC High's. */
export const graphHosts = (cloud: Cloud): string[] => [new URL(clouds[cloud].graph).host, ...(cloud === 'usgov' ? ['dod-graph.microsoft.us'] : [])]
