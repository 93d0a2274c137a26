/** How a queue spaces its retries: the mail queue and the webhook deliveries each take their own base and cap. */
export interface BackoffPolicy {
  retryBaseMs: number
  retryMaxMs: number
}

/** Exponential backoff with ±20 % jitter, so a fleet of retries does not arrive together. */
export function backoffMs(attempts: number, q: BackoffPolicy, random = Math.random): number {
  const base = Math.min(q.retryMaxMs, q.retryBaseMs * 2 ** Math.max(0, attempts - 1))
  return Math.round(base * (0.8 + 0.4 * random()))
}
