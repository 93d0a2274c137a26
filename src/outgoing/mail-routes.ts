import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from 'typebox'
import { Cursor, Limit } from '../paging.ts'
import { Mail, MailState, SendMailBody } from './mail-model.ts'
import type { MailService } from './mail-service.ts'
import { jsonSizeOf } from './mail-size.ts'

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })
type IdParams = Static<typeof IdParams>
const ListQuery = Type.Object(
  { state: Type.Optional(MailState), limit: Limit, cursor: Cursor },
  { additionalProperties: false },
)
const Accepted = Type.Object({ id: Type.String(), message_id: Type.String(), state: MailState }, { additionalProperties: false })

export const mailRoutes: FastifyPluginAsync<{ mails: MailService; maxBytes: number }> = async (app, { mails, maxBytes }) => {
  const tags = ['mail']
  app.post<{ Body: SendMailBody }>(
    '/mail',
    {
      // The limit is on the decoded mail (checkMail); the JSON that carries it is a third larger.
      bodyLimit: jsonSizeOf(maxBytes),
      config: { tooLarge: { what: 'mail', limit: maxBytes, setting: 'MAILBRIDGE_MAX_MAIL_BYTES' } },
      schema: { tags, summary: 'Queue a mail: it is stored before the 202', body: SendMailBody, response: { 202: Accepted } },
    },
    async (req, reply) => {
      const mail = await mails.accept(req.body, req.apiToken?.server_ids ?? undefined)
      return reply.code(202).send({ id: mail.id, message_id: mail.message_id, state: mail.state })
    },
  )
  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/mail',
    { schema: { tags, querystring: ListQuery, response: { 200: Type.Object({ items: Type.Array(Mail), next_cursor: Type.Union([Type.String(), Type.Null()]) }) } } },
    async (req) => mails.list(req.query, req.apiToken?.server_ids ?? undefined),
  )
  app.get<{ Params: IdParams }>('/mail/:id', { schema: { tags, params: IdParams, response: { 200: Mail } } }, async (req) => mails.get(req.params.id))
  app.post<{ Params: IdParams }>('/mail/:id/retry', { schema: { tags, summary: 'Retry a failed mail, or send a deferred one now', params: IdParams, response: { 200: Mail } } }, async (req) =>
    mails.retry(req.params.id),
  )
  app.post<{ Params: IdParams }>('/mail/:id/cancel', { schema: { tags, params: IdParams, response: { 200: Mail } } }, async (req) => mails.cancel(req.params.id))
}
