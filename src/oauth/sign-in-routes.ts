import type { FastifyInstance } from 'fastify'
import { Type, type Static } from 'typebox'
import type { DeviceCodeStart } from './device-code.ts'

/** The ways a server's mailbox signs in, as outgoing and incoming servers both offer them. */
export interface SignInServers {
  connect(id: string, session?: string): Promise<string>
  deviceCode(id: string): Promise<DeviceCodeStart>
  adminConsent(id: string, session?: string): Promise<string>
}

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })
const ConnectBody = Type.Object(
  {
    flow: Type.Optional(
      Type.Union([Type.Literal('authorization_code'), Type.Literal('device_code')], {
        description: '"authorization_code" (default): a consent URL to open in a browser, which returns to MAILBRIDGE_BASE_URL. "device_code": a code to enter at Microsoft on any device while Mailbridge polls, for installs whose URL cannot be a redirect URI',
      }),
    ),
  },
  { additionalProperties: false },
)
const ConnectAnswer = Type.Union([
  Type.Object({ authorize_url: Type.String() }, { additionalProperties: false }),
  Type.Object(
    {
      user_code: Type.String({ description: 'The code the person enters at verification_uri' }),
      verification_uri: Type.String(),
      expires_at: Type.String({ description: 'When the code stops working (15 minutes at Microsoft); the server\'s token.sign_in says how it ended' }),
    },
    { additionalProperties: false },
  ),
])

/**
 * `POST {path}/{id}/connect` (Connect, or a device code with `{"flow": "device_code"}`) and `POST {path}/{id}/admin-consent`
 * (design.md §6, §10).
 */
export function signInRoutes(app: FastifyInstance, o: { path: '/outgoing-servers' | '/incoming-servers'; tags: string[]; summary: string; servers: SignInServers }): void {
  const { servers, tags } = o
  app.post<{ Params: Static<typeof IdParams>; Body: Static<typeof ConnectBody> }>(
    `${o.path}/:id/connect`,
    {
      schema: { tags, summary: o.summary, params: IdParams, body: ConnectBody, response: { 200: ConnectAnswer } },
      // No body at all is the usual call: the default flow.
      preValidation: async (req) => {
        req.body ??= {}
      },
    },
    async (req) => (req.body.flow === 'device_code' ? servers.deviceCode(req.params.id) : { authorize_url: await servers.connect(req.params.id) }),
  )
  app.post<{ Params: Static<typeof IdParams> }>(
    `${o.path}/:id/admin-consent`,
    {
      schema: {
        tags,
        summary: 'Grant admin consent: the URL an administrator of the mailbox\'s tenant opens to grant Connect\'s permissions for every user of the tenant (where the tenant lets only admins consent: AADSTS65001, 90094, 90095)',
        params: IdParams,
        response: { 200: Type.Object({ admin_consent_url: Type.String() }, { additionalProperties: false }) },
      },
    },
    async (req) => ({ admin_consent_url: await servers.adminConsent(req.params.id) }),
  )
}
