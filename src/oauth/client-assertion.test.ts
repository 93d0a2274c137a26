import assert from 'node:assert/strict'
import { constants, verify, X509Certificate } from 'node:crypto'
import { test } from 'node:test'
import { readClientCertificate } from '../crypto/client-certificate.ts'
import { Secret } from '../crypto/secret.ts'
import { createSelfSigned } from '../crypto/self-signed.ts'
import { clientAssertion, clientAuthentication } from './protocol.ts'

const CLIENT_ID = '6731de76-14a6-49ae-97bc-6eba6914391e'
const TOKEN_URL = 'https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token'
const made = createSelfSigned({ subject: 'Mailbridge', days: 30 })

const decode = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>

test('clientAssertion(): PS256 with x5t#S256 and x5t, the claims Microsoft lists, verifiable with the certificate', async () => {
  const s = await made
  const cert = readClientCertificate(s.certificatePem + s.privateKeyPem)
  const at = Date.UTC(2027, 0, 1, 12)
  const jwt = clientAssertion(CLIENT_ID, cert, TOKEN_URL, at).reveal()
  const [h, c, sig] = jwt.split('.') as [string, string, string]
  assert.deepEqual(decode(h), { alg: 'PS256', typ: 'JWT', 'x5t#S256': cert.x5tS256, x5t: cert.x5t })
  const claims = decode(c)
  assert.equal(claims.aud, TOKEN_URL)
  assert.equal(claims.iss, CLIENT_ID)
  assert.equal(claims.sub, CLIENT_ID)
  assert.match(String(claims.jti), /^[0-9a-f-]{36}$/)
  assert.equal(claims.nbf, at / 1000)
  assert.equal(claims.exp, at / 1000 + 600, 'short: 10 minutes after nbf')
  const publicKey = new X509Certificate(s.certificatePem).publicKey
  const ok = verify('sha256', Buffer.from(`${h}.${c}`), { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, Buffer.from(sig, 'base64url'))
  assert.ok(ok, 'RSASSA-PSS SHA-256 signature by the certificate\'s key')
  assert.notEqual(decode(clientAssertion(CLIENT_ID, cert, TOKEN_URL, at).reveal().split('.')[1]!).jti, claims.jti, 'a fresh jti each time')
})

test('clientAuthentication(): a certificate sends an assertion and no secret; a secret alone sends client_secret', async () => {
  const s = await made
  const certificate = readClientCertificate(s.certificatePem + s.privateKeyPem)
  const withCert = clientAuthentication({ clientId: CLIENT_ID, clientSecret: null, certificate }, TOKEN_URL)
  assert.deepEqual(Object.keys(withCert).sort(), ['client_assertion', 'client_assertion_type'])
  assert.equal(withCert.client_assertion_type, 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer')
  assert.deepEqual(clientAuthentication({ clientId: CLIENT_ID, clientSecret: new Secret('s3cret') }, TOKEN_URL), { client_secret: 's3cret' })
})
