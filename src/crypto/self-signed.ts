import { generateKeyPair, randomBytes, sign } from 'node:crypto'
import { promisify } from 'node:util'

/*
 * A self-signed X.509 certificate (RFC 5280 §4.1) written as DER by hand: node:crypto reads certificates
 * (X509Certificate) but does not make them. The structure an app credential needs is small (no chain, no names
 * beyond the subject's CN), so a few DER writers cost less than a dependency (@peculiar/x509 brings eleven
 * packages; node-forge a pure-JS RSA) or an `openssl` binary that minimal images lack. X509Certificate parses and
 * verifies every certificate this makes (self-signed.test.ts), and so does `openssl x509`.
 */

/** One DER element (X.690 §8.1): tag, definite length, content. */
function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content)
  const n = body.length
  const length = n < 0x80 ? Buffer.from([n]) : (() => {
    const bytes: number[] = []
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256)
    return Buffer.from([0x80 | bytes.length, ...bytes])
  })()
  return Buffer.concat([Buffer.from([tag]), length, body])
}

const seq = (...c: Buffer[]) => der(0x30, ...c)
const set = (...c: Buffer[]) => der(0x31, ...c)
const NULL = Buffer.from([0x05, 0x00])

/** An OBJECT IDENTIFIER (X.690 §8.19): the first two arcs in one byte, the rest base-128. */
function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number) as [number, number, ...number[]]
  const bytes = [40 * a + b]
  for (const arc of rest) {
    const chunk = [arc & 0x7f]
    for (let v = arc >>> 7; v > 0; v >>>= 7) chunk.unshift(0x80 | (v & 0x7f))
    bytes.push(...chunk)
  }
  return der(0x06, Buffer.from(bytes))
}

/** A positive INTEGER from unsigned bytes (a leading 0x00 when the high bit is set, X.690 §8.3). */
const uint = (bytes: Buffer) => der(0x02, bytes[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes)

/** UTCTime until 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). */
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) // YYYYMMDDHHMMSS
  return d.getUTCFullYear() < 2050 ? der(0x17, Buffer.from(`${iso.slice(2)}Z`)) : der(0x18, Buffer.from(`${iso}Z`))
}

const commonName = (cn: string) => seq(set(seq(oid('2.5.4.3'), der(0x0c, Buffer.from(cn, 'utf8')))))
const extension = (id: string, critical: boolean, value: Buffer) => seq(oid(id), ...(critical ? [der(0x01, Buffer.from([0xff]))] : []), der(0x04, value))
const SHA256_WITH_RSA = seq(oid('1.2.840.113549.1.1.11'), NULL)

const pem = (label: string, body: Buffer) => `-----BEGIN ${label}-----\n${body.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END ${label}-----\n`

export interface SelfSigned {
  /** The public certificate: what is uploaded to Azure (Certificates & secrets → Certificates). */
  certificatePem: string
  /** PKCS #8, unencrypted: it is sealed at rest like every secret, never written elsewhere by Mailbridge. */
  privateKeyPem: string
  notAfter: Date
}

/**
 * An RSA key and a self-signed certificate for it, valid from now (an hour back, for clocks a little behind) for
 * `days`. Azure accepts a self-signed certificate as an application credential; Microsoft's own guide makes 2048-bit
 * keys. The key is made off the event loop: it takes a second or more on a busy machine.
 * @see https://learn.microsoft.com/entra/identity-platform/howto-create-self-signed-certificate
 */
export async function createSelfSigned(o: { subject: string; days: number; bits?: number; now?: Date }): Promise<SelfSigned> {
  const { publicKey, privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: o.bits ?? 2048 })
  const from = new Date((o.now ?? new Date()).getTime() - 3600_000)
  const notAfter = new Date(from.getTime() + 3600_000 + o.days * 86_400_000)
  const name = commonName(o.subject)
  const serial = randomBytes(16)
  serial[0]! &= 0x7f
  const tbs = seq(
    der(0xa0, der(0x02, Buffer.from([2]))), // version v3
    uint(serial),
    SHA256_WITH_RSA,
    name,
    seq(time(from), time(notAfter)),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    der(0xa3, seq(
      extension('2.5.29.19', true, seq()), // basicConstraints: not a CA
      extension('2.5.29.15', true, der(0x03, Buffer.from([0x07, 0x80]))), // keyUsage: digitalSignature
      extension('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.2'))), // extKeyUsage: clientAuth
    )),
  )
  const signature = sign('sha256', tbs, privateKey)
  const cert = seq(tbs, SHA256_WITH_RSA, der(0x03, Buffer.from([0]), signature))
  return { certificatePem: pem('CERTIFICATE', cert), privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, notAfter }
}
