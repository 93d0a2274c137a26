import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from 'typebox'
import { Cursor, Limit } from '../paging.ts'
import { attachmentDisposition } from './attachment-name.ts'
import type { Fetcher } from './fetcher.ts'
import type { MessageService } from './messages.ts'
import { FetchResult, IncomingServer, IncomingServerInput, Message } from './model.ts'
import type { IncomingServerService } from './service.ts'

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })
type IdParams = Static<typeof IdParams>
const TestResult = Type.Object({ ok: Type.Boolean(), message: Type.String() }, { additionalProperties: false })

export const incomingServerRoutes: FastifyPluginAsync<{ servers: IncomingServerService; fetcher: Fetcher }> = async (app, { servers, fetcher }) => {
  const tags = ['incoming servers']
  app.get('/incoming-servers', { schema: { tags, response: { 200: Type.Object({ items: Type.Array(IncomingServer), next_cursor: Type.Null() }) } } }, async () => ({
    items: await servers.list(),
    next_cursor: null,
  }))
  app.post<{ Body: IncomingServerInput }>(
    '/incoming-servers',
    { schema: { tags, body: IncomingServerInput, response: { 201: IncomingServer } } },
    async (req, reply) => reply.code(201).send(await servers.create(req.body)),
  )
  app.get<{ Params: IdParams }>('/incoming-servers/:id', { schema: { tags, params: IdParams, response: { 200: IncomingServer } } }, async (req) => servers.get(req.params.id))
  app.patch<{ Params: IdParams; Body: IncomingServerInput }>(
    '/incoming-servers/:id',
    { schema: { tags, params: IdParams, body: IncomingServerInput, response: { 200: IncomingServer } } },
    async (req) => servers.update(req.params.id, req.body),
  )
  app.delete<{ Params: IdParams }>('/incoming-servers/:id', { schema: { tags, params: IdParams } }, async (req, reply) => {
    await servers.delete(req.params.id)
    return reply.code(204).send()
  })
  app.post<{ Params: IdParams }>(
    '/incoming-servers/:id/connect',
    { schema: { tags, summary: 'Connect your Outlook / Gmail account (one consent per mailbox serves incoming and outgoing; 409 for app-only servers)', params: IdParams, response: { 200: Type.Object({ authorize_url: Type.String() }) } } },
    async (req) => ({ authorize_url: await servers.connect(req.params.id) }),
  )
  app.post<{ Params: IdParams }>(
    '/incoming-servers/:id/test',
    { schema: { tags, summary: 'Test & Confirm: TLS, AUTHENTICATE XOAUTH2, SELECT; success confirms the server', params: IdParams, response: { 200: TestResult } } },
    async (req) => servers.test(req.params.id),
  )
  app.post<{ Params: IdParams }>(
    '/incoming-servers/:id/fetch',
    { schema: { tags, summary: 'Fetch Now: waits for a running fetch of this server, then fetches', params: IdParams, response: { 200: FetchResult } } },
    async (req) => (await fetcher.fetch(req.params.id))!,
  )
}

const ListQuery = Type.Object(
  {
    server_id: Type.Optional(Type.String({ maxLength: 64 })),
    limit: Limit,
    cursor: Cursor,
  },
  { additionalProperties: false },
)
const AttachmentParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }), attachment_id: Type.String({ minLength: 1, maxLength: 64 }) })

export const messageRoutes: FastifyPluginAsync<{ messages: MessageService }> = async (app, { messages }) => {
  const tags = ['messages']
  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/messages',
    {
      schema: {
        tags,
        summary: 'Fetched messages in the order they were stored; pass the last id as cursor to get only what was stored since',
        querystring: ListQuery,
        response: { 200: Type.Object({ items: Type.Array(Message), next_cursor: Type.Union([Type.String(), Type.Null()]) }) },
      },
    },
    async (req) => messages.list(req.query, req.apiToken?.server_ids ?? undefined),
  )
  app.get<{ Params: IdParams }>('/messages/:id', { schema: { tags, params: IdParams, response: { 200: Message } } }, async (req) => messages.get(req.params.id))
  app.get<{ Params: IdParams }>('/messages/:id/raw', { schema: { tags, summary: 'The message as fetched (message/rfc822)', params: IdParams } }, async (req, reply) =>
    reply.type('message/rfc822').send(await messages.raw(req.params.id)),
  )
  app.get<{ Params: Static<typeof AttachmentParams> }>(
    '/messages/:id/attachments/:attachment_id',
    { schema: { tags, summary: 'Download one attachment', params: AttachmentParams } },
    async (req, reply) => {
      const a = await messages.attachment(req.params.id, req.params.attachment_id)
      return reply.type(a.contentType).header('content-disposition', attachmentDisposition(a.filename)).send(a.content)
    },
  )
}
