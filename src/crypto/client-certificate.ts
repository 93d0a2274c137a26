import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto'

/**
 * An app's certificate credential as Mailbridge uses it: the private key that signs client assertions and the
 * certificate Azure knows it by. The key never leaves the process; the rest is public.
 */
export interface ClientCertificate {
  key: KeyObject
  /** base64url SHA-256 of the certificate's DER: the assertion's `x5t#S256` header. */
  x5tS256: string
  /** base64url SHA-1 of the DER: the older `x5t` header, still read by Microsoft. */
  x5t: string
  /** The SHA-1 thumbprint in hex, as the Azure portal lists it under Certificates & secrets → Certificates. */
  thumbprint: string
  subject: string
  notBefore: Date
  expiresAt: Date
}

/** A PEM bundle that cannot serve as a certificate credential; the message says what to fix. */
export class CertificateError extends Error {
  override name = 'CertificateError'
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g

/**
 * Read a PEM certificate and its private key, pasted together (either order; a chain may follow). The key must be
 * RSA (client assertions are signed PS256 or RS256) of at least 2048 bits, unencrypted, and belong to one of the
 * certificates.
 * @see https://learn.microsoft.com/entra/identity-platform/certificate-credentials
 */
export function readClientCertificate(pem: string): ClientCertificate {
  const blocks = [...pem.matchAll(BLOCK)].map((m) => ({ label: m[1]!, text: m[0] }))
  if (blocks.some((b) => b.label === 'ENCRYPTED PRIVATE KEY' || /Proc-Type: 4,ENCRYPTED/.test(b.text))) {
    throw new CertificateError('The private key is encrypted: give it without a passphrase (openssl pkey -in key.pem -out key-plain.pem). Mailbridge seals it at rest.')
  }
  const keyBlock = blocks.find((b) => /PRIVATE KEY$/.test(b.label))
  const certBlocks = blocks.filter((b) => b.label === 'CERTIFICATE')
  if (!certBlocks.length) throw new CertificateError('No certificate found: paste the PEM certificate (-----BEGIN CERTIFICATE-----) and its private key together.')
  if (!keyBlock) throw new CertificateError('No private key found: paste the private key (-----BEGIN PRIVATE KEY-----) after the certificate. Azure keeps only the certificate; the key stays with Mailbridge.')
  let key: KeyObject
  try {
    key = createPrivateKey(keyBlock.text)
  } catch (e) {
    throw new CertificateError(`The private key could not be read (${(e as Error).message}).`)
  }
  if (key.asymmetricKeyType !== 'rsa') throw new CertificateError(`The key is ${key.asymmetricKeyType?.toUpperCase() ?? 'of an unknown type'}: Microsoft signs in apps with RSA certificates. Generate an RSA key of 2048 bits or more.`)
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
  if (bits < 2048) throw new CertificateError(`The RSA key has ${bits} bits: use 2048 or more.`)
  let cert: X509Certificate | undefined
  for (const b of certBlocks) {
    let c: X509Certificate
    try {
      c = new X509Certificate(b.text)
    } catch (e) {
      throw new CertificateError(`A certificate could not be read (${(e as Error).message}).`)
    }
    if (c.checkPrivateKey(key)) {
      cert = c
      break
    }
  }
  if (!cert) throw new CertificateError('The private key does not belong to the certificate: paste the key that was made with this certificate.')
  const expiresAt = new Date(cert.validTo)
  if (expiresAt.getTime() <= Date.now()) throw new CertificateError(`The certificate expired on ${expiresAt.toISOString().slice(0, 10)}: generate a new one and upload it to Azure.`)
  const der = cert.raw
  const sha1 = createHash('sha1').update(der).digest()
  return {
    key,
    x5tS256: createHash('sha256').update(der).digest('base64url'),
    x5t: sha1.toString('base64url'),
    thumbprint: sha1.toString('hex').toUpperCase(),
    subject: cert.subject,
    notBefore: new Date(cert.validFrom),
    expiresAt,
  }
}

/** The public certificate alone (for Azure, or a download): the key is dropped. */
export function publicCertificatePem(pem: string): string {
  const c = readClientCertificate(pem)
  const cert = [...pem.matchAll(BLOCK)].map((m) => m[0]).find((t) => t.startsWith('-----BEGIN CERTIFICATE-----') && new X509Certificate(t).checkPrivateKey(c.key))!
  return `${cert}\n`
}
