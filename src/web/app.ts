import formbody from '@fastify/formbody'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify'
import { MailbridgeError } from '../errors.ts'
import { confirmRoutes } from '../oauth/routes.ts'
import { consentProviders } from '../oauth/providers.ts'
import { mailRoutes } from '../outgoing/mail-routes.ts'
import { outgoingServerRoutes } from '../outgoing/routes.ts'
import { relayUserRoutes } from '../relay/routes.ts'
import { settingsRoutes } from '../settings/routes.ts'
import { incomingServerRoutes, messageRoutes } from '../incoming/routes.ts'
import { webhookRoutes } from '../webhooks/routes.ts'
import { guardApi } from './api-access.ts'
import { apiTokenRoutes } from './api-token-routes.ts'
import { auditRoutes } from './audit-routes.ts'
import { auditTrail } from './audit-trail.ts'
import { EMPTY_JSON_BODY, frameworkErrors, installErrorHandler } from './errors.ts'
import { refuseNonIntegerQuery, refuseNul, refuseUnexpectedBody } from './input-checks.ts'
import { metricsRoutes } from './metrics.ts'
import { logRequests } from './request-log.ts'
import { docsCsp, registerSecurityHeaders } from './security-headers.ts'
import { adminUi, type AdminUiOptions } from './ui/index.ts'
import type { WebServices } from './web-services.ts'
import { baseHostRedirect } from './ui/base-host.ts'
import { adminSession, sessionOf } from './ui/session.ts'

export interface AppOptions {
  /** A body limit for the JSON API, in bytes (mail with attachments needs room). */
  bodyLimit?: number
  /** The sandbox pre-fills new Outlook servers with its SMTP peer's host and port, and its Dovecot's. */
  smtpDefaults?: AdminUiOptions['smtpDefaults']
  imapDefaults?: AdminUiOptions['imapDefaults']
}

/** JSON.parse, telling the client where its JSON breaks; prototype keys are refused as fastify's parser does. */
function parseJson(_req: FastifyRequest, body: string | Buffer, done: (e: Error | null, v?: unknown) => void): void {
  if (body.length === 0) return done(new MailbridgeError('bad_request', { message: EMPTY_JSON_BODY }))
  try {
    done(null, JSON.parse(body.toString(), (k, v) => {
      if (k === '__proto__' || (k === 'constructor' && v && typeof v === 'object' && 'prototype' in v)) throw new SyntaxError(`the key "${k}" is not allowed`)
      return v
    }))
  } catch (e) {
    done(new MailbridgeError('bad_request', { message: `The body is not valid JSON: ${(e as Error).message}.` }))
  }
}

/** Assemble the HTTP app from feature plugins; `listen` is main.ts's job, tests use `inject`. */
export async function buildApp(s: WebServices, o: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: s.log.child({ part: 'http' }) as FastifyBaseLogger,
    // One line per request instead of fastify's two: request-log.ts.
    disableRequestLogging: true,
    bodyLimit: o.bodyLimit ?? 1024 * 1024,
    // Only the listed proxies' X-Forwarded-For is believed: anyone else could name any address and dodge the sign-in throttle.
    trustProxy: s.config.trustProxy.length ? s.config.trustProxy : false,
    // A parameter key may be 200 characters long: let it reach its schema, which says so.
    routerOptions: { maxParamLength: 256 },
    frameworkErrors,
    ajv: { customOptions: { removeAdditional: false, allErrors: false, coerceTypes: 'array' } },
  })
  installErrorHandler(app)
  logRequests(app)
  await registerSecurityHeaders(app, s.config.baseUrl)
  await app.register(formbody)
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Mailbridge API', version: '1', description: 'Send and receive Microsoft 365 / Outlook mail through OAuth-connected mailboxes.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  })
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true, transformStaticCSP: docsCsp(s.config.baseUrl) })

  // The front door (design.md §10): a person who opens the bare URL lands on the admin UI, or its sign-in.
  app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/admin', 302))
  app.get('/healthz', { schema: { hide: true } }, async () => {
    await s.settings.parameter('healthz.probe')
    return { status: 'ok' }
  })
  await app.register(metricsRoutes, { services: s })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  // Before every route that can change something: the API's, the admin UI's, the OAuth callback.
  auditTrail(app, s.auditLog)
  const redirectUris = Object.fromEntries(consentProviders().map((p) => [p.id, s.connect.redirectUri(p)]))
  await app.register(
    async (api) => {
      // Token, scope and server limits, once for every route (api-access.ts).
      guardApi(api, { tokens: s.apiTokens, owners: { mail: async (id) => (await s.mails.get(id)).server_id, messages: async (id) => (await s.messages.get(id)).server_id } })
      // The API takes JSON only, typed as its schemas say: a number where a string belongs (or null where a
      // boolean does) is refused, not coerced into "42" or false. Only query strings and path ids are converted.
      api.removeContentTypeParser(['text/plain', 'application/x-www-form-urlencoded', 'application/json'])
      api.addContentTypeParser('application/json', { parseAs: 'string' }, parseJson)
      api.setValidatorCompiler(TypeBoxValidatorCompiler)
      api.addHook('preValidation', refuseNul)
      api.addHook('preValidation', refuseUnexpectedBody)
      api.addHook('preValidation', refuseNonIntegerQuery)
      await api.register(settingsRoutes, { settings: s.settings, credentials: s.credentials, redirectUris })
      await api.register(outgoingServerRoutes, { servers: s.outgoingServers })
      await api.register(mailRoutes, { mails: s.mails, maxBytes: s.config.maxMailBytes })
      await api.register(relayUserRoutes, { relayUsers: s.relayUsers })
      await api.register(incomingServerRoutes, { servers: s.incomingServers, fetcher: s.fetcher })
      await api.register(messageRoutes, { messages: s.messages })
      await api.register(webhookRoutes, { webhooks: s.webhooks })
      await api.register(apiTokenRoutes, { tokens: s.apiTokens })
      await api.register(auditRoutes, { audit: s.auditLog })
    },
    { prefix: '/api/v1' },
  )
  // The session hook runs before the OAuth callback too: a Connect started in the UI is bound to its session.
  await app.register(adminSession, { sessions: s.adminSessions })
  await app.register(confirmRoutes, { connect: s.connect, sessionOf, adminUrl: new URL('/admin', s.config.baseUrl).toString() })
  await app.register(baseHostRedirect, { baseUrl: s.config.baseUrl })
  await app.register(adminUi, { services: s, smtpDefaults: o.smtpDefaults, imapDefaults: o.imapDefaults })
  return app
}
