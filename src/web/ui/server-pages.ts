import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { html, type Html } from '../../html.ts'
import type { DeviceCodeStart } from '../../oauth/device-code.ts'
import { banner, formError, formValue, seeOther, type FormError } from './kit.ts'
import { adminConsentCard, deviceCodeCard, deviceCodeOffer, type SignInSubject } from './sign-in-cards.ts'

type Values = Record<string, string | undefined>

/** What a server's form is drawn from: the saved server (if any), the values to show, and what to say. */
export interface ServerForm<S> {
  server?: S
  values: Values
  error?: FormError
  notice?: Html
  status?: number
}

/**
 * The pages the incoming and the outgoing servers share: create, show, save (then "Connect your … account"),
 * test, delete. Each kind brings its form, how its fields become API input, and its wording; the flow is one.
 */
export function serverPages<S extends SignInSubject & { token: { label: string } }, I>(
  app: FastifyInstance,
  o: {
    base: string
    kind: 'incoming' | 'outgoing'
    servers: {
      get(id: string): Promise<S>
      create(input: I): Promise<S>
      update(id: string, input: I): Promise<S>
      delete(id: string): Promise<void>
      connect(id: string, adminSessionId: string): Promise<string>
      deviceCode(id: string): Promise<DeviceCodeStart>
      adminConsent(id: string, adminSessionId: string): Promise<string>
      test(id: string): Promise<{ ok: boolean; message: string }>
    }
    form(req: FastifyRequest, reply: FastifyReply, f: ServerForm<S>): Promise<FastifyReply>
    toValues(s: S): Values
    /** Form fields → the API's input, or what is wrong with them. */
    read(body: unknown, creating: boolean): I | FormError
    /** Said after a consent came back with a working token. */
    connected(s: S): string
  },
): void {
  const { base, servers, toValues } = o
  /** The server's form, with the sign-in cards above it: the code being waited for, Grant admin consent, Sign in with a code. */
  const form = (req: FastifyRequest, reply: FastifyReply, f: ServerForm<S>) => {
    const s = f.server
    const cards = s ? html`${deviceCodeCard(base, s)}${adminConsentCard(base, req.admin!, s)}${deviceCodeOffer(base, req.admin!, s)}` : ''
    return o.form(req, reply, { ...f, notice: html`${f.notice ?? ''}${cards}` })
  }
  const isError = (x: I | FormError): x is FormError => typeof x === 'object' && x !== null && 'message' in x

  /** Save, then either show the server or, for "Connect your … account", go to the provider. */
  const saveThen = async (req: FastifyRequest, reply: FastifyReply, saved: S) => {
    if (formValue(req.body, 'then') !== 'connect') return seeOther(reply, `${base}/${saved.id}?saved=1`)
    try {
      const url = await servers.connect(saved.id, req.admin!.id)
      req.log.info({ server_id: saved.id, mailbox: saved.username }, 'sending the admin to the provider to connect')
      return seeOther(reply, url)
    } catch (e) {
      const error = formError(e)
      const link = /Settings/.test(error.message) ? html` <a href="/admin/settings">Open General Settings</a>` : ''
      return form(req, reply, { server: saved, values: toValues(saved), notice: banner('bad', html`${error.message}${link}`), status: 409 })
    }
  }

  /** Read the form, then create or update; a refusal shows the form again with the cause beside its field. */
  const save = async (req: FastifyRequest, reply: FastifyReply, existing: S | undefined) => {
    const input = o.read(req.body, !existing)
    if (isError(input)) return form(req, reply, { server: existing, values: req.body as Values, error: input })
    let saved: S
    try {
      saved = existing ? await servers.update(existing.id, input) : await servers.create(input)
    } catch (e) {
      return form(req, reply, { server: existing, values: req.body as Values, error: formError(e) })
    }
    return saveThen(req, reply, saved)
  }

  app.post(base, async (req, reply) => save(req, reply, undefined))

  app.get<{ Params: { id: string }; Querystring: { saved?: string; connected?: string } }>(`${base}/:id`, async (req, reply) => {
    const s = await servers.get(req.params.id)
    const notice =
      req.query.connected === '1'
        ? s.token.valid
          ? banner('ok', o.connected(s))
          : banner('bad', `The sign-in came back, but the token is not usable: ${s.token.label}`)
        : req.query.saved === '1'
          ? banner('ok', 'Saved.')
          : undefined
    return form(req, reply, { server: s, values: toValues(s), notice })
  })

  app.post<{ Params: { id: string } }>(`${base}/:id`, async (req, reply) => save(req, reply, await servers.get(req.params.id)))

  app.post<{ Params: { id: string } }>(`${base}/:id/test`, async (req, reply) => {
    const s = await servers.get(req.params.id)
    const result = await servers.test(s.id)
    // The test may have changed the token's health (a refused token turns the tag red): read it again.
    const fresh = await servers.get(s.id)
    return form(req, reply, { server: fresh, values: toValues(fresh), notice: banner(result.ok ? 'ok' : 'bad', result.message) })
  })

  /** Sign in with a code: Microsoft issues it, the page shows it and waits (the background polls). */
  app.post<{ Params: { id: string } }>(`${base}/:id/device-code`, async (req, reply) => {
    const s = await servers.get(req.params.id)
    try {
      await servers.deviceCode(s.id)
    } catch (e) {
      return form(req, reply, { server: s, values: toValues(s), notice: banner('bad', formError(e).message), status: 409 })
    }
    req.log.info({ server_id: s.id, mailbox: s.username }, 'device code issued from the admin UI')
    return seeOther(reply, `${base}/${s.id}`)
  })

  /** The device code card alone, for the page's live wait. */
  app.get<{ Params: { id: string } }>(`${base}/:id/sign-in`, async (req, reply) => {
    const card = deviceCodeCard(base, await servers.get(req.params.id))
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(card ? card.__html : '')
  })

  /** Grant admin consent: to Microsoft's admin consent page, bound to this admin session like Connect. */
  app.post<{ Params: { id: string } }>(`${base}/:id/admin-consent`, async (req, reply) => {
    const s = await servers.get(req.params.id)
    try {
      const url = await servers.adminConsent(s.id, req.admin!.id)
      req.log.info({ server_id: s.id, mailbox: s.username }, 'sending an administrator to the provider for admin consent')
      return seeOther(reply, url)
    } catch (e) {
      return form(req, reply, { server: s, values: toValues(s), notice: banner('bad', formError(e).message), status: 409 })
    }
  })

  app.post<{ Params: { id: string } }>(`${base}/:id/delete`, async (req, reply) => {
    const s = await servers.get(req.params.id)
    await servers.delete(s.id)
    req.log.info({ server_id: s.id, mailbox: s.username }, `${o.kind} server deleted from the admin UI`)
    return seeOther(reply, base)
  })
}
