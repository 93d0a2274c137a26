import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from 'typebox'
import { ApiToken, ApiTokenInput, CreatedApiToken, type ApiTokenService } from '../access/api-tokens.ts'

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })

/** `/api/v1/api-tokens` (design.md §10): one token per application, its value shown once, revoked by DELETE. */
export const apiTokenRoutes: FastifyPluginAsync<{ tokens: ApiTokenService }> = async (app, { tokens }) => {
  const tags = ['api tokens']
  app.get('/api-tokens', { schema: { tags, summary: 'The API tokens in use (never their values)', response: { 200: Type.Object({ items: Type.Array(ApiToken), next_cursor: Type.Null() }) } } }, async () => ({
    items: await tokens.list(),
    next_cursor: null,
  }))
  app.post<{ Body: ApiTokenInput }>(
    '/api-tokens',
    { schema: { tags, summary: 'Create a token for one application: its value is in this answer only', body: ApiTokenInput, response: { 201: CreatedApiToken } } },
    async (req, reply) => {
      const created = await tokens.create(req.body)
      req.auditNote = { name: created.name, scopes: [...created.scopes], ...(created.server_ids ? { server_ids: created.server_ids } : {}) }
      return reply.code(201).header('cache-control', 'no-store').send(created)
    },
  )
  app.delete<{ Params: Static<typeof IdParams> }>('/api-tokens/:id', { schema: { tags, summary: 'Revoke a token: it gets 401 from its next request on', params: IdParams } }, async (req, reply) => {
    req.auditNote = { name: (await tokens.revoke(req.params.id)).name }
    return reply.code(204).send()
  })
}
