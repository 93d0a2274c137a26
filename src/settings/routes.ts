import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from 'typebox'
import { notFound } from '../errors.ts'
import { CLOUD_IDS } from '../oauth/clouds.ts'
import type { CredentialService } from '../oauth/credentials.ts'
import { updateCheckingSecrets } from './checked-update.ts'
import type { SettingsPatch, SettingsService } from './service.ts'

const Cloud = Type.Union(CLOUD_IDS.map((c) => Type.Literal(c)), {
  description: 'Microsoft national cloud: global, usgov (GCC High, DoD) or china (21Vianet). Changes the login host, the mail scopes and the default mail hosts together.',
})

const SecretCheck = Type.Object(
  {
    result: Type.Union([Type.Literal('accepted'), Type.Literal('unchecked')], { description: 'accepted: a token request with the new secret succeeded; unchecked: no connected mailbox to try it with, or the provider could not be reached. A refused secret is answered 422 and not saved.' }),
    message: Type.String(),
  },
  { additionalProperties: false, description: 'Only in the answer to a PATCH that gave this client secret.' },
)

const Settings = Type.Object(
  {
    external_email_servers: Type.Boolean(),
    microsoft_outlook_client_id: Type.String(),
    microsoft_outlook_client_secret_set: Type.Boolean(),
    microsoft_outlook_client_secret_expires_at: Type.Union([Type.String(), Type.Null()]),
    microsoft_outlook_client_secret_next_set: Type.Boolean({ description: 'A second secret is stored: it takes over, with no interruption, when Microsoft refuses the current one as expired or wrong (AADSTS7000222, 7000215).' }),
    microsoft_outlook_client_secret_next_expires_at: Type.Union([Type.String(), Type.Null()]),
    microsoft_outlook_client_secret_promoted_at: Type.Union([Type.String(), Type.Null()], { description: 'When the next secret last took over (it is now the current one); null once a new next secret is saved.' }),
    microsoft_outlook_client_certificate_set: Type.Boolean({ description: 'A certificate credential is stored: token requests carry a signed client assertion and never the secret.' }),
    microsoft_outlook_client_certificate_thumbprint: Type.Union([Type.String(), Type.Null()], { description: 'SHA-1 thumbprint in hex, as Azure lists it under Certificates & secrets.' }),
    microsoft_outlook_client_certificate_expires_at: Type.Union([Type.String(), Type.Null()]),
    microsoft_outlook_cloud: Cloud,
    google_gmail_client_id: Type.String(),
    google_gmail_client_secret_set: Type.Boolean(),
    redirect_uris: Type.Record(Type.String(), Type.String()),
    microsoft_outlook_client_secret_check: Type.Optional(SecretCheck),
    microsoft_outlook_client_secret_next_check: Type.Optional(SecretCheck),
    microsoft_outlook_client_certificate_check: Type.Optional(SecretCheck),
    google_gmail_client_secret_check: Type.Optional(SecretCheck),
  },
  { additionalProperties: false },
)

const SettingsPatchBody = Type.Object(
  {
    external_email_servers: Type.Optional(Type.Boolean()),
    microsoft_outlook_client_id: Type.Optional(Type.String({ maxLength: 200 })),
    microsoft_outlook_client_secret: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()], { description: 'Write-only' })),
    microsoft_outlook_client_secret_expires_at: Type.Optional(Type.Union([Type.String({ maxLength: 40 }), Type.Null()])),
    microsoft_outlook_client_secret_next: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()], { description: 'Write-only: the second secret, used when the current one is refused' })),
    microsoft_outlook_client_secret_next_expires_at: Type.Optional(Type.Union([Type.String({ maxLength: 40 }), Type.Null()])),
    microsoft_outlook_client_certificate: Type.Optional(
      Type.Union([Type.String({ maxLength: 30000 }), Type.Null()], { description: 'Write-only: the PEM certificate and its unencrypted private key together; null removes them (the secret is used again)' }),
    ),
    microsoft_outlook_cloud: Type.Optional(Cloud),
    google_gmail_client_id: Type.Optional(Type.String({ maxLength: 200 })),
    google_gmail_client_secret: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()], { description: 'Write-only' })),
  },
  { additionalProperties: false },
)

const Parameter = Type.Object({ key: Type.String(), value: Type.String() }, { additionalProperties: false })
const KeyParams = Type.Object({ key: Type.String({ minLength: 1, maxLength: 200 }) })

export const settingsRoutes: FastifyPluginAsync<{ settings: SettingsService; credentials: CredentialService; redirectUris: Record<string, string> }> = async (app, { settings, credentials, redirectUris }) => {
  const tags = ['settings']
  app.get('/settings', { schema: { tags, summary: 'General Settings', response: { 200: Settings } } }, async () => ({ ...(await settings.view()), redirect_uris: redirectUris }))
  app.patch<{ Body: Static<typeof SettingsPatchBody> }>(
    '/settings',
    { schema: { tags, summary: 'Change settings (the client secrets are write-only, and tried with the provider before they are saved)', body: SettingsPatchBody, response: { 200: Settings } } },
    async (req) => ({ ...(await updateCheckingSecrets({ settings, credentials }, req.body as SettingsPatch)), redirect_uris: redirectUris }),
  )

  const ptags = ['parameters']
  app.get('/parameters', { schema: { tags: ptags, summary: 'System Parameters', response: { 200: Type.Object({ items: Type.Array(Parameter), next_cursor: Type.Null() }) } } }, async () => ({
    items: await settings.listParameters(),
    next_cursor: null,
  }))
  app.get<{ Params: Static<typeof KeyParams> }>('/parameters/:key', { schema: { tags: ptags, params: KeyParams, response: { 200: Parameter } } }, async (req) => {
    const value = await settings.parameterOrDefault(req.params.key)
    if (value === undefined) throw notFound('Parameter', req.params.key)
    return { key: req.params.key, value }
  })
  app.put<{ Params: Static<typeof KeyParams>; Body: { value: string } }>(
    '/parameters/:key',
    { schema: { tags: ptags, params: KeyParams, body: Type.Object({ value: Type.String({ maxLength: 10000 }) }, { additionalProperties: false }), response: { 200: Parameter } } },
    async (req) => settings.setParameter(req.params.key, req.body.value),
  )
  app.delete<{ Params: Static<typeof KeyParams> }>('/parameters/:key', { schema: { tags: ptags, params: KeyParams } }, async (req, reply) => {
    if (!(await settings.deleteParameter(req.params.key))) throw notFound('Parameter', req.params.key)
    return reply.code(204).send()
  })
}
