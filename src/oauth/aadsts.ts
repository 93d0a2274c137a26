/** An OAuth error response (RFC 6749 §5.2), with Microsoft's extra `error_codes`. */
export interface ProviderErrorBody {
  error: string
  error_description?: string
  error_codes?: number[]
}

export interface Explanation {
  /** What the admin should do, in plain words. */
  action: string
  /** The refresh token is dead: only a new consent (Connect again) helps. */
  reconnect: boolean
}

const ADMIN_MUST_CONSENT =
  'Your tenant lets only administrators consent to apps. An administrator of the tenant must click "Grant admin consent" on the server\'s page (or Grant admin consent under the app\'s API permissions in Azure); then connect again.'

/** Microsoft asked for an administrator's consent (the server's page offers "Grant admin consent"). */
export const ADMIN_CONSENT_AADSTS: readonly number[] = [65001, 90094, 90095]

/**
 * AADSTS codes a mail integration meets, mapped to what the admin must do. Branch on these numbers only to
 * explain; Microsoft says the description text may change.
 * @see https://learn.microsoft.com/entra/identity-platform/reference-error-codes
 */
const ACTIONS: Record<number, Explanation> = {
  7000222: { action: 'The Client Secret has expired. Create a new secret in Azure (Certificates & secrets) and paste its Value in Settings → Outlook Credentials.', reconnect: false },
  7000215: { action: 'The Client Secret is wrong. Paste the secret\'s Value, not its Secret ID, in Settings → Outlook Credentials.', reconnect: false },
  7000218: { action: 'No Client Secret was sent. Enter it in Settings → Outlook Credentials.', reconnect: false },
  700016: { action: 'Azure does not know this Client ID in this tenant. Check the Application (client) ID, and the tenant in microsoft_outlook.endpoint.', reconnect: false },
  700011: { action: 'Azure does not know this Client ID in this tenant. Check the Application (client) ID, and the tenant in microsoft_outlook.endpoint.', reconnect: false },
  50011: { action: 'The redirect URI does not match the app registration. Register exactly the redirect URI shown in Settings, under Authentication → Web.', reconnect: false },
  50194: { action: 'The app is single-tenant: set microsoft_outlook.endpoint to https://login.microsoftonline.com/<tenant id>/oauth2/v2.0/.', reconnect: false },
  65001: { action: 'Consent is missing. Click Connect and accept the permissions; where the tenant lets only administrators consent, an administrator must first click "Grant admin consent" on the server\'s page.', reconnect: true },
  65004: { action: 'The permissions were declined. Click Connect and choose Yes.', reconnect: true },
  90094: { action: ADMIN_MUST_CONSENT, reconnect: true },
  90095: { action: ADMIN_MUST_CONSENT, reconnect: true },
  54005: { action: 'This sign-in code was already used. Click Connect again.', reconnect: true },
  70008: { action: 'The sign-in has expired. Click Reconnect.', reconnect: true },
  700082: { action: 'The refresh token expired after 90 days without use. Click Reconnect.', reconnect: true },
  50173: { action: 'The sign-in was revoked (a password change or "revoke sessions"). Click Reconnect.', reconnect: true },
  50076: { action: 'Multi-factor authentication or Conditional Access requires a new sign-in. Click Reconnect.', reconnect: true },
  50079: { action: 'Multi-factor authentication or Conditional Access requires a new sign-in. Click Reconnect.', reconnect: true },
  53003: { action: 'A Conditional Access policy blocked the sign-in. An administrator must allow this app.', reconnect: true },
  70043: { action: 'A Conditional Access sign-in frequency policy expired the sign-in. Click Reconnect.', reconnect: true },
  50020: { action: 'This account is not in the app\'s tenant. Sign in with an account of that tenant, or make the app multitenant.', reconnect: true },
  50034: { action: 'This account does not exist in the tenant. Sign in with the mailbox\'s own account.', reconnect: true },
  501481: { action: 'The PKCE verifier did not match. Click Connect again.', reconnect: true },
  // The device code flow (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code#expected-errors).
  70016: { action: 'Nobody has entered the code yet: Mailbridge keeps asking until the code expires.', reconnect: false },
  70018: { action: 'Microsoft does not know this device code. Click "Sign in with a code" again.', reconnect: true },
  70019: { action: 'The code expired before anyone signed in with it (codes last 15 minutes). Click "Sign in with a code" again.', reconnect: true },
  700025: { action: 'The app registration is a public client (a "Mobile and desktop applications" platform only), so Azure refuses the Client Secret. Add the Web platform with the redirect URI shown in Settings, or use a registration that has one.', reconnect: false },
  9001023: { action: 'This grant needs a tenant id instead of common in microsoft_outlook.endpoint.', reconnect: false },
}

/** The AADSTS codes explained above (README: Troubleshooting lists each). */
export const EXPLAINED_AADSTS: readonly number[] = Object.keys(ACTIONS).map(Number)

export function aadstsCode(body: ProviderErrorBody): number | undefined {
  if (body.error_codes?.length) return body.error_codes[0]
  const m = /AADSTS(\d+)/.exec(body.error_description ?? '')
  return m ? Number(m[1]) : undefined
}

export function explainAadsts(body: ProviderErrorBody): Explanation {
  const code = aadstsCode(body)
  const known = code === undefined ? undefined : ACTIONS[code]
  if (known) return known
  // RFC 6749 §5.2: invalid_grant means the grant itself is unusable, whatever the code.
  if (body.error === 'invalid_grant' || body.error === 'interaction_required') {
    return { action: 'Microsoft no longer accepts this sign-in. Click Reconnect.', reconnect: true }
  }
  if (body.error === 'invalid_client' || body.error === 'unauthorized_client') {
    return { action: 'Check the Client ID and Client Secret in Settings → Outlook Credentials.', reconnect: false }
  }
  return { action: 'Try again; if it persists, check the app registration in Azure.', reconnect: false }
}
