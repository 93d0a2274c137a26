import type { FastifyPluginAsync } from 'fastify'
import { html, page } from '../html.ts'
import type { Services } from '../services.ts'

/** The page the OAuth callback lands on: the server and its token, nothing secret. */
export const serverPages: FastifyPluginAsync<{ services: Services }> = async (app, { services }) => {
  app.get<{ Params: { id: string } }>('/admin/outgoing-servers/:id', { schema: { hide: true } }, async (req, reply) => {
    const server = await services.outgoingServers.get(req.params.id)
    const tag = server.token.valid ? html`<span class="tag ok">${server.token.label}</span>` : html`<span class="tag bad">${server.token.label}</span>`
    const body = html`<section class="card"><h1>${server.name}</h1>
      <p>${tag}</p>
      <table><tr><th>Username</th><td>${server.username}</td></tr><tr><th>Host</th><td>${server.host}:${server.port} (${server.encryption})</td></tr>
      <tr><th>from_filter</th><td>${server.from_filter ?? ''}</td></tr></table></section>`
    return reply.type('text/html; charset=utf-8').send(page(server.name, body))
  })
}
