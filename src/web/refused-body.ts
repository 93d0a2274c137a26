/**
 * A body refused for its size: say what is too large and what the limit is, and let the client read that.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-15.5.14 (413 Content Too Large)
 * @see https://www.rfc-editor.org/rfc/rfc9112#section-9.6 (closing in stages so the client reads the answer)
 */
import { Socket } from 'node:net'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { tooLargeMessage } from '../outgoing/mail-size.ts'

/** How a route names what it refuses: `{ what: 'mail', limit: 35 MB, setting: 'MAILBRIDGE_MAX_MAIL_BYTES' }`. */
export interface TooLarge {
  what: string
  limit: number
  setting?: string
}

declare module 'fastify' {
  interface FastifyContextConfig {
    tooLarge?: TooLarge
  }
}

/** What the rest of a refused body may still take, in bytes and time, before the connection is cut. */
const DRAIN_BYTES = 128 * 1024 * 1024
const DRAIN_MS = 10_000

/** "The mail is 80 MB; the limit is 35 MB (MAILBRIDGE_MAX_MAIL_BYTES)." — a chunked body's size is not known. */
export function refusedBodyMessage(req: FastifyRequest): string {
  const declared = Number(req.headers['content-length'])
  const t = req.routeOptions.config.tooLarge ?? { what: 'request body', limit: req.routeOptions.bodyLimit ?? 0 }
  return tooLargeMessage(t.what, Number.isFinite(declared) && declared > 0 ? declared : undefined, t.limit, t.setting)
}

/**
 * Read and drop the rest of a refused body after the answer, then close. fastify answers as soon as the
 * declared or counted size passes the limit, with `Connection: close`, and Node destroys the socket once that
 * answer is written: a client still sending (Python's urllib writes the whole body before it reads a byte) then
 * gets a reset and reports a broken pipe instead of the 413. So the socket is only half-closed, the body is read
 * and dropped until the client finishes, and the socket is destroyed then, or after DRAIN_BYTES or DRAIN_MS.
 */
export function drainThenClose(req: FastifyRequest, reply: FastifyReply): void {
  const socket = req.raw.socket
  // app.inject()'s requests have no real socket, and nothing to drain.
  if (!(socket instanceof Socket)) return
  // Node's own 'finish' listener runs first and calls socket.destroySoon(): end now, destroy once ended.
  reply.raw.once('finish', () => {
    socket.removeListener('finish', socket.destroy)
    const start = socket.bytesRead
    const started = Date.now()
    // Counted from bytesRead: the HTTP parser reads the socket natively, and a 'data' listener would stall it.
    const check = setInterval(() => {
      if (socket.bytesRead - start > DRAIN_BYTES || Date.now() - started > DRAIN_MS) socket.destroy()
    }, 100).unref()
    socket.once('end', () => socket.destroy())
    socket.once('close', () => clearInterval(check))
    // What is left of the body is dropped as it arrives (an unread request would stop the parser reading).
    req.raw.resume()
  })
}
