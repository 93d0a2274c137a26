import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from 'typebox'
import { signInRoutes } from '../oauth/sign-in-routes.ts'
import { OutgoingServer, OutgoingServerInput } from './model.ts'
import type { OutgoingServerService } from './service.ts'

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })
type IdParams = Static<typeof IdParams>
const TestResult = Type.Object({ ok: Type.Boolean(), message: Type.String() }, { additionalProperties: false })

export const outgoingServerRoutes: FastifyPluginAsync<{ servers: OutgoingServerService }> = async (app, { servers }) => {
  const tags = ['outgoing servers']
  app.get('/outgoing-servers', { schema: { tags, response: { 200: Type.Object({ items: Type.Array(OutgoingServer), next_cursor: Type.Null() }) } } }, async () => ({
    items: await servers.list(),
    next_cursor: null,
  }))
  app.post<{ Body: OutgoingServerInput }>(
    '/outgoing-servers',
    { schema: { tags, body: OutgoingServerInput, response: { 201: OutgoingServer } } },
    async (req, reply) => reply.code(201).send(await servers.create(req.body)),
  )
  app.get<{ Params: IdParams }>('/outgoing-servers/:id', { schema: { tags, params: IdParams, response: { 200: OutgoingServer } } }, async (req) => servers.get(req.params.id))
  app.patch<{ Params: IdParams; Body: OutgoingServerInput }>(
    '/outgoing-servers/:id',
    { schema: { tags, params: IdParams, body: OutgoingServerInput, response: { 200: OutgoingServer } } },
    async (req) => servers.update(req.params.id, req.body),
  )
  app.delete<{ Params: IdParams }>('/outgoing-servers/:id', { schema: { tags, params: IdParams } }, async (req, reply) => {
    await servers.delete(req.params.id)
    return reply.code(204).send()
  })
  signInRoutes(app, { path: '/outgoing-servers', tags, servers, summary: 'Connect your Outlook / Gmail account: returns the consent URL to open in a browser, or with {"flow": "device_code"} a code to enter at Microsoft (409 for app-only servers)' })
  app.post<{ Params: IdParams }>(
    '/outgoing-servers/:id/test',
    { schema: { tags, summary: 'Test Connection: STARTTLS, AUTH, MAIL FROM, RCPT TO, RSET', params: IdParams, response: { 200: TestResult } } },
    async (req) => servers.test(req.params.id),
  )
}
