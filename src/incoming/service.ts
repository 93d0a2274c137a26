import type { Kysely } from 'kysely'
import type { Secret } from '../crypto/secret.ts'
import { type DB, newId, now } from '../db/index.ts'
import type { IncomingServerRow } from '../db/schema.ts'
import { MailbridgeError, invalid, notFound } from '../errors.ts'
import type { Logger } from '../log.ts'
import { isEmailAddress } from '../mail-address.ts'
import type { ConnectService } from '../oauth/connect.ts'
import type { DeviceCodeStart } from '../oauth/device-code.ts'
import { accountOf, type CredentialService } from '../oauth/credentials.ts'
import { ProviderError } from '../oauth/protocol.ts'
import { outlook, providerFor, type MailHost, type ProviderSpec } from '../oauth/providers.ts'
import { checkTenant } from '../oauth/tenant.ts'
import type { Cloud } from '../oauth/clouds.ts'
import { checkServerHost } from '../oauth/endpoint-hosts.ts'
import type { TrustedHosts } from '../host-policy.ts'
import { DEFAULT_POLL_INTERVAL_S, serverToApi, type IncomingServer, type IncomingServerInput } from './model.ts'
import { ImapError, openSession, toImapError } from './imap.ts'

export interface TestResult {
  ok: boolean
  message: string
}

/** Incoming servers: CRUD with Outlook's rules, Connect (the same consent as outgoing), and Test & Confirm. */
export class IncomingServerService {
  constructor(private readonly deps: { db: Kysely<DB>; credentials: CredentialService; connect: ConnectService; log: Logger; trustedHosts: TrustedHosts }) {}

  async row(id: string): Promise<IncomingServerRow> {
    const row = await this.deps.db.selectFrom('incoming_servers').selectAll().where('id', '=', id).executeTakeFirst()
    if (!row) throw notFound('Incoming server', id)
    return row
  }

  provider(row: IncomingServerRow): ProviderSpec {
    const p = providerFor(row.authentication)
    if (!p) throw new MailbridgeError('conflict', { message: `Incoming server ${row.name} has an unknown authentication "${row.authentication}".` })
    return p
  }

  async #toApi(row: IncomingServerRow): Promise<IncomingServer> {
    return serverToApi(row, await this.deps.credentials.view(this.provider(row), accountOf(row)))
  }

  async get(id: string): Promise<IncomingServer> {
    return this.#toApi(await this.row(id))
  }

  async list(): Promise<IncomingServer[]> {
    const rows = await this.deps.db.selectFrom('incoming_servers').selectAll().orderBy('id').execute()
    return Promise.all(rows.map((r) => this.#toApi(r)))
  }

  /** The provider of an authentication, with its IMAP host in the chosen national cloud. */
  async #provider(authentication: string): Promise<{ p: ProviderSpec; imap: MailHost; cloud: Cloud }> {
    const p = providerFor(authentication)
    if (!p) throw invalid('authentication', `Unknown authentication "${authentication}".`)
    const cloud = await this.deps.credentials.cloud(p)
    return { p, imap: p.imap(cloud), cloud }
  }

  #merge(base: IncomingServerRow | undefined, input: IncomingServerInput, { p, imap, cloud }: { p: ProviderSpec; imap: MailHost; cloud: Cloud }) {
    const authentication = p.id
    const name = (input.name ?? base?.name ?? '').trim()
    if (!name) throw invalid('name', 'Give the server a Description (any name).')
    // Picking a provider fills in its IMAP host (outlook.office365.com:993, imap.gmail.com:993) with TLS, as Odoo
    // does; explicit values still win.
    const keep = base !== undefined && base.authentication === authentication
    const host = (input.host ?? (keep ? base.host : imap.host)).trim()
    const port = input.port ?? (keep ? base.port : imap.port)
    const encryption = input.encryption ?? (keep ? base.encryption : imap.encryption)
    checkServerHost({ p, cloud }, host, this.deps.trustedHosts)
    // A tenant belongs to app-only access: switching to another authentication drops it.
    const tenantId = checkTenant(p, input.tenant_id !== undefined ? input.tenant_id : keep ? (base?.tenant_id ?? null) : null)
    const username = (input.username ?? base?.username ?? '').trim()
    if (!username) throw invalid('username', `${p.article} ${p.label} server needs a Username: the mailbox address, such as alice@contoso.com.`)
    if (!isEmailAddress(username)) throw invalid('username', `The Username must be the mailbox's e-mail address (alice@contoso.com), got "${username}".`)
    const folder = (input.folder ?? base?.folder ?? 'INBOX').trim()
    if (!folder) throw invalid('folder', 'Give the folder to fetch, such as INBOX.')
    return {
      name,
      authentication,
      host,
      port,
      encryption,
      username,
      folder,
      poll_interval_s: input.poll_interval_s ?? base?.poll_interval_s ?? DEFAULT_POLL_INTERVAL_S,
      mark_seen: input.mark_seen === undefined ? (base?.mark_seen ?? 1) : input.mark_seen ? 1 : 0,
      tenant_id: tenantId,
    }
  }

  async create(input: IncomingServerInput): Promise<IncomingServer> {
    const at = now()
    const row: IncomingServerRow = {
      id: newId(),
      ...this.#merge(undefined, input, await this.#provider(input.authentication ?? 'outlook')),
      state: 'draft',
      lease_owner: null,
      lease_until: null,
      last_fetch_at: null,
      last_fetch_ok_at: null,
      last_error: null,
      sync_progress: null,
      created_at: at,
      updated_at: at,
    }
    await this.deps.db.insertInto('incoming_servers').values(row).execute()
    this.deps.log.info({ server_id: row.id, mailbox: row.username }, 'incoming server created')
    return this.#toApi(row)
  }

  /** A change to where or what we fetch puts the server back to draft: Test & Confirm it again. */
  async update(id: string, input: IncomingServerInput): Promise<IncomingServer> {
    const base = await this.row(id)
    const merged = this.#merge(base, input, await this.#provider(input.authentication ?? base.authentication))
    const moved = (['host', 'port', 'encryption', 'username', 'folder', 'authentication', 'tenant_id'] as const).some((k) => merged[k] !== base[k])
    await this.deps.db
      .updateTable('incoming_servers')
      .set({ ...merged, ...(moved ? { state: 'draft' as const } : {}), updated_at: now() })
      .where('id', '=', id)
      .execute()
    return this.get(id)
  }

  /** Deleting a server keeps its stored messages: they were handed to the application and may be referenced. */
  async delete(id: string): Promise<void> {
    await this.row(id)
    await this.deps.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('incoming_sync').where('server_id', '=', id).execute()
      await tx.deleteFrom('incoming_servers').where('id', '=', id).execute()
    })
  }

  async connect(id: string, session?: string): Promise<string> {
    const row = await this.row(id)
    return this.deps.connect.start(this.provider(row), { serverKind: 'incoming', serverId: id, mailbox: row.username, session })
  }

  /** Sign in with a code on any device (design.md §10, Device code). */
  async deviceCode(id: string): Promise<DeviceCodeStart> {
    const row = await this.row(id)
    return this.deps.connect.startDeviceCode(this.provider(row), { serverKind: 'incoming', serverId: id, mailbox: row.username })
  }

  /** The admin consent URL for the mailbox's tenant (design.md §10, Admin consent). */
  async adminConsent(id: string, session?: string): Promise<string> {
    const row = await this.row(id)
    return this.deps.connect.startAdminConsent(this.provider(row), { serverKind: 'incoming', serverId: id, mailbox: row.username, session })
  }

  /**
   * Test & Confirm: TLS, AUTHENTICATE XOAUTH2, SELECT the folder, LOGOUT. Success confirms the server (the
   * scheduler fetches confirmed servers only). A refused login gets one retry with a refreshed token.
   */
  async test(id: string): Promise<TestResult> {
    const row = await this.row(id)
    const p = this.provider(row)
    const log = this.deps.log.child({ server_id: id, mailbox: row.username, host: row.host })
    const attempt = async (rejected?: Secret) => {
      // A new token on the first attempt: the test must exercise the client secret, not a token cached an hour ago.
      const token = await this.deps.credentials.accessToken(p, accountOf(row), { rejected, renew: !rejected })
      const client = await openSession(row, token).catch((e: unknown) => {
        throw Object.assign(toImapError(e, 'connect'), { token })
      })
      try {
        const box = await client.mailboxOpen(row.folder, { readOnly: true }).catch((e: unknown) => {
          throw toImapError(e, 'select', client)
        })
        return box.exists
      } finally {
        await client.logout().catch(() => client.close())
      }
    }
    try {
      let exists: number
      try {
        exists = await attempt()
      } catch (e) {
        if (!(e instanceof ImapError && e.stage === 'auth')) throw e
        log.info('AUTHENTICATE refused: retrying once with a refreshed token')
        exists = await attempt((e as ImapError & { token: Secret }).token)
      }
      await this.deps.credentials.recordUseSuccess(p, accountOf(row))
      await this.deps.db.updateTable('incoming_servers').set({ state: 'confirmed', last_error: null, updated_at: now() }).where('id', '=', id).execute()
      log.info({ exists }, 'incoming server tested and confirmed')
      return { ok: true, message: `Connection Test Successful! ${row.folder} holds ${exists} messages; the server is confirmed and will be fetched every ${row.poll_interval_s} s.` }
    } catch (e) {
      const message = explainImapFailure(row, e)
      // Recorded on this server, not on the credential its mailbox's other servers share (see outgoing/service.ts test).
      await this.deps.db.updateTable('incoming_servers').set({ last_error: message, updated_at: now() }).where('id', '=', id).execute()
      log.warn({ cause: (e as Error).message }, 'incoming server test failed')
      return { ok: false, message }
    }
  }
}

/** Turn an IMAP or token failure into what the admin must do, naming the mailbox, the server and the cause. */
export function explainImapFailure(row: Pick<IncomingServerRow, 'host' | 'port' | 'username' | 'folder' | 'authentication'>, e: unknown): string {
  const where = `${row.host}:${row.port}`
  if (e instanceof ProviderError || e instanceof MailbridgeError) return `Connection Test Failed for ${row.username}: ${e.message}`
  if (!(e instanceof ImapError)) return `Connection Test Failed for ${row.username} on ${where}: ${(e as Error).message}`
  const said = e.o.response ? ` (the server said: ${e.o.response})` : ''
  if (/authenticated but not connected/i.test(`${e.message} ${e.o.response ?? ''}`)) {
    return (
      `Connection Test Failed: ${where} accepted the token but answered "User is authenticated but not connected" for ${row.username}. ` +
      `Usual causes: the account that consented is not ${row.username} (sign in as the mailbox itself, then Reconnect); ` +
      `the mailbox has IMAP disabled (Microsoft 365 admin center → Users → ${row.username} → Mail → Manage email apps → IMAP); ` +
      `or the mailbox does not exist or has no Exchange Online licence.`
    )
  }
  switch (e.stage) {
    case 'auth':
      return (
        `Connection Test Failed: ${where} refused the token for ${row.username}: NO AUTHENTICATE failed.${said} ` +
        (providerFor(row.authentication) ?? outlook).refusedHint('imap', row.username)
      )
    case 'tls':
      return `Connection Test Failed: TLS with ${where} failed (${e.message}). Check the host name and that the server offers a valid certificate; Outlook needs ssl on port 993.`
    case 'select':
      return `Connection Test Failed: ${row.username} logged in, but the folder "${row.folder}" could not be opened: ${e.message}${said}. Check the folder name (INBOX, or a path such as INBOX/Orders).`
    case 'connect':
      return `Connection Test Failed: cannot reach ${where} (${e.message}). Check the host and port (outlook.office365.com:993).`
    case 'fetch':
      return `Fetching from ${where} for ${row.username} failed: ${e.message}${said}`
    default: {
      const never: never = e.stage
      return String(never)
    }
  }
}
