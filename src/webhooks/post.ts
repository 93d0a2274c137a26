import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { LookupFunction } from 'node:net'
import { resolveReachable, type TrustedHosts } from '../host-policy.ts'

/** What an answer's body may hold before the connection is cut: nobody reads it, it only has to be drained. */
const MAX_ANSWER_BYTES = 64 * 1024

/**
 * POST a delivery and return the answer's status, nothing more: the address the name resolves to is checked
 * now (design.md §10: not this machine unless trusted, never link-local or cloud metadata) and the connection goes
 * to that very address, so DNS cannot answer differently between the check and the connect; redirects are not
 * followed; the body is never kept (an internal service's answer cannot reach the delivery log) and the whole
 * exchange ends at `timeoutMs`.
 */
export async function postDelivery(url: string, headers: Record<string, string>, body: string, o: { timeoutMs: number; trusted: TrustedHosts }): Promise<number> {
  const u = new URL(url)
  const signal = AbortSignal.timeout(o.timeoutMs)
  const checked = await resolveReachable(u.hostname, o.trusted)
  const lookup: LookupFunction = (_host, opts, cb) => {
    if ((opts as { all?: boolean }).all) (cb as unknown as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [checked])
    else cb(null, checked.address, checked.family)
  }
  const request = u.protocol === 'https:' ? httpsRequest : httpRequest
  return new Promise<number>((resolve, reject) => {
    const req = request(u, { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, lookup, signal }, (res) => {
      resolve(res.statusCode ?? 0)
      // Drained unread so the connection is kept for the next delivery; an answer larger than this is cut off.
      let bytes = 0
      res.on('data', (c: Buffer) => {
        if ((bytes += c.length) > MAX_ANSWER_BYTES) res.destroy()
      })
      res.on('error', () => {})
    })
    req.on('error', (e) => reject(signal.aborted ? new Error(`no answer within ${o.timeoutMs / 1000} s`) : e))
    req.end(body)
  })
}
