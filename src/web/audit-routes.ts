import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from 'typebox'
import { AuditRecord, type AuditLog } from '../access/audit-log.ts'
import { Cursor, Limit } from '../paging.ts'

const PageQuery = Type.Object({ limit: Limit, cursor: Cursor }, { additionalProperties: false })

/** `GET /api/v1/audit`: who did which admin action, newest first, paged like the other lists. */
export const auditRoutes: FastifyPluginAsync<{ audit: AuditLog }> = async (app, { audit }) => {
  app.get<{ Querystring: Static<typeof PageQuery> }>(
    '/audit',
    {
      schema: {
        tags: ['audit'],
        summary: 'The audit log: sign-ins, settings, servers, Connect, tokens, webhooks, retries (kept MAILBRIDGE_AUDIT_DAYS days)',
        querystring: PageQuery,
        response: { 200: Type.Object({ items: Type.Array(AuditRecord), next_cursor: Type.Union([Type.String(), Type.Null()]) }) },
      },
    },
    async (req) => audit.list(req.query),
  )
}
