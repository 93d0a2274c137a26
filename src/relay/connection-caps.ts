/**
 * How many relay connections are open, in all and per client address, across the relay's listeners: without a
 * cap anyone allowed to connect can hold thousands of idle connections. smtp-server's maxClients counts one
 * listener's connections and no addresses, so the relay counts for itself (Postfix's
 * smtpd_client_connection_count_limit is the same idea, 50 by default).
 */
export class ConnectionCaps {
  readonly #perAddress = new Map<string, number>()
  /** Session ids of the admitted connections: a refused one is released by nobody. */
  readonly #admitted = new Set<string>()

  constructor(private readonly max: { total: number; perAddress: number }) {}

  get open(): number {
    return this.#admitted.size
  }

  /** Count this connection in, or say which cap it would pass. */
  admit(sessionId: string, address: string): 'total' | 'address' | undefined {
    if (this.#admitted.size >= this.max.total) return 'total'
    const n = this.#perAddress.get(address) ?? 0
    if (n >= this.max.perAddress) return 'address'
    this.#perAddress.set(address, n + 1)
    this.#admitted.add(sessionId)
    return undefined
  }

  release(sessionId: string, address: string): void {
    if (!this.#admitted.delete(sessionId)) return
    const n = (this.#perAddress.get(address) ?? 1) - 1
    if (n > 0) this.#perAddress.set(address, n)
    else this.#perAddress.delete(address)
  }
}
