import { createHash } from 'node:crypto'
import helmet from '@fastify/helmet'
import type { FastifyInstance } from 'fastify'
import { SCRIPT, STYLE } from '../html.ts'

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`

/**
 * Security headers on every response (OWASP ASVS 4.0 V14.4), through @fastify/helmet. The admin UI's one
 * inline script and style are allowed by their hashes, nothing else runs. `form-action` is left out on
 * purpose: Connect posts a form that redirects to the identity platform, whose origin is a parameter, and
 * browsers apply `form-action` to that redirect. HSTS only when the public URL is https (TLS ends in front of
 * Mailbridge; a browser ignores HSTS over http anyway).
 * @see https://owasp.org/www-project-secure-headers/
 */
export async function registerSecurityHeaders(app: FastifyInstance, baseUrl: URL): Promise<void> {
  const https = baseUrl.protocol === 'https:'
  await app.register(helmet, {
    global: true,
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        'default-src': ["'none'"],
        'script-src': [sha256(SCRIPT)],
        'style-src': [sha256(STYLE)],
        'img-src': ["'self'", 'data:'],
        'connect-src': ["'self'"],
        'base-uri': ["'none'"],
        'frame-ancestors': ["'none'"],
        ...(https ? { 'upgrade-insecure-requests': [] } : {}),
      },
    },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    strictTransportSecurity: https ? { maxAge: 31_536_000, includeSubDomains: false } : false,
  })
  // API answers and admin pages name mailboxes, tokens' health and mail: no browser or proxy keeps a copy
  // (ASVS V8.2.1). Routes that may be cached (Swagger UI's static files) set their own header.
  app.addHook('onRequest', async (_req, reply) => {
    reply.header('cache-control', 'no-store')
  })
}

/**
 * /docs (Swagger UI) loads its scripts and styles from /docs/static and sets inline styles from its script: its
 * own CSP, tightened where it can be. Inline styles are allowed there only; scripts stay same-origin.
 */
export const docsCsp = (baseUrl: URL) => (header: string): string => {
  // No badge from validator.swagger.io: it would send the API's description to a third party.
  const tightened = header.replace("frame-ancestors 'self'", "frame-ancestors 'none'").replace(' validator.swagger.io', '')
    .replace("style-src 'self' https:", "style-src 'self' 'unsafe-inline'")
  return baseUrl.protocol === 'https:' ? tightened : tightened.replace(/\s*upgrade-insecure-requests;?/, '')
}
