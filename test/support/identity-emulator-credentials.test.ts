/**
 * Contract tests of the identity emulator's app credentials, against Microsoft's pages (not Mailbridge's code):
 * - https://learn.microsoft.com/entra/identity-platform/certificate-credentials (assertion header, claims, PSS)
 * - https://learn.microsoft.com/entra/identity-platform/reference-error-codes (7000215, 7000222, 700027, 50027, 50013)
 * - https://learn.microsoft.com/azure/developer/java/sdk/troubleshooting-authentication-service-principal (700021, 700023, 700027)
 */
import assert from 'node:assert/strict'
import { constants, createHash, randomUUID, sign, X509Certificate, type KeyObject, createPrivateKey } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import { createSelfSigned } from '../../src/crypto/self-signed.ts'
import { startIdentityEmulator, type Emulator } from './identity-emulator.ts'

const TENANT = '9a8b7c6d-5e4f-4321-8765-0123456789ab'
const CLIENT = 'app-cert-1'
const SCOPE = 'https://outlook.office365.com/.default'
const made = Promise.all([createSelfSigned({ subject: 'uploaded', days: 30 }), createSelfSigned({ subject: 'not uploaded', days: 30 })])

async function setup(t: TestContext, o: { upload?: boolean } = {}) {
  const [cert, other] = await made
  const em = await startIdentityEmulator()
  t.after(() => em.close())
  em.registerApp({ clientId: CLIENT, clientSecret: 'first~secret', redirectUris: ['http://localhost/cb'], tenant: TENANT })
  if (o.upload !== false) em.uploadCertificate(CLIENT, cert.certificatePem)
  return { em, cert, other, key: createPrivateKey(cert.privateKeyPem), tokenUrl: new URL('token', em.endpoint(TENANT)).toString() }
}

/** A client assertion as certificate-credentials describes it, written here from the page. */
function assertion(o: { pem: string; key: KeyObject; aud: string; alg?: 'PS256' | 'RS256'; iss?: string; nbf?: number; exp?: number; jti?: string; tamper?: boolean }) {
  const der = new X509Certificate(o.pem).raw
  const now = Math.floor(Date.now() / 1000)
  const b64 = (x: object) => Buffer.from(JSON.stringify(x)).toString('base64url')
  const alg = o.alg ?? 'PS256'
  const h = b64({ alg, typ: 'JWT', 'x5t#S256': createHash('sha256').update(der).digest('base64url') })
  const c = b64({ aud: o.aud, iss: o.iss ?? CLIENT, sub: o.iss ?? CLIENT, jti: o.jti ?? randomUUID(), nbf: o.nbf ?? now, exp: o.exp ?? now + 600, iat: now })
  const pss = { key: o.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }
  const sig = sign('sha256', Buffer.from(`${h}.${c}`), alg === 'PS256' ? pss : o.key)
  if (o.tamper) sig[0]! ^= 0xff
  return `${h}.${c}.${sig.toString('base64url')}`
}

async function token(em: Emulator, params: Record<string, string>) {
  const res = await fetch(new URL('token', em.endpoint(TENANT)), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(params) })
  const body = (await res.json()) as { error?: string; error_codes?: number[]; access_token?: string; error_description?: string }
  return { status: res.status, error: body.error, code: body.error_codes?.[0], body }
}

const grant = (client_assertion: string, extra: Record<string, string> = {}) => ({
  grant_type: 'client_credentials', client_id: CLIENT, scope: SCOPE,
  client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion, ...extra,
})

test('certificate credentials: an assertion signed PS256 (or RS256) by an uploaded certificate gets a token, and no secret is needed', async (t) => {
  const { em, cert, key, tokenUrl } = await setup(t)
  for (const alg of ['PS256', 'RS256'] as const) {
    const r = await token(em, grant(assertion({ pem: cert.certificatePem, key, aud: tokenUrl, alg })))
    assert.equal(r.status, 200, JSON.stringify(r.body))
    assert.equal(typeof r.body.access_token, 'string')
  }
  assert.deepEqual(em.tokenRequests.map((q) => q.clientAuth), ['client_assertion', 'client_assertion'], 'the emulator records how the client authenticated')
})

test('certificate credentials: Microsoft\'s refusals, each with its documented AADSTS code', async (t) => {
  const { em, cert, other, key, tokenUrl } = await setup(t)
  const now = Math.floor(Date.now() / 1000)
  const ok = { pem: cert.certificatePem, key, aud: tokenUrl }
  const cases: Array<[string, Record<string, string>, number, string]> = [
    ['a certificate never uploaded', grant(assertion({ pem: other.certificatePem, key: createPrivateKey(other.privateKeyPem), aud: tokenUrl })), 700027, 'invalid_client'],
    ['a signature that does not verify', grant(assertion({ ...ok, tamper: true })), 700027, 'invalid_client'],
    ['iss/sub not the client id', grant(assertion({ ...ok, iss: 'someone-else' })), 700021, 'invalid_client'],
    ['aud another endpoint', grant(assertion({ ...ok, aud: 'https://login.microsoftonline.com/other/oauth2/v2.0/token' })), 700023, 'invalid_client'],
    ['expired an hour ago', grant(assertion({ ...ok, nbf: now - 4200, exp: now - 3600 })), 700024, 'invalid_client'],
    ['not valid before an hour from now', grant(assertion({ ...ok, nbf: now + 3600, exp: now + 4200 })), 700024, 'invalid_client'],
    ['the wrong client_assertion_type', { ...grant(assertion(ok)), client_assertion_type: 'jwt' }, 50027, 'invalid_request'],
    ['not a JWT', grant('not.a-jwt'), 50027, 'invalid_request'],
  ]
  for (const [what, params, code, error] of cases) {
    const r = await token(em, params)
    assert.deepEqual([r.error, r.code], [error, code], `${what}: ${r.body.error_description}`)
    assert.equal(r.body.access_token, undefined)
  }
})

test('certificate credentials: a jti is good once (a replayed assertion is refused)', async (t) => {
  const { em, cert, key, tokenUrl } = await setup(t)
  const jwt = assertion({ pem: cert.certificatePem, key, aud: tokenUrl })
  assert.equal((await token(em, grant(jwt))).status, 200)
  const again = await token(em, grant(jwt))
  assert.deepEqual([again.error, again.code], ['invalid_client', 50013])
})

test('certificate credentials: an uploaded certificate past its end date is refused with AADSTS700027 "The key used is expired"', async (t) => {
  const em = await startIdentityEmulator()
  t.after(() => em.close())
  const old = await createSelfSigned({ subject: 'old', days: 1, now: new Date(Date.now() - 3 * 86_400_000) })
  em.registerApp({ clientId: CLIENT, clientSecret: 'x', redirectUris: [], tenant: TENANT })
  em.uploadCertificate(CLIENT, old.certificatePem)
  const r = await token(em, grant(assertion({ pem: old.certificatePem, key: createPrivateKey(old.privateKeyPem), aud: new URL('token', em.endpoint(TENANT)).toString() })))
  assert.deepEqual([r.error, r.code], ['invalid_client', 700027])
  assert.match(r.body.error_description ?? '', /The key used is expired/)
})

test('client secrets: an app has several, each with its expiry; an expired one gets AADSTS7000222, an unknown one AADSTS7000215', async (t) => {
  const { em } = await setup(t, { upload: false })
  em.addClientSecret(CLIENT, { value: 'second~secret', expiresAt: new Date(Date.now() + 86_400_000) })
  const withSecret = (client_secret: string) => token(em, { grant_type: 'client_credentials', client_id: CLIENT, scope: SCOPE, client_secret })
  assert.equal((await withSecret('first~secret')).status, 200)
  assert.equal((await withSecret('second~secret')).status, 200)
  em.expireClientSecret(CLIENT, 'first~secret')
  const expired = await withSecret('first~secret')
  assert.deepEqual([expired.status, expired.error, expired.code], [401, 'invalid_client', 7000222])
  assert.equal((await withSecret('second~secret')).status, 200, 'the other secret still works')
  const unknown = await withSecret('never~issued')
  assert.deepEqual([unknown.status, unknown.error, unknown.code], [401, 'invalid_client', 7000215])
  assert.deepEqual(em.tokenRequests.map((q) => q.clientAuth), Array(5).fill('client_secret'))
})
