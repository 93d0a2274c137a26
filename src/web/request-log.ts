import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

/** Probes a monitor calls every few seconds: logged only at debug while they answer, or they drown the rest. */
const PROBES = new Set(['/healthz', '/metrics'])

/**
 * One log line per HTTP request, written when it is answered (fastify's own logging writes two: "incoming
 * request" and "request completed"). The `req` field goes through log.ts's serializer, which masks secrets in the
 * query string and names the client (behind MAILBRIDGE_TRUST_PROXY, the forwarded one).
 */
export function logRequests(app: FastifyInstance): void {
  const line = (req: FastifyRequest, reply: FastifyReply, msg: string) => {
    const fields = { req, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }
    if (PROBES.has(req.url) && reply.statusCode < 400) req.log.debug(fields, msg)
    else req.log.info(fields, msg)
  }
  app.addHook('onResponse', async (req, reply) => line(req, reply, 'request'))
  // The client went away before the answer: onResponse never runs, yet the request happened.
  app.addHook('onRequestAbort', async (req) => req.log.info({ req }, 'request aborted by the client'))
}
