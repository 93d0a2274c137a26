const inspect = Symbol.for('nodejs.util.inspect.custom')

/**
 * A value that must never reach a log, a response or an error message: tokens, the client secret, the
 * authorization code, the PKCE verifier, the XOAUTH2 string. Every `reveal()` is a point for review.
 */
export class Secret {
  readonly #value: string
  constructor(value: string) {
    this.#value = value
  }
  reveal(): string {
    return this.#value
  }
  toJSON(): string {
    return '[redacted]'
  }
  toString(): string {
    return '[redacted]'
  }
  [inspect](): string {
    return 'Secret([redacted])'
  }
}
