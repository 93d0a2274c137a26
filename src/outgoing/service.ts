import { EventEmitter } from 'node:events'
import type { Kysely } from 'kysely'
import type { SecretBox } from '../crypto/secret-box.ts'
import { Secret } from '../crypto/secret.ts'
import { type DB, newId, now } from '../db/index.ts'
import type { OutgoingServerRow } from '../db/schema.ts'
import { MailbridgeError, invalid, notFound } from '../errors.ts'
import type { Logger } from '../log.ts'
import { isEmailAddress } from '../mail-address.ts'
import type { ConnectService } from '../oauth/connect.ts'
import type { DeviceCodeStart } from '../oauth/device-code.ts'
import { accountOf, type CredentialService } from '../oauth/credentials.ts'
import { xoauth2 } from '../oauth/protocol.ts'
import { outlook, providerFor, type MailHost, type ProviderSpec } from '../oauth/providers.ts'
import { checkTenant } from '../oauth/tenant.ts'
import type { Cloud } from '../oauth/clouds.ts'
import { checkServerHost } from '../oauth/endpoint-hosts.ts'
import type { TrustedHosts } from '../host-policy.ts'
import { toApi, type OutgoingServer, type OutgoingServerInput } from './model.ts'
import { probeSmtp, SmtpProbeError } from './smtp-probe.ts'

export interface TestResult {
  ok: boolean
  message: string
}

/** Outgoing servers: CRUD with Outlook's rules, Connect, and Test Connection. */
export class OutgoingServerService {
  /** 'change' after every create, update or delete: caches of the server list listen. */
  readonly changed = new EventEmitter()

  constructor(
    private readonly deps: { db: Kysely<DB>; box: SecretBox; credentials: CredentialService; connect: ConnectService; log: Logger; trustedHosts: TrustedHosts },
  ) {}

  async #row(id: string): Promise<OutgoingServerRow> {
    const row = await this.deps.db.selectFrom('outgoing_servers').selectAll().where('id', '=', id).executeTakeFirst()
    if (!row) throw notFound('Outgoing server', id)
    return row
  }

  async row(id: string): Promise<OutgoingServerRow> {
    return this.#row(id)
  }

  async rows(): Promise<OutgoingServerRow[]> {
    return this.deps.db.selectFrom('outgoing_servers').selectAll().orderBy('sequence').orderBy('id').execute()
  }

  async #toApi(row: OutgoingServerRow): Promise<OutgoingServer> {
    const p = providerFor(row.authentication)
    return toApi(row, p ? await this.deps.credentials.view(p, accountOf(row)) : null)
  }

  async get(id: string): Promise<OutgoingServer> {
    return this.#toApi(await this.#row(id))
  }

  async list(): Promise<OutgoingServer[]> {
    return Promise.all((await this.rows()).map((r) => this.#toApi(r)))
  }

  /** The provider of an authentication, with its SMTP host in the chosen national cloud. */
  async #provider(authentication: string | undefined): Promise<{ p: ProviderSpec; smtp: MailHost; cloud: Cloud } | undefined> {
    const p = authentication ? providerFor(authentication) : undefined
    const cloud = p && (await this.deps.credentials.cloud(p))
    return p && cloud && { p, smtp: p.smtp(cloud), cloud }
  }

  /** Apply an input over a row (or over nothing, on create), with provider defaults and the provider's rules. */
  #merge(
    base: OutgoingServerRow | undefined,
    input: OutgoingServerInput,
    provider: { p: ProviderSpec; smtp: MailHost; cloud: Cloud } | undefined,
  ): Omit<OutgoingServerRow, 'id' | 'created_at' | 'updated_at' | 'paused_until' | 'pause_reason'> {
    const authentication = input.authentication ?? base?.authentication
    if (!authentication) throw invalid('authentication', 'Choose an authentication: "outlook" or "gmail" (OAuth), "outlook_app" (app-only), "login" (password) or "none".')
    const name = (input.name ?? base?.name ?? '').trim()
    if (!name) throw invalid('name', 'Give the server a Description (any name).')
    const p = provider?.p
    const switched = base !== undefined && base.authentication !== authentication
    // Picking a provider fills in its host and port, as Odoo does; explicit values still win.
    const host = (input.host ?? (switched || !base ? provider?.smtp.host : base.host) ?? '').trim()
    const port = input.port ?? (switched || !base ? provider?.smtp.port : base.port) ?? 587
    const encryption = input.encryption ?? (switched || !base ? provider?.smtp.encryption : base.encryption) ?? 'starttls'
    // A tenant belongs to app-only access: switching to another authentication drops it.
    const tenantId = checkTenant(p, input.tenant_id !== undefined ? input.tenant_id : switched ? null : (base?.tenant_id ?? null))
    const username = (input.username ?? base?.username ?? '').trim()
    if (!host) throw invalid('host', 'Give the SMTP host name, such as smtp.office365.com.')
    checkServerHost(provider, host, this.deps.trustedHosts)
    let password = base?.password ?? null
    if (input.password !== undefined) password = input.password ? this.deps.box.seal(new Secret(input.password), 'outgoing_servers.password') : null
    if (p) {
      if (!username) throw invalid('username', `${p.article} ${p.label} server needs a Username: the mailbox address, such as alice@contoso.com.`)
      if (!isEmailAddress(username)) throw invalid('username', `The Username must be the mailbox's e-mail address (alice@contoso.com), got "${username}".`)
      if (password !== null) throw invalid('password', `${p.article} ${p.label} server authenticates with OAuth: leave the password empty.`)
      if (encryption !== 'starttls') throw invalid('encryption', `Incorrect connection security for ${p.article.toLowerCase()} ${p.label} server: set it to "starttls" (TLS, STARTTLS) on port 587.`)
    } else if (authentication === 'login') {
      if (!username) throw invalid('username', 'Password authentication needs a Username.')
      if (password === null) throw invalid('password', 'Password authentication needs a password.')
    }
    let fromFilter = input.from_filter !== undefined ? input.from_filter?.trim() || null : (base?.from_filter ?? null)
    // Exchange lets a mailbox send as itself only (5.7.60), so by default it is the filter.
    if (!base && input.from_filter === undefined && p) fromFilter = username.toLowerCase()
    if (fromFilter) {
      for (const part of fromFilter.split(',').map((s) => s.trim())) {
        if (!isEmailAddress(part) && !/^[\p{L}\p{N}-]+(\.[\p{L}\p{N}-]+)+$/u.test(part)) {
          throw invalid('from_filter', `from_filter takes e-mail addresses or domains separated by commas; "${part}" is neither.`)
        }
      }
    }
    const maxPerMinute = input.max_per_minute !== undefined ? input.max_per_minute : base && !switched ? base.max_per_minute : (p?.maxPerMinute ?? base?.max_per_minute ?? null)
    return {
      name,
      authentication,
      host,
      port,
      encryption,
      username,
      password,
      from_filter: fromFilter,
      sequence: input.sequence ?? base?.sequence ?? 10,
      max_per_minute: maxPerMinute,
      tenant_id: tenantId,
    }
  }

  async create(input: OutgoingServerInput): Promise<OutgoingServer> {
    const at = now()
    const row: OutgoingServerRow = { id: newId(), ...this.#merge(undefined, input, await this.#provider(input.authentication)), paused_until: null, pause_reason: null, created_at: at, updated_at: at }
    await this.deps.db.insertInto('outgoing_servers').values(row).execute()
    this.changed.emit('change')
    this.deps.log.info({ server_id: row.id, mailbox: row.username }, 'outgoing server created')
    return this.#toApi(row)
  }

  async update(id: string, input: OutgoingServerInput): Promise<OutgoingServer> {
    const base = await this.#row(id)
    const merged = this.#merge(base, input, await this.#provider(input.authentication ?? base.authentication))
    await this.deps.db.updateTable('outgoing_servers').set({ ...merged, updated_at: now() }).where('id', '=', id).execute()
    this.changed.emit('change')
    return this.get(id)
  }

  async delete(id: string): Promise<void> {
    await this.#row(id)
    await this.deps.db.deleteFrom('outgoing_servers').where('id', '=', id).execute()
    this.changed.emit('change')
  }

  /** The server's OAuth provider and its account, for the ways it signs in. */
  async #signIn(id: string, session?: string) {
    const row = await this.#row(id)
    const p = providerFor(row.authentication)
    if (!p) throw new MailbridgeError('conflict', { message: `Server ${row.name} does not use OAuth (authentication is "${row.authentication}").` })
    return { p, o: { serverKind: 'outgoing' as const, serverId: id, mailbox: row.username, session } }
  }

  async connect(id: string, session?: string): Promise<string> {
    const { p, o } = await this.#signIn(id, session)
    return this.deps.connect.start(p, o)
  }

  /** Sign in with a code on any device (design.md §10, Device code). */
  async deviceCode(id: string): Promise<DeviceCodeStart> {
    const { p, o } = await this.#signIn(id)
    return this.deps.connect.startDeviceCode(p, o)
  }

  /** The admin consent URL for the mailbox's tenant (design.md §10, Admin consent). */
  async adminConsent(id: string, session?: string): Promise<string> {
    const { p, o } = await this.#signIn(id, session)
    return this.deps.connect.startAdminConsent(p, o)
  }

  /**
   * Test Connection: connect, STARTTLS, AUTH (235 required), MAIL FROM the server's own address, RCPT TO
   * the same, RSET, QUIT. A 535 gets one retry with a refreshed token, as nodemailer does for XOAUTH2.
   */
  async test(id: string): Promise<TestResult> {
    const row = await this.#row(id)
    const p = providerFor(row.authentication)
    const from = firstAddress(row.from_filter) ?? row.username
    const log = this.deps.log.child({ server_id: id, mailbox: row.username, host: row.host })
    const attempt = async (rejected?: Secret) => {
      let token: Secret | undefined
      let auth: Parameters<typeof probeSmtp>[0]['auth']
      if (p) {
        // A new token on the first attempt: the test must exercise the client secret, not a token cached an hour ago.
        token = await this.deps.credentials.accessToken(p, accountOf(row), { rejected, renew: !rejected })
        auth = { mechanism: 'XOAUTH2', initial: xoauth2(row.username, token) }
      } else if (row.authentication === 'login') {
        auth = { mechanism: 'PLAIN', user: row.username, password: this.deps.box.open(row.password!, 'outgoing_servers.password') }
      }
      await probeSmtp({ host: row.host, port: row.port, encryption: row.encryption as 'starttls', auth, mailFrom: from, rcptTo: from })
      return token
    }
    try {
      let token: Secret | undefined
      try {
        token = await attempt()
      } catch (e) {
        if (!(p && e instanceof SmtpProbeError && e.stage === 'auth' && e.reply?.code === 535 && !/5\.7\.139/.test(e.reply.text))) throw e
        log.info('535 on AUTH: retrying once with a refreshed token')
        token = await attempt(await this.deps.credentials.accessToken(p, accountOf(row)))
      }
      if (p && token) await this.deps.credentials.recordUseSuccess(p, accountOf(row))
      log.info('connection test succeeded')
      return { ok: true, message: 'Connection Test Successful!' }
    } catch (e) {
      const message = explainTestFailure(row, e)
      // Not recorded on the credential: the mailbox's other servers share it, and a refusal by this host (a wrong
      // host, SMTP AUTH off) says nothing about them. The provider's refusals are recorded where the token is fetched.
      log.warn({ cause: (e as Error).message }, 'connection test failed')
      return { ok: false, message }
    }
  }
}

export const firstAddress = (fromFilter: string | null): string | undefined =>
  fromFilter?.split(',').map((s) => s.trim()).find((s) => s.includes('@'))

/** Turn a probe failure into what the admin must do, naming the server and the mailbox. */
export function explainTestFailure(row: Pick<OutgoingServerRow, 'host' | 'port' | 'username' | 'authentication'>, e: unknown): string {
  const where = `${row.host}:${row.port}`
  if (!(e instanceof SmtpProbeError)) return `Connection Test Failed for ${row.username}: ${(e as Error).message}`
  const reply = e.reply ? `${e.reply.code} ${e.reply.text}` : ''
  if (e.stage === 'auth' && /5\.7\.139/.test(reply)) {
    return (
      `Connection Test Failed: SMTP AUTH is disabled for ${row.username} or its tenant (${reply}). ` +
      `Enable Authenticated SMTP in the Microsoft 365 admin center (Users → Active users → ${row.username} → Mail → Manage email apps), ` +
      `or in PowerShell: Set-CASMailbox -Identity ${row.username} -SmtpClientAuthenticationDisabled $false ` +
      `(tenant-wide: Set-TransportConfig -SmtpClientAuthenticationDisabled $false).`
    )
  }
  if (e.stage === 'auth' && e.reply?.code === 535) {
    return (
      `Connection Test Failed: ${where} refused the token for ${row.username} (${reply}). ` +
      (providerFor(row.authentication) ?? outlook).refusedHint('smtp', row.username)
    )
  }
  if (e.stage === 'mail' && /5\.7\.60/.test(reply)) {
    return `Connection Test Failed: ${row.username} may not send as this address (${reply}). Set from_filter to the mailbox's own address, or grant Send As in Exchange.`
  }
  if (e.stage === 'tls') return `Connection Test Failed: ${e.message}. Check the host name and that the server offers a valid certificate.`
  if (e.stage === 'connect') return `Connection Test Failed: ${e.message}. Check the host and port.`
  return `Connection Test Failed at ${e.stage.toUpperCase()} on ${where}: ${e.message}`
}
