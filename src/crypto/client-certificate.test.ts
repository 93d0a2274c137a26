import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto'
import { test } from 'node:test'
import { CertificateError, publicCertificatePem, readClientCertificate } from './client-certificate.ts'
import { createSelfSigned } from './self-signed.ts'

const made = createSelfSigned({ subject: 'Mailbridge test', days: 365 })

test('createSelfSigned(): a certificate X509Certificate parses and verifies, for its own key, valid for the days asked', async () => {
  const s = await made
  const cert = new X509Certificate(s.certificatePem)
  assert.equal(cert.subject, 'CN=Mailbridge test')
  assert.equal(cert.issuer, 'CN=Mailbridge test')
  assert.ok(cert.verify(cert.publicKey), 'self-signed: its own key verifies it')
  const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000
  // From an hour back (a clock a little behind), for the days asked.
  assert.equal(Math.round((days - 1 / 24) * 24), 365 * 24, `valid ${days} days`)
  assert.equal(cert.ca, false)
  assert.equal(cert.publicKey.asymmetricKeyDetails?.modulusLength, 2048)
})

test('createSelfSigned(): openssl reads the same certificate (when openssl is installed)', async (t) => {
  const s = await made
  let text: string
  try {
    text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: s.certificatePem, encoding: 'utf8' })
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return t.skip('no openssl on this machine')
    throw e
  }
  assert.match(text, /Version: 3/)
  assert.match(text, /Signature Algorithm: sha256WithRSAEncryption/)
  assert.match(text, /TLS Web Client Authentication/)
})

test('readClientCertificate(): the certificate and key in either order give the thumbprints Azure and the assertion use', async () => {
  const s = await made
  const der = new X509Certificate(s.certificatePem).raw
  for (const pem of [s.certificatePem + s.privateKeyPem, s.privateKeyPem + '\n' + s.certificatePem]) {
    const c = readClientCertificate(pem)
    assert.equal(c.thumbprint, createHash('sha1').update(der).digest('hex').toUpperCase())
    assert.equal(c.x5tS256, createHash('sha256').update(der).digest('base64url'))
    assert.equal(c.x5t, createHash('sha1').update(der).digest('base64url'))
    assert.equal(c.expiresAt.getTime(), s.notAfter.getTime() - (s.notAfter.getTime() % 1000))
  }
  assert.equal(publicCertificatePem(s.certificatePem + s.privateKeyPem).trim(), s.certificatePem.trim())
  assert.ok(!publicCertificatePem(s.certificatePem + s.privateKeyPem).includes('PRIVATE KEY'))
})

test('readClientCertificate(): refusals say what to fix', async () => {
  const s = await made
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
  const encrypted = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }) as string
  const cases: Array<[string, RegExp]> = [
    [s.privateKeyPem, /No certificate found/],
    [s.certificatePem, /No private key found/],
    [s.certificatePem + other, /does not belong to the certificate/],
    [s.certificatePem + ec, /Microsoft signs in apps with RSA/],
    [s.certificatePem + encrypted, /encrypted/],
    ['not a pem at all', /No certificate found/],
  ]
  for (const [pem, message] of cases) assert.throws(() => readClientCertificate(pem), (e: unknown) => e instanceof CertificateError && message.test((e as Error).message))
  const expired = await createSelfSigned({ subject: 'old', days: 1, now: new Date(Date.now() - 3 * 86_400_000) })
  assert.throws(() => readClientCertificate(expired.certificatePem + expired.privateKeyPem), /expired on/)
})
