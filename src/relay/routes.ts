import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from 'typebox'
import { RelayUser, RelayUserInput, type RelayUserService } from './users.ts'

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })

/** `/api/v1/relay-users` (design.md §6): the logins of the SMTP relay; the password is write-only. */
export const relayUserRoutes: FastifyPluginAsync<{ relayUsers: RelayUserService }> = async (app, { relayUsers }) => {
  const tags = ['relay']
  app.get('/relay-users', { schema: { tags, summary: 'Relay users and their last use', response: { 200: Type.Object({ items: Type.Array(RelayUser), next_cursor: Type.Null() }) } } }, async () => ({
    items: await relayUsers.list(),
    next_cursor: null,
  }))
  app.post<{ Body: RelayUserInput }>(
    '/relay-users',
    { schema: { tags, summary: 'Create a login for a legacy application on the SMTP relay', body: RelayUserInput, response: { 201: RelayUser } } },
    async (req, reply) => reply.code(201).send(await relayUsers.create(req.body)),
  )
  app.delete<{ Params: Static<typeof IdParams> }>('/relay-users/:id', { schema: { tags, params: IdParams } }, async (req, reply) => {
    await relayUsers.delete(req.params.id)
    return reply.code(204).send()
  })
}
