import fp from 'fastify-plugin'

/** Set on the hop to the base URL's host; a request that still arrives on another host with it is served. */
const HOP_COOKIE = 'mb_host_hop'

/**
 * Admin pages live on MAILBRIDGE_BASE_URL's host: the session cookie belongs to one host name, and Microsoft
 * sends the browser back to the base URL after consent. An admin who opened the UI on another name of the same
 * node (127.0.0.1 where the base URL says localhost) would sign in there, click Connect, and come back on the
 * base host without the session the OAuth state is bound to, a refusal that reads like a forgery. So GET
 * requests for /admin pages on another host are sent to the same path on the base URL before anyone signs in
 * (wrapped with fastify-plugin so the hook reaches the admin UI, registered beside it).
 *
 * A proxy that rewrites Host (nginx's default `proxy_set_header Host $proxy_host`) would make that a loop; the
 * short-lived cookie, set on the host the browser really uses, breaks it: a request that comes back with it and
 * still the wrong Host is served, and the log says how to fix the proxy.
 */
function hostnameOf(header: string | undefined): string | undefined {
  if (!header) return undefined
  try {
    return new URL(`http://${header}`).hostname
  } catch {
    return undefined // not a host name: nothing to redirect to
  }
}

export const baseHostRedirect = fp<{ baseUrl: URL }>(async (app, { baseUrl }) => {
  let warned = false
  app.addHook('onRequest', async (req, reply) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return
    // Only a browser's page load carries the cookie that matters; scripts and API clients are left alone.
    if (req.headers['sec-fetch-mode'] !== 'navigate' && !req.headers.accept?.includes('text/html')) return
    if (req.url !== '/admin' && !req.url.startsWith('/admin/') && !req.url.startsWith('/admin?')) return
    // Cookies are kept per host name, whatever the port, so the name alone decides.
    const host = hostnameOf(req.headers.host)
    if (host === undefined || host === baseUrl.hostname) return
    if (req.cookies[HOP_COOKIE]) {
      if (!warned) {
        warned = true
        req.log.warn({ host, base_url: baseUrl.origin }, `admin pages are requested with Host ${host}, not ${baseUrl.hostname} of MAILBRIDGE_BASE_URL: if a reverse proxy sits in front, make it pass the Host the browser used (nginx: proxy_set_header Host $host), or set MAILBRIDGE_BASE_URL to the URL people open`)
      }
      return
    }
    reply.setCookie(HOP_COOKIE, '1', { path: '/admin', httpOnly: true, sameSite: 'lax', maxAge: 60 })
    return reply.redirect(new URL(req.url, baseUrl).toString(), 302)
  })
}, { name: 'base-host-redirect' })
