import { createHmac, timingSafeEqual } from 'node:crypto'
import type { Secret } from '../crypto/secret.ts'

/** The header every delivery carries: `t=<unix seconds>,v1=<hex HMAC-SHA256>`. */
export const SIGNATURE_HEADER = 'mailbridge-signature'

/**
 * HMAC-SHA256 (RFC 2104) over `${timestamp}.${body}`: the timestamp is signed too, so a receiver can refuse
 * replays older than a few minutes. The same scheme as Stripe's `Stripe-Signature`, which receivers know.
 */
export function sign(secret: Secret, timestamp: number, body: string): string {
  const mac = createHmac('sha256', secret.reveal()).update(`${timestamp}.${body}`).digest('hex')
  return `t=${timestamp},v1=${mac}`
}

/** What a receiver does (and what the tests do): recompute and compare in constant time. */
export function verify(secret: Secret, header: string | undefined, body: string, toleranceS = 300, nowS = Math.floor(Date.now() / 1000)): boolean {
  const parts = Object.fromEntries((header ?? '').split(',').map((kv) => kv.split('=') as [string, string]))
  const t = Number(parts.t)
  if (!Number.isInteger(t) || !parts.v1 || Math.abs(nowS - t) > toleranceS) return false
  const expected = Buffer.from(sign(secret, t, body).split('v1=')[1]!, 'hex')
  const given = Buffer.from(parts.v1, 'hex')
  return given.length === expected.length && timingSafeEqual(given, expected)
}
