/**
 * App credentials as the Microsoft identity platform checks them at the token endpoint, for the identity emulator:
 * several client secrets per app, each with its own expiry, and uploaded certificates whose keys sign client
 * assertions (RFC 7523; OpenID Connect Core §9 private_key_jwt). It follows Microsoft's documents:
 * - CERT_CREDS  https://learn.microsoft.com/entra/identity-platform/certificate-credentials (header, claims, PSS)
 * - ERRORS      https://learn.microsoft.com/entra/identity-platform/reference-error-codes
 * - SDK_ERRORS  https://learn.microsoft.com/azure/developer/java/sdk/troubleshooting-authentication-service-principal
 *   (AADSTS700021, 700023, 700027 for assertion credentials)
 * Where Microsoft documents no code for a case, the comment says which field report the choice follows.
 */
import { constants, createHash, verify, X509Certificate } from 'node:crypto'

export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

/** A refusal as the emulator answers it: OAuth `error`, AADSTS number, text, HTTP status. */
export interface CredentialRefusal {
  error: string
  code: number
  text: string
  status: number
}

/** One client secret of an app (Certificates & secrets → Client secrets): Azure keeps several, each with an expiry. */
export interface AppSecret {
  value: string
  expiresAt?: Date
}

/** One certificate uploaded to an app (Certificates & secrets → Certificates). */
export interface AppCertificate {
  cert: X509Certificate
  x5tS256: string
  x5t: string
}

export function appCertificate(pem: string): AppCertificate {
  const cert = new X509Certificate(pem)
  return { cert, x5tS256: createHash('sha256').update(cert.raw).digest('base64url'), x5t: createHash('sha1').update(cert.raw).digest('base64url') }
}

const refuse = (code: number, text: string, error = 'invalid_client', status = 401): CredentialRefusal => ({ error, code, text, status })

/**
 * A client secret against the app's secrets: AADSTS7000218 none sent, 7000215 none matches, 7000222 the one that
 * matches has expired (ERRORS); invalid_client answers 401 (RFC 6749 §5.2).
 */
export function checkClientSecret(clientId: string, secrets: readonly AppSecret[], presented: string | undefined, now: number, safeEqual: (a: string, b: string) => boolean): CredentialRefusal | undefined {
  if (!presented) return refuse(7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
  const match = secrets.find((s) => safeEqual(presented, s.value))
  if (!match) {
    return refuse(7000215, `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`)
  }
  if (match.expiresAt && match.expiresAt.getTime() <= now) {
    return refuse(7000222, `The provided client secret keys for app '${clientId}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds`)
  }
  return undefined
}

const CLOCK_SKEW_S = 300

/**
 * A client assertion against the app's certificates, checked as Microsoft does: the assertion type (RFC 7523 §2.2),
 * a JWT signed RS256 or PS256 by an uploaded certificate's key found by `x5t#S256` or `x5t` (CERT_CREDS; unknown or
 * expired key or bad signature AADSTS700027, SDK_ERRORS), `iss` and `sub` the client id (AADSTS700021), `aud` the
 * token endpoint (AADSTS700023), `nbf`/`exp` around now (AADSTS700024, "Client assertion is not within its valid
 * time range": field reports, e.g. Azure/aks-set-context#101), and a `jti` used once. `seen`: jti → its exp (ms).
 */
export function checkClientAssertion(o: {
  clientId: string
  certificates: readonly AppCertificate[]
  form: URLSearchParams
  /** The token endpoint URLs this request may name as `aud` (the one it was posted to). */
  audiences: readonly string[]
  now: number
  seen: Map<string, number>
}): CredentialRefusal | undefined {
  const type = o.form.get('client_assertion_type')
  if (type !== JWT_BEARER) {
    return refuse(50027, `Invalid JWT token. client_assertion_type must be '${JWT_BEARER}', was '${type ?? ''}'.`, 'invalid_request', 400)
  }
  const parts = (o.form.get('client_assertion') ?? '').split('.')
  const decode = (s: string | undefined) => {
    try {
      return JSON.parse(Buffer.from(s ?? '', 'base64url').toString('utf8')) as Record<string, unknown>
    } catch {
      return undefined
    }
  }
  const header = decode(parts[0])
  const claims = decode(parts[1])
  // AADSTS50027 InvalidJwtToken: "token format isn't proper" (ERRORS).
  if (parts.length !== 3 || !header || !claims) return refuse(50027, 'Invalid JWT token. The token is malformed.', 'invalid_request', 400)
  const alg = header.alg
  if (alg !== 'RS256' && alg !== 'PS256') return refuse(50027, `Invalid JWT token. Unsupported signing algorithm '${String(alg)}'.`, 'invalid_request', 400)
  const thumb = (header['x5t#S256'] ?? header.x5t) as string | undefined
  const cert = o.certificates.find((c) => c.x5tS256 === header['x5t#S256'] || c.x5t === header.x5t)
  const reason = (r: string) => refuse(700027, `Client assertion failed signature validation. [Reason - ${r}, Thumbprint of key used by client: '${thumb ?? ''}'] Trace ID: emulator`)
  if (!cert) return reason(`The key was not found.`)
  if (Date.parse(cert.cert.validTo) <= o.now) return reason('The key used is expired.')
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`)
  const signature = Buffer.from(parts[2]!, 'base64url')
  const key = cert.cert.publicKey
  // CERT_CREDS: "Use PSS padding" for PS256; RS256 is PKCS #1 v1.5 (RFC 7518 §3.3, §3.5).
  const valid = alg === 'PS256' ? verify('sha256', signed, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, signature) : verify('sha256', signed, key, signature)
  if (!valid) return reason('The provided signature value did not match the expected signature value.')
  if (claims.iss !== o.clientId || claims.sub !== o.clientId) return refuse(700021, "Client assertion application identifier doesn't match 'client_id' parameter.")
  if (typeof claims.aud !== 'string' || !o.audiences.includes(claims.aud)) {
    return refuse(700023, `Client assertion audience claim does not match Realm issuer. Review the documentation at https://aka.ms/certCreds. Audience: '${String(claims.aud)}'.`)
  }
  const nowS = Math.floor(o.now / 1000)
  const exp = Number(claims.exp)
  const nbf = claims.nbf === undefined ? -Infinity : Number(claims.nbf)
  if (!Number.isFinite(exp) || nowS > exp + CLOCK_SKEW_S || nowS + CLOCK_SKEW_S < nbf) {
    return refuse(700024, `Client assertion is not within its valid time range. Current time: ${new Date(o.now).toISOString()}, assertion valid from ${Number.isFinite(nbf) ? new Date(nbf * 1000).toISOString() : 'unset'}, expiry time of assertion ${Number.isFinite(exp) ? new Date(exp * 1000).toISOString() : 'unset'}.`)
  }
  const jti = claims.jti
  for (const [id, until] of o.seen) if (until < o.now) o.seen.delete(id)
  // A replayed jti: Microsoft documents no code; the emulator answers AADSTS50013 InvalidAssertion, ERRORS' code for
  // "Assertion is invalid because of various reasons" (RFC 7523 §3 item 7 lets the server refuse a reused jti).
  if (typeof jti !== 'string' || !jti) return refuse(50027, 'Invalid JWT token. The jti claim is missing.', 'invalid_request', 400)
  if (o.seen.has(jti)) return refuse(50013, 'Assertion is invalid: the jti was already used.')
  o.seen.set(jti, (exp + CLOCK_SKEW_S) * 1000)
  return undefined
}
