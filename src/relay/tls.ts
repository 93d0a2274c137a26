import { execFileSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { ConfigError, type RelayConfig } from '../config.ts'

export interface RelayTls {
  key: Buffer
  cert: Buffer
  /** Where the certificate came from, for the start-up line. */
  source: string
}

/**
 * The relay's certificate: the operator's (MAILBRIDGE_RELAY_TLS_CERT / _KEY), or a self-signed one generated
 * once into the data folder. A self-signed certificate still encrypts the password on the wire; legacy devices
 * rarely verify certificates, and those that do can be given the operator's own.
 * openssl is used because node:crypto cannot write an X.509 certificate and the project takes no new dependency
 * for it.
 */
export function loadRelayTls(relay: Pick<RelayConfig, 'tlsCert' | 'tlsKey'>, dataDir: string): RelayTls {
  if (relay.tlsCert || relay.tlsKey) {
    if (!relay.tlsCert || !relay.tlsKey) throw new ConfigError('Set both MAILBRIDGE_RELAY_TLS_CERT and MAILBRIDGE_RELAY_TLS_KEY (PEM files), or neither to use a generated self-signed certificate.')
    const read = (name: string, path: string) => {
      try {
        return readFileSync(path)
      } catch (e) {
        throw new ConfigError(`${name} (${path}) cannot be read: ${(e as Error).message}`)
      }
    }
    return { cert: read('MAILBRIDGE_RELAY_TLS_CERT', relay.tlsCert), key: read('MAILBRIDGE_RELAY_TLS_KEY', relay.tlsKey), source: relay.tlsCert }
  }
  const dir = join(dataDir, 'relay-tls')
  const certPath = join(dir, 'cert.pem')
  const keyPath = join(dir, 'key.pem')
  if (!existsSync(certPath) || !existsSync(keyPath)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    const name = hostname()
    try {
      // `-nodes`: the relay must start unattended; the key file is 0600 in a 0700 folder instead.
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '3650',
        '-keyout', keyPath, '-out', certPath,
        '-subj', `/CN=${name}`,
        '-addext', `subjectAltName=DNS:${name},DNS:localhost,IP:127.0.0.1`,
      ], { stdio: 'pipe' })
      chmodSync(keyPath, 0o600)
    } catch (e) {
      const missing = (e as NodeJS.ErrnoException).code === 'ENOENT'
      throw new ConfigError(
        missing
          ? 'The SMTP relay needs a TLS certificate: install openssl (apt-get install openssl) so Mailbridge can generate a self-signed one, or set MAILBRIDGE_RELAY_TLS_CERT and MAILBRIDGE_RELAY_TLS_KEY.'
          : `Generating the relay's self-signed certificate with openssl failed: ${String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim()}`,
      )
    }
  }
  return { cert: readFileSync(certPath), key: readFileSync(keyPath), source: `${certPath} (self-signed, generated)` }
}
