import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'
import { Secret } from './secret.ts'

const VERSION = 'v1'

/** First 8 hex digits of SHA-256(key): names the key in each sealed value, so rotation can find old ones. */
export const keyId = (key: Buffer): string => createHash('sha256').update(key).digest('hex').slice(0, 8)

/**
 * AES-256-GCM for secrets at rest. A sealed value is `v1:<keyId>:<base64 iv|tag|ciphertext>`; the context
 * (for example `credentials.refresh_token`) is bound as additional data, so a value copied into another column
 * does not open.
 */
export class SecretBox {
  readonly #keys: Map<string, Buffer>
  readonly #current: { id: string; key: Buffer }

  /** @param keys the current key first, then older keys still accepted for opening (during rotation). */
  constructor(keys: Buffer[]) {
    if (keys.length === 0 || keys.some((k) => k.length !== 32)) throw new Error('SecretBox needs 32-byte keys')
    this.#keys = new Map(keys.map((k) => [keyId(k), k]))
    this.#current = { id: keyId(keys[0]!), key: keys[0]! }
  }

  get currentKeyId(): string {
    return this.#current.id
  }

  seal(value: Secret, context: string): string {
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', this.#current.key, iv)
    cipher.setAAD(Buffer.from(context))
    const body = Buffer.concat([cipher.update(value.reveal(), 'utf8'), cipher.final()])
    return `${VERSION}:${this.#current.id}:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64')}`
  }

  open(sealed: string, context: string): Secret {
    const [version, id, payload] = sealed.split(':')
    if (version !== VERSION || !id || !payload) throw new Error(`not a sealed ${context} value`)
    const key = this.#keys.get(id)
    if (!key) throw new Error(`${context} is sealed with key ${id}, which this node does not have`)
    const raw = Buffer.from(payload, 'base64')
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12))
    decipher.setAAD(Buffer.from(context))
    decipher.setAuthTag(raw.subarray(12, 28))
    return new Secret(Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8'))
  }

  sealOrNull(value: Secret | null | undefined, context: string): string | null {
    return value ? this.seal(value, context) : null
  }

  openOrNull(sealed: string | null | undefined, context: string): Secret | null {
    return sealed ? this.open(sealed, context) : null
  }
}
