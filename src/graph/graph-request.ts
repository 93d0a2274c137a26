/**
 * One request to Microsoft Graph, and its failure as data: Graph's status, code and message, the Retry-After it
 * asked for, and which mailbox and step it was about. No queue knowledge; the callers decide what a failure means
 * (verdict.ts). Tokens go only in the Authorization header and never into an error.
 * @see https://learn.microsoft.com/graph/errors (status codes; the error resource type)
 * @see https://learn.microsoft.com/graph/throttling (429, 503 and 504 with Retry-After)
 */
import type { Secret } from '../crypto/secret.ts'

/** Where Graph calls go, and as whom. */
export interface GraphTarget {
  /** microsoft_graph.endpoint: `https://graph.microsoft.com/` or a national cloud's */
  endpoint: string
  token: Secret
  /** the mailbox address; also what errors name */
  mailbox: string
  /** delegated tokens use `/me`; app-only tokens `/users/{mailbox}` (an app has no "me") */
  delegated: boolean
}

export interface GraphRequestOptions {
  method?: string
  body?: string | Buffer
  contentType?: string
  headers?: Record<string, string>
  /** upload URLs are pre-authenticated: no Authorization header (outlook-large-attachments, step 2) */
  anonymous?: boolean
  /** what the request was for, in error messages: "sendMail", "delta" */
  step: string
  timeoutMs?: number
  retry?: ThrottleRetry
}

/**
 * How long a throttled request (429, 503, 504) may wait here before it is tried again: "wait the number of seconds
 * specified in the Retry-After header and retry", with a growing backoff when there is none (throttling). A longer
 * wait is not spent holding a worker: the error goes up with `retryAfterMs` and the queue reschedules.
 */
export interface ThrottleRetry {
  maxWaitMs: number
  attempts: number
}
export const DEFAULT_RETRY: ThrottleRetry = { maxWaitMs: 5_000, attempts: 3 }
const THROTTLED = new Set([429, 503, 504])

/** A failed Graph request: `status` 0 when no answer came (connection refused, reset, timeout, TLS). */
export class GraphRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly graphMessage: string,
    readonly mailbox: string,
    readonly step: string,
    readonly host: string,
    readonly retryAfterMs?: number,
    readonly requestId?: string,
    options?: ErrorOptions,
  ) {
    super(status
      ? `Microsoft Graph (${host}) answered ${status} ${code} to ${step} for ${mailbox}: ${graphMessage}`
      : `Microsoft Graph (${host}) did not answer ${step} for ${mailbox}: ${graphMessage}`, options)
    this.name = 'GraphRequestError'
  }
}

const DEFAULT_TIMEOUT_MS = 120_000

/** `{endpoint}v1.0/me` or `{endpoint}v1.0/users/{mailbox}` (user-sendmail, HTTP request). */
export function mailboxUrl(t: GraphTarget): string {
  const base = t.endpoint.endsWith('/') ? t.endpoint : `${t.endpoint}/`
  return `${base}v1.0/${t.delegated ? 'me' : `users/${encodeURIComponent(t.mailbox)}`}`
}

/** Send one request; answer the Response when it is 2xx, else throw GraphRequestError with Graph's own words. */
export async function graphRequest(t: GraphTarget, url: string, o: GraphRequestOptions): Promise<Response> {
  const retry = o.retry ?? DEFAULT_RETRY
  for (let attempt = 1; ; attempt++) {
    try {
      return await requestOnce(t, url, o)
    } catch (e) {
      if (!(e instanceof GraphRequestError) || !THROTTLED.has(e.status) || attempt >= retry.attempts) throw e
      const wait = e.retryAfterMs ?? 1000 * 2 ** (attempt - 1)
      if (wait > retry.maxWaitMs) throw e
      await new Promise((r) => setTimeout(r, wait))
    }
  }
}

async function requestOnce(t: GraphTarget, url: string, o: GraphRequestOptions): Promise<Response> {
  const host = hostOf(url)
  const headers: Record<string, string> = { ...o.headers }
  if (!o.anonymous) headers.authorization = `Bearer ${t.token.reveal()}`
  if (o.contentType) headers['content-type'] = o.contentType
  let res: Response
  try {
    // A Buffer is a Uint8Array, a body fetch takes; only its ArrayBufferLike type parameter differs.
    res = await fetch(url, { method: o.method ?? 'GET', headers, body: o.body as BodyInit | undefined, signal: AbortSignal.timeout(o.timeoutMs ?? DEFAULT_TIMEOUT_MS) })
  } catch (e) {
    const cause = e as Error & { cause?: { code?: string; message?: string } }
    const said = cause.name === 'TimeoutError' ? `no answer within ${Math.round((o.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000)} s` : (cause.cause?.code ?? cause.cause?.message ?? cause.message)
    throw new GraphRequestError(0, 'unreachable', said, t.mailbox, o.step, host, undefined, undefined, { cause: e })
  }
  if (res.ok) return res
  const text = await res.text().catch(() => '')
  let code = `HTTP ${res.status}`
  let message = text.slice(0, 300) || res.statusText
  try {
    const err = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error
    if (typeof err?.code === 'string') code = err.code
    if (typeof err?.message === 'string') message = err.message
  } catch { /* not Graph's JSON: keep the start of the body */ }
  throw new GraphRequestError(res.status, code, message, t.mailbox, o.step, host, retryAfterMs(res.headers.get('retry-after')), res.headers.get('request-id') ?? undefined)
}

/** Retry-After is delay-seconds or an HTTP-date (RFC 9110 §10.2.3). */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

function hostOf(url: string) {
  try {
    return new URL(url).host
  } catch {
    return url
  }
}
