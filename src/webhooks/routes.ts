import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from 'typebox'
import { Cursor, Limit } from '../paging.ts'
import { Delivery, Webhook, WebhookInput } from './model.ts'
import type { WebhookService } from './service.ts'

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })
type IdParams = Static<typeof IdParams>
const PageQuery = Type.Object(
  { limit: Limit, cursor: Cursor },
  { additionalProperties: false },
)

export const webhookRoutes: FastifyPluginAsync<{ webhooks: WebhookService }> = async (app, { webhooks }) => {
  const tags = ['webhooks']
  app.get('/webhooks', { schema: { tags, response: { 200: Type.Object({ items: Type.Array(Webhook), next_cursor: Type.Null() }) } } }, async () => ({
    items: await webhooks.list(),
    next_cursor: null,
  }))
  app.post<{ Body: WebhookInput }>(
    '/webhooks',
    { schema: { tags, summary: 'Subscribe a URL to events; the answer shows the signing secret once', body: WebhookInput, response: { 201: Webhook } } },
    async (req, reply) => reply.code(201).send(await webhooks.create(req.body)),
  )
  app.get<{ Params: IdParams }>('/webhooks/:id', { schema: { tags, params: IdParams, response: { 200: Webhook } } }, async (req) => webhooks.get(req.params.id))
  app.patch<{ Params: IdParams; Body: WebhookInput }>(
    '/webhooks/:id',
    { schema: { tags, params: IdParams, body: WebhookInput, response: { 200: Webhook } } },
    async (req) => webhooks.update(req.params.id, req.body),
  )
  app.delete<{ Params: IdParams }>('/webhooks/:id', { schema: { tags, params: IdParams } }, async (req, reply) => {
    await webhooks.delete(req.params.id)
    return reply.code(204).send()
  })
  app.get<{ Params: IdParams; Querystring: Static<typeof PageQuery> }>(
    '/webhooks/:id/deliveries',
    {
      schema: {
        tags,
        summary: 'The delivery log, newest first',
        params: IdParams,
        querystring: PageQuery,
        response: { 200: Type.Object({ items: Type.Array(Delivery), next_cursor: Type.Union([Type.String(), Type.Null()]) }) },
      },
    },
    async (req) => webhooks.deliveries(req.params.id, req.query),
  )
}
