import type { Explanation, ProviderErrorBody } from './aadsts.ts'

/**
 * Google's token endpoint errors (RFC 6749 §5.2 codes with Google's texts), mapped to what the admin must do.
 * Google sends no numeric codes, so the `error` field alone decides.
 * @see https://developers.google.com/identity/protocols/oauth2/web-server#exchange-errors
 * @see https://developers.google.com/identity/protocols/oauth2#expiration (why a refresh token stops working)
 */
export function explainGoogle(body: ProviderErrorBody): Explanation {
  switch (body.error) {
    case 'invalid_grant':
      // "Token has been expired or revoked.": the user revoked access, changed a password (with Gmail scopes),
      // or the token went six months unused; or a code was reused.
      return { action: 'Google no longer accepts this sign-in (revoked, password changed, or unused for six months). Click Reconnect.', reconnect: true }
    case 'invalid_client':
      return { action: 'Check the Client ID and Client Secret in Settings → Gmail Credentials (Google Cloud console → APIs & Services → Credentials).', reconnect: false }
    case 'unauthorized_client':
      return { action: 'This OAuth client may not use this grant. Use a client of type "Web application" in Google Cloud console.', reconnect: false }
    case 'redirect_uri_mismatch':
      return { action: 'Register exactly the redirect URI shown in Settings → Gmail Credentials under "Authorized redirect URIs" of the OAuth client.', reconnect: false }
    case 'access_denied':
    case 'admin_policy_enforced':
      return { action: 'The account or its Google Workspace admin refused access. Click Connect and choose Allow, or ask the admin to trust the app.', reconnect: true }
    default:
      return { action: 'Try again; if it persists, check the OAuth client in Google Cloud console.', reconnect: false }
  }
}
