/**
 * A test emulator of Microsoft Graph's Outlook mail API (v1.0) over HTTPS with the test CA: sendMail in MIME and
 * JSON, drafts, attachments and upload sessions, send, Sent Items, the delta query of a folder, a message's MIME,
 * isRead, folders by name; Graph's error shape, 429 with Retry-After, the per-mailbox concurrency limit, app-only
 * tokens with roles and an application access policy. Tokens come from the identity emulator (the same process).
 *
 * It follows Microsoft's documents, not Mailbridge's code. Sources (cited by name beside each rule):
 * - SENDMAIL   https://learn.microsoft.com/graph/api/user-sendmail
 * - MIME       https://learn.microsoft.com/graph/outlook-send-mime-message
 * - CREATE     https://learn.microsoft.com/graph/api/user-post-messages
 * - SEND       https://learn.microsoft.com/graph/api/message-send
 * - ATTACH     https://learn.microsoft.com/graph/api/message-post-attachments
 * - LARGE      https://learn.microsoft.com/graph/outlook-large-attachments
 * - UPLOAD     https://learn.microsoft.com/graph/api/attachment-createuploadsession
 * - DELTA      https://learn.microsoft.com/graph/delta-query-messages and https://learn.microsoft.com/graph/api/message-delta
 * - DELTA_OVERVIEW https://learn.microsoft.com/graph/delta-query-overview (synchronization reset, token lifetime)
 * - VALUE      https://learn.microsoft.com/graph/outlook-get-mime-message
 * - UPDATE     https://learn.microsoft.com/graph/api/message-update
 * - FOLDERS    https://learn.microsoft.com/graph/api/user-list-mailfolders and https://learn.microsoft.com/graph/api/mailfolder-get
 * - ERRORS     https://learn.microsoft.com/graph/errors
 * - THROTTLING https://learn.microsoft.com/graph/throttling and https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits
 * - POLICY     https://learn.microsoft.com/graph/auth-limit-mailbox-access
 * - SENDAS     https://learn.microsoft.com/graph/outlook-send-mail-from-other-user
 * - PERMISSIONS https://learn.microsoft.com/graph/permissions-reference (Mail.Send, Mail.ReadWrite, delegated and application)
 * Where Microsoft documents no code or figure, the comment says which field report the choice follows.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import addressparser from 'nodemailer/lib/addressparser'
import MailComposer from 'nodemailer/lib/mail-composer'
import libmime from 'libmime'
import { listen, startIdentityEmulator, type Emulator } from './identity-emulator.ts'

export interface GraphEmulatorOptions {
  /** validates the bearer tokens (the identity emulator that issued them) */
  identity: Pick<Emulator, 'tokenInfo'>
  /** the app id URI a token must be for: https://graph.microsoft.com, or a national cloud's */
  audience?: string
  /** default 4 MiB (see MAX_REQUEST_BYTES) */
  maxRequestBytes?: number
  /** default 35 MiB (see MAX_MESSAGE_BYTES) */
  maxMessageBytes?: number
  /** default 4 (see MAILBOX_CONCURRENCY) */
  maxConcurrentPerMailbox?: number
  now?: () => number
}

export interface GraphFault {
  /** which requests: method, a pattern on the path after /v1.0 (`/sendMail$/`), the mailbox addressed */
  method?: string
  path?: RegExp
  mailbox?: string
  /** answer with this status and Graph's error JSON (code and message default by status) */
  status?: number
  code?: string
  message?: string
  /** Retry-After in seconds on that answer */
  retryAfter?: number
  /** hold the request this long first; it counts against the mailbox's concurrency meanwhile */
  delayMs?: number
  /** cut the connection instead of answering */
  cut?: boolean
  /** how many requests it serves (default 1; Infinity for every one) */
  times?: number
}

export interface SentMail {
  mailbox: string
  /** the MIME as Graph received it (sendMail in MIME), or as Exchange composed it (JSON, drafts) */
  mime: Buffer
  via: 'mime' | 'json' | 'draft'
  recipients: string[]
  savedToSentItems: boolean
  at: Date
}

export interface GraphRequestRecord {
  method: string
  /** the path after /v1.0 (or /upload/… for upload URLs), without the query */
  path: string
  status: number
  mailbox?: string
  /** did it carry an Authorization header? (upload URLs must not) */
  authorization: boolean
  bytes: number
  /** when it arrived (ms since the epoch) */
  at: number
}

export interface GraphEmulator {
  /** https://127.0.0.1:<port> */
  url: string
  /** `${url}/` — what Mailbridge stores as microsoft_graph.endpoint */
  endpoint: string
  /** a mailbox with the well-known folders; `sendAs`: other From addresses it may use (SENDAS) */
  addMailbox(address: string, o?: { displayName?: string; sendAs?: string[] }): void
  /** a folder by display name under a parent (default: the top of the mailbox); returns its id */
  addFolder(mailbox: string, displayName: string, parent?: string): string
  /** a message arrives in a folder (default inbox); returns its id */
  deliver(mailbox: string, mime: Buffer | string, o?: { folder?: string; isRead?: boolean }): string
  /** the message as stored, or undefined */
  message(mailbox: string, id: string): { id: string; folder: string; isRead: boolean; isDraft: boolean; mime: Buffer } | undefined
  /** the ids of a folder's messages, in arrival order */
  folderMessages(mailbox: string, folder: string): string[]
  /** a message leaves the folder (deleted) */
  remove(mailbox: string, id: string): void
  /** every mail sent, in order */
  sent: SentMail[]
  requests: GraphRequestRecord[]
  /** the most requests one app had open at once on this mailbox */
  peakConcurrency(mailbox: string): number
  inject(fault: GraphFault): void
  clearFaults(): void
  /** every delta and skip token issued so far answers 410 from now on (DELTA_OVERVIEW: the token cache let it go) */
  expireDeltaTokens(): void
  /** New-ApplicationAccessPolicy -AccessRight RestrictAccess: this app may use only these mailboxes (POLICY) */
  restrictApp(appId: string, mailboxes: string[]): void
  close(): Promise<void>
}

/**
 * "the request size limit is generally around 4 MB", 413 beyond (a Microsoft answer on Q&A 1824204, pointing at
 * ERRORS' 413 Request Entity Too Large); UPLOAD: "up to 4 MB each time". Counted in binary megabytes, as Exchange does.
 */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024
/** UPLOAD, tip: "By default, this message size limit is 35 MB". */
export const MAX_MESSAGE_BYTES = 35 * 1024 * 1024
/** LARGE: "you can attach files up to 150 MB". */
const MAX_ATTACHMENT_BYTES = 150 * 1024 * 1024
/** THROTTLING (Outlook service limits): 4 concurrent requests per app per mailbox. */
export const MAILBOX_CONCURRENCY = 4
/** DELTA: without `Prefer: odata.maxpagesize` a page holds 10 messages (the page's examples; field reports agree). */
const DEFAULT_PAGE_SIZE = 10
const WELL_KNOWN = [
  ['inbox', 'Inbox'], ['drafts', 'Drafts'], ['sentitems', 'Sent Items'], ['deleteditems', 'Deleted Items'],
  ['junkemail', 'Junk Email'], ['archive', 'Archive'], ['outbox', 'Outbox'],
] as const
const TLS_DIR = new URL('./tls/', import.meta.url)

interface Folder { id: string; displayName: string; wellKnown?: string; parentId?: string }
interface Attachment { id: string; name: string; contentType: string; bytes: Buffer; isInline: boolean; contentId?: string }
interface Stored {
  id: string; folderId: string; mime: Buffer; isRead: boolean; isDraft: boolean; received: Date; modified: Date
  /** the change number of its last change: delta rounds return what changed after theirs */
  seq: number; attachments: Attachment[]
}
interface Mailbox {
  address: string; id: string; displayName: string; sendAs: Set<string>
  folders: Map<string, Folder>; messages: Map<string, Stored>
  /** id → folder and change number of messages that left a folder */
  removed: Map<string, { folderId: string; seq: number }>
}
interface Caller { kind: 'delegated' | 'app'; appId: string; user?: string; permissions: Set<string> }
interface Round {
  mailbox: string; folderId: string; me: boolean; ids: string[]; removed: string[]; endSeq: number
  select?: string[]; generation: number
}
interface UploadSession { mailbox: string; messageId: string; item: Omit<Attachment, 'id' | 'bytes'>; size: number; chunks: Buffer[]; received: number; expires: Date }

/** A Graph error: status, code, message (ERRORS, error resource type). */
class GraphError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly headers: Record<string, string> = {}) { super(message) }
}
const accessDenied = () => new GraphError(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.')
const badRequest = (message: string) => new GraphError(400, 'BadRequest', message)

export async function startGraphEmulator(opts: GraphEmulatorOptions): Promise<GraphEmulator> {
  const now = opts.now ?? Date.now
  const audience = (opts.audience ?? 'https://graph.microsoft.com').replace(/\/$/, '')
  const maxRequest = opts.maxRequestBytes ?? MAX_REQUEST_BYTES
  const maxMessage = opts.maxMessageBytes ?? MAX_MESSAGE_BYTES
  const maxConcurrent = opts.maxConcurrentPerMailbox ?? MAILBOX_CONCURRENCY
  const mailboxes = new Map<string, Mailbox>()
  const policies = new Map<string, Set<string>>() // appId → mailboxes it may use
  const rounds = new Map<string, Round>() // delta and skip tokens → their round
  const uploads = new Map<string, UploadSession>()
  const open = new Map<string, number>() // `${appId} ${mailbox}` → requests in progress
  const peaks = new Map<string, number>() // mailbox → the highest `open` of any app
  let faults: Array<GraphFault & { left: number }> = []
  let generation = 0
  let seq = 0
  const sent: SentMail[] = []
  const requests: GraphRequestRecord[] = []
  let url = ''

  const newId = () => `AAMkA${randomBytes(33).toString('base64url')}`
  const findMailbox = (key: string) => {
    const k = key.toLowerCase()
    return mailboxes.get(k) ?? [...mailboxes.values()].find((m) => m.id === key)
  }
  const mustMailbox = (address: string) => {
    const m = findMailbox(address)
    if (!m) throw new Error(`no mailbox ${address} in the Graph emulator`)
    return m
  }

  // ---------- folders and messages ----------

  /** A folder by id or well-known name (FOLDERS: "well-known folder names" such as inbox, sentitems). */
  function folderOf(m: Mailbox, key: string): Folder | undefined {
    const k = key.toLowerCase()
    return m.folders.get(key) ?? [...m.folders.values()].find((f) => f.wellKnown === k)
  }
  function store(m: Mailbox, folderId: string, mime: Buffer, o: { isRead?: boolean; isDraft?: boolean; attachments?: Attachment[] } = {}): Stored {
    const at = new Date(now())
    const msg: Stored = { id: newId(), folderId, mime, isRead: o.isRead ?? false, isDraft: o.isDraft ?? false, received: at, modified: at, seq: ++seq, attachments: o.attachments ?? [] }
    m.messages.set(msg.id, msg)
    return msg
  }
  function removeMessage(m: Mailbox, id: string) {
    const msg = m.messages.get(id)
    if (!msg) return
    m.messages.delete(id)
    m.removed.set(id, { folderId: msg.folderId, seq: ++seq })
  }
  const touch = (msg: Stored) => {
    msg.seq = ++seq
    msg.modified = new Date(now())
  }

  /** The message resource's common properties, or those `$select` names; `id` always (DELTA, $select). */
  function messageJson(m: Mailbox, msg: Stored, select?: string[]): Record<string, unknown> {
    const h = headerFields(msg.mime)
    const recipients = (name: string) => addresses(h, name).map((a) => ({ emailAddress: a }))
    const from = addresses(h, 'from')[0] ?? { name: m.displayName, address: m.address }
    const changeKey = `CQAAABYAAA${msg.seq}`
    const full: Record<string, unknown> = {
      '@odata.type': '#microsoft.graph.message',
      '@odata.etag': `W/"${changeKey}"`,
      id: msg.id,
      createdDateTime: iso(msg.received),
      lastModifiedDateTime: iso(msg.modified),
      changeKey,
      receivedDateTime: iso(msg.received),
      sentDateTime: iso(msg.received),
      hasAttachments: msg.attachments.length > 0 || /multipart\/mixed/i.test(first(h, 'content-type') ?? ''),
      internetMessageId: first(h, 'message-id') ?? null,
      subject: libmime.decodeWords(first(h, 'subject') ?? ''),
      isRead: msg.isRead,
      isDraft: msg.isDraft,
      parentFolderId: msg.folderId,
      from: { emailAddress: from },
      sender: { emailAddress: from },
      toRecipients: recipients('to'),
      ccRecipients: recipients('cc'),
      bccRecipients: recipients('bcc'),
    }
    if (!select) return full
    const out: Record<string, unknown> = { '@odata.type': full['@odata.type'], '@odata.etag': full['@odata.etag'], id: msg.id }
    for (const s of select) if (s in full) out[s] = full[s]
    return out
  }

  // ---------- tokens, mailboxes, permissions ----------

  /**
   * The bearer token, as Graph checks it: present, known, unexpired, for Graph's audience. Each failure is 401
   * InvalidAuthenticationToken (ERRORS: 401 "missing or not valid for the resource"; the texts are the ones Graph
   * answers, e.g. "Access token validation failure. Invalid audience." in microsoftgraph/microsoft-graph-docs#16208).
   */
  function authenticate(header: string | undefined): Caller {
    const m = /^Bearer\s+(\S+)$/i.exec(header ?? '')
    const fail = (message: string) => new GraphError(401, 'InvalidAuthenticationToken', message, { 'WWW-Authenticate': 'Bearer realm=""' })
    if (!m) throw fail('Access token is empty.')
    const info = opts.identity.tokenInfo(m[1] ?? '')
    if (!info || !info.active) throw fail('Access token validation failure.')
    if (info.exp * 1000 <= now()) throw fail('Lifetime validation failed, the token is expired.')
    if (info.aud.replace(/\/$/, '') !== audience) throw fail('Access token validation failure. Invalid audience.')
    if (info.user) return { kind: 'delegated', appId: info.appId ?? '', user: info.user.toLowerCase(), permissions: new Set(info.scp.map((s) => s.toLowerCase())) }
    return { kind: 'app', appId: info.appId ?? '', permissions: new Set(info.roles.map((s) => s.toLowerCase())) }
  }

  /** `/me` is the signed-in user; `/users/{id | userPrincipalName}` names a mailbox (SENDMAIL, HTTP request). */
  function resolveMailbox(caller: Caller, who: string): Mailbox {
    if (who === 'me') {
      // App-only tokens have no "me" (field reports: 400 "/me request is only valid with delegated authentication flow.").
      if (caller.kind === 'app') throw badRequest('/me request is only valid with delegated authentication flow.')
      who = caller.user ?? ''
    }
    const m = findMailbox(who)
    // A user without an Exchange Online mailbox (field reports: 404 MailboxNotEnabledForRESTAPI); an unknown user
    // is ErrorInvalidUser "The requested user '…' is invalid." (field reports).
    if (!m) {
      if (caller.kind === 'delegated' && who.toLowerCase() === caller.user) throw new GraphError(404, 'MailboxNotEnabledForRESTAPI', 'The mailbox is either inactive, soft-deleted, or is hosted on-premise.')
      throw new GraphError(404, 'ErrorInvalidUser', `The requested user '${who}' is invalid.`)
    }
    if (caller.kind === 'delegated' && m.address.toLowerCase() !== caller.user) {
      // Another user's mailbox needs the .Shared permissions and a mailbox permission (SENDAS); neither is modelled.
      throw accessDenied()
    }
    // POLICY, "Handling API errors": 403 ErrorAccessDenied "Access to OData is disabled." for a mailbox outside the
    // app's policy; the text with [RAOP] is what Exchange answers (microsoftgraph/microsoft-graph-docs#21382).
    const allowed = caller.kind === 'app' ? policies.get(caller.appId) : undefined
    if (allowed && !allowed.has(m.address.toLowerCase())) {
      throw new GraphError(403, 'ErrorAccessDenied', 'Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.')
    }
    return m
  }

  /** One of these delegated scopes (`scp`) or application roles (`roles`), by PERMISSIONS and each API's page. */
  function requirePermission(caller: Caller, ...any: string[]) {
    if (!any.some((p) => caller.permissions.has(p.toLowerCase()))) throw accessDenied()
  }
  const READ = ['Mail.ReadBasic', 'Mail.Read', 'Mail.ReadWrite', 'Mail.ReadBasic.All']

  // ---------- requests ----------

  const server = https.createServer({ key: readFileSync(new URL('key.pem', TLS_DIR)), cert: readFileSync(new URL('cert.pem', TLS_DIR)) }, (req, res) => {
    void handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) sendError(req, res, new GraphError(500, 'generalException', String(e)))
    })
  })

  async function handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const u = new URL(req.url ?? '/', url)
    const body = await readLimited(req, maxRequest)
    const record: GraphRequestRecord = { method: req.method ?? '', path: decodeURIComponent(u.pathname.replace(/^\/v1\.0/, '')), status: 0, authorization: req.headers.authorization !== undefined, bytes: body.size, at: now() }
    requests.push(record)
    res.on('finish', () => (record.status = res.statusCode))
    try {
      if (u.pathname.startsWith('/upload/')) return uploadChunk(req, res, u, body)
      if (!u.pathname.startsWith('/v1.0/')) throw new GraphError(400, 'BadRequest', `Invalid version: ${u.pathname.split('/')[1] ?? ''}`)
      const caller = authenticate(req.headers.authorization)
      const parts = u.pathname.slice('/v1.0/'.length).split('/').filter(Boolean).map((p) => decodeURIComponent(p))
      let who: string
      if (parts[0] === 'me') who = 'me'
      else if (parts[0] === 'users' && parts[1]) who = parts[1]
      else throw new GraphError(400, 'BadRequest', `Resource not found for the segment '${parts[0] ?? ''}'.`)
      const rest = parts.slice(who === 'me' ? 1 : 2)
      const m = resolveMailbox(caller, who)
      record.mailbox = m.address
      const key = `${caller.appId} ${m.address}`
      const busy = open.get(key) ?? 0
      if (busy >= maxConcurrent) {
        // THROTTLING: 429 with Retry-After; the code and text are Exchange's (field reports, e.g.
        // magodo/terraform-provider-outlook#21: ApplicationThrottled "Application is over its MailboxConcurrency limit.").
        throw new GraphError(429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.', { 'Retry-After': '1' })
      }
      open.set(key, busy + 1)
      peaks.set(m.address, Math.max(peaks.get(m.address) ?? 0, busy + 1))
      // A request stops counting when its answer is written (or its connection gone), whichever comes first.
      let done = false
      const release = () => {
        if (!done) open.set(key, (open.get(key) ?? 1) - 1)
        done = true
      }
      res.on('finish', release)
      res.on('close', release)
      const fault = takeFault(req.method ?? '', record.path, m.address)
      if (fault?.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs))
      if (fault?.cut) return void req.socket.destroy()
      if (fault?.status) throw faultError(fault)
      if (body.over) {
        throw new GraphError(413, 'RequestEntityTooLarge', `The request is larger than the limit of ${maxRequest} bytes.`)
      }
      await route(req, res, u, { caller, m, me: who === 'me', rest, body: body.buf })
    } catch (e) {
      if (e instanceof GraphError) return sendError(req, res, e)
      throw e
    }
  }

  interface Ctx { caller: Caller; m: Mailbox; me: boolean; rest: string[]; body: Buffer }

  async function route(req: http.IncomingMessage, res: http.ServerResponse, u: URL, c: Ctx) {
    const [a, b, cc, d, e] = c.rest
    const method = req.method ?? 'GET'
    if (method === 'POST' && a === 'sendMail' && !b) return sendMail(req, res, c)
    if (a === 'messages' && !b && method === 'POST') return createDraft(req, res, c, 'drafts')
    if (a === 'messages' && b) {
      const msg = c.m.messages.get(b)
      // The id of a message that is not (or no longer) there (field reports: 404 ErrorItemNotFound).
      if (!msg) throw new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.')
      if (!cc && method === 'GET') return (requirePermission(c.caller, ...READ), reply(res, 200, messageJson(c.m, msg, selectOf(u))))
      if (!cc && method === 'PATCH') return patchMessage(res, c, msg)
      if (!cc && method === 'DELETE') return (requirePermission(c.caller, 'Mail.ReadWrite'), removeMessage(c.m, msg.id), reply(res, 204))
      if (cc === '$value' && !d && method === 'GET') return mimeValue(res, c, msg)
      if (cc === 'send' && !d && method === 'POST') return sendDraft(res, c, msg)
      if (cc === 'attachments' && !d && method === 'POST') return addAttachment(res, c, msg)
      if (cc === 'attachments' && (d === 'createUploadSession' || d === 'microsoft.graph.createUploadSession') && !e && method === 'POST') return createUploadSession(res, c, msg)
    }
    if (a === 'mailFolders' && method === 'GET') {
      if (!b) return listFolders(res, c, u, undefined)
      const folder = folderOf(c.m, b)
      if (!folder) throw new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.')
      if (!cc) return (requirePermission(c.caller, ...READ), reply(res, 200, folderJson(c.m, folder)))
      if (cc === 'childFolders' && !d) return listFolders(res, c, u, folder.id)
      if (cc === 'messages' && (d === 'delta' || d === 'delta()' || d === 'microsoft.graph.delta') && !e) return delta(req, res, c, u, folder)
    }
    if (a === 'mailFolders' && b && cc === 'messages' && !d && method === 'POST') return createDraft(req, res, c, b)
    throw new GraphError(400, 'BadRequest', `Resource not found for the segment '${c.rest.at(-1) ?? ''}'.`)
  }

  // ---------- send ----------

  /**
   * sendMail (SENDMAIL): JSON `{message, saveToSentItems}` with Content-Type application/json, or the MIME
   * base64-encoded with Content-Type text/plain (MIME). 202 Accepted, nothing in the body; a copy in Sent Items
   * unless saveToSentItems is false.
   */
  async function sendMail(req: http.IncomingMessage, res: http.ServerResponse, c: Ctx) {
    requirePermission(c.caller, 'Mail.Send')
    if (isMime(req)) {
      const mime = decodeMime(c.body)
      submit(c.m, mime, 'mime', true)
      return reply(res, 202)
    }
    const payload = parseJson(c.body)
    const message = payload.message
    if (!message || typeof message !== 'object') throw new GraphError(400, 'ErrorInvalidParameter', "The value of the parameter 'Message' is empty.")
    const mime = await composeJson(c.m, message as Record<string, unknown>)
    submit(c.m, mime, 'json', payload.saveToSentItems !== false, jsonRecipients(message as Record<string, unknown>))
    reply(res, 202)
  }

  /**
   * What Exchange checks before it takes a message: recipients that resolve (ErrorInvalidRecipients, field reports:
   * "At least one recipient isn't valid., …"), a From the mailbox may use (SENDAS: 403 ErrorSendAsDenied), the size
   * (UPLOAD's 35 MB; field reports: ErrorMessageSizeExceeded). Then the copy in Sent Items.
   */
  function submit(m: Mailbox, mime: Buffer, via: SentMail['via'], save: boolean, recipients?: string[]) {
    const h = headerFields(mime)
    const rcpts = recipients ?? ['to', 'cc', 'bcc'].flatMap((n) => addresses(h, n).map((a) => a.address))
    if (!rcpts.length) throw new GraphError(400, 'ErrorInvalidRecipients', "At least one recipient is not valid., A message can't be sent because it contains no recipients.")
    const bad = rcpts.find((r) => !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(r))
    if (bad !== undefined) throw new GraphError(400, 'ErrorInvalidRecipients', `At least one recipient isn't valid., Recipient "${bad}" isn't resolved. All recipients must be resolved before a message can be submitted.`)
    const from = addresses(h, 'from')[0]?.address.toLowerCase()
    if (from && from !== m.address.toLowerCase() && !m.sendAs.has(from)) {
      throw new GraphError(403, 'ErrorSendAsDenied', 'The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.')
    }
    if (mime.length > maxMessage) throw new GraphError(400, 'ErrorMessageSizeExceeded', 'The message exceeds the maximum supported size., Cannot save changes made to an item to store.')
    if (save) store(m, folderOf(m, 'sentitems')!.id, mime, { isRead: true })
    sent.push({ mailbox: m.address, mime, via, recipients: rcpts, savedToSentItems: save, at: new Date(now()) })
  }

  // ---------- drafts, attachments, upload sessions ----------

  /** CREATE: a draft from JSON or from base64 MIME (MIME), in Drafts or the folder named; 201 with the message. */
  async function createDraft(req: http.IncomingMessage, res: http.ServerResponse, c: Ctx, folderKey: string) {
    requirePermission(c.caller, 'Mail.ReadWrite')
    const folder = folderOf(c.m, folderKey)
    if (!folder) throw new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.')
    const mime = isMime(req) ? decodeMime(c.body) : await composeJson(c.m, parseJson(c.body))
    const msg = store(c.m, folder.id, mime, { isRead: true, isDraft: true })
    reply(res, 201, messageJson(c.m, msg))
  }

  /** SEND: a draft goes out with its attachments, then sits in Sent Items (its copy is the one Sent Items keeps). */
  function sendDraft(res: http.ServerResponse, c: Ctx, msg: Stored) {
    requirePermission(c.caller, 'Mail.Send')
    if (!msg.isDraft) throw new GraphError(400, 'ErrorInvalidOperation', 'Only draft messages can be sent.')
    const mime = withAttachments(msg.mime, msg.attachments)
    submit(c.m, mime, 'draft', false)
    removeMessage(c.m, msg.id)
    store(c.m, folderOf(c.m, 'sentitems')!.id, mime, { isRead: true })
    sent.at(-1)!.savedToSentItems = true
    reply(res, 202)
  }

  /** ATTACH: a fileAttachment with its bytes in contentBytes; "under 3 MB" — the 4 MB request limit holds it. */
  function addAttachment(res: http.ServerResponse, c: Ctx, msg: Stored) {
    requirePermission(c.caller, 'Mail.ReadWrite')
    const a = parseJson(c.body)
    if (a['@odata.type'] !== '#microsoft.graph.fileAttachment') throw new GraphError(400, 'ErrorInvalidParameter', "The attachment's @odata.type must be #microsoft.graph.fileAttachment.")
    if (typeof a.name !== 'string' || typeof a.contentBytes !== 'string') throw new GraphError(400, 'ErrorInvalidParameter', 'A file attachment needs name and contentBytes.')
    const att: Attachment = { id: newId(), name: a.name, contentType: typeof a.contentType === 'string' ? a.contentType : 'application/octet-stream', bytes: Buffer.from(a.contentBytes, 'base64'), isInline: a.isInline === true, contentId: typeof a.contentId === 'string' ? a.contentId : undefined }
    msg.attachments.push(att)
    touch(msg)
    reply(res, 201, attachmentJson(att))
  }

  /**
   * UPLOAD: `{AttachmentItem: {attachmentType: "file", name, size}}` → 201 with an opaque, pre-authenticated
   * uploadUrl, its expirationDateTime and nextExpectedRanges ["0-"]; LARGE: files up to 150 MB.
   */
  function createUploadSession(res: http.ServerResponse, c: Ctx, msg: Stored) {
    requirePermission(c.caller, 'Mail.ReadWrite')
    const item = parseJson(c.body).AttachmentItem as Record<string, unknown> | undefined
    if (!item || item.attachmentType !== 'file' || typeof item.name !== 'string' || typeof item.size !== 'number' || !Number.isInteger(item.size) || item.size <= 0) {
      throw new GraphError(400, 'ErrorInvalidParameter', 'AttachmentItem needs attachmentType "file", a name and a size in bytes.')
    }
    if (item.size > MAX_ATTACHMENT_BYTES) throw new GraphError(400, 'ErrorAttachmentSizeShouldNotBeLessThanMinimumSize', `The attachment size ${item.size} is over the limit of ${MAX_ATTACHMENT_BYTES} bytes.`)
    const sid = randomBytes(24).toString('base64url')
    const expires = new Date(now() + 15 * 60_000)
    uploads.set(sid, {
      mailbox: c.m.address, messageId: msg.id, size: item.size, chunks: [], received: 0, expires,
      item: { name: item.name, contentType: typeof item.contentType === 'string' ? item.contentType : 'application/octet-stream', isInline: item.isInline === true, contentId: typeof item.contentId === 'string' ? item.contentId : undefined },
    })
    // The real URL is on outlook.office.com with an authtoken parameter (LARGE, step 1); here it is on this server.
    reply(res, 201, { '@odata.context': `${url}/v1.0/$metadata#microsoft.graph.uploadSession`, uploadUrl: `${url}/upload/${sid}?authtoken=${randomBytes(32).toString('base64url')}`, expirationDateTime: iso(expires), nextExpectedRanges: ['0-'] })
  }

  /**
   * LARGE, step 2: sequential PUTs of byte ranges with Content-Range and Content-Length, "up to 4 MB each time"
   * (UPLOAD); "Don't specify an Authorization request header": the URL is pre-authenticated, so the emulator refuses
   * a request that sends one (a client must not hand its Graph token to the upload host). 200 with the next expected
   * range until the last range, which gets 201 Created with the attachment's URL in Location. A range that is not the
   * next one is ERRORS' 416 invalidRange.
   */
  function uploadChunk(req: http.IncomingMessage, res: http.ServerResponse, u: URL, body: { buf: Buffer; over: boolean; size: number }) {
    const s = uploads.get(u.pathname.slice('/upload/'.length))
    if (!s || req.method !== 'PUT') throw new GraphError(404, 'ErrorItemNotFound', 'The upload session was not found.')
    if (req.headers.authorization !== undefined) throw new GraphError(401, 'InvalidAuthenticationToken', 'The upload URL is pre-authenticated: send no Authorization header.')
    if (s.expires.getTime() <= now()) throw new GraphError(404, 'ErrorItemNotFound', 'The upload session has expired.')
    if (body.over) throw new GraphError(413, 'RequestEntityTooLarge', `A range may be at most ${maxRequest} bytes.`)
    const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(req.headers['content-range'] ?? '')
    if (!range) throw new GraphError(400, 'invalidRequest', 'The Content-Range header is missing or malformed.')
    const [start, end, total] = [Number(range[1]), Number(range[2]), Number(range[3])]
    if (total !== s.size || start !== s.received || end < start || end >= total) throw new GraphError(416, 'invalidRange', 'The specified byte range is invalid or unavailable.')
    if (body.buf.length !== end - start + 1 || Number(req.headers['content-length']) !== body.buf.length) throw new GraphError(400, 'invalidRequest', 'Content-Length does not match the range in Content-Range.')
    s.chunks.push(body.buf)
    s.received = end + 1
    if (s.received < s.size) return reply(res, 200, { expirationDateTime: iso(s.expires), nextExpectedRanges: [String(s.received)] })
    uploads.delete(u.pathname.slice('/upload/'.length))
    const m = mustMailbox(s.mailbox)
    const msg = m.messages.get(s.messageId)
    if (!msg) throw new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.')
    const att: Attachment = { id: newId(), ...s.item, bytes: Buffer.concat(s.chunks) }
    msg.attachments.push(att)
    touch(msg)
    res.writeHead(201, { Location: `${url}/v1.0/users('${m.id}')/messages('${msg.id}')/attachments('${att.id}')`, 'request-id': randomUUID(), 'Content-Length': '0' })
    res.end()
  }

  // ---------- read: $value, isRead, folders, delta ----------

  /** VALUE: `GET /messages/{id}/$value` answers the MIME (Mail.Read, or Mail.ReadWrite). */
  function mimeValue(res: http.ServerResponse, c: Ctx, msg: Stored) {
    requirePermission(c.caller, 'Mail.Read', 'Mail.ReadWrite')
    const mime = withAttachments(msg.mime, msg.attachments)
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': String(mime.length), 'request-id': randomUUID() })
    res.end(mime)
  }

  /** UPDATE: PATCH with the writable properties (isRead here) → 200 with the message (Mail.ReadWrite). */
  function patchMessage(res: http.ServerResponse, c: Ctx, msg: Stored) {
    requirePermission(c.caller, 'Mail.ReadWrite')
    const p = parseJson(c.body)
    if ('isRead' in p) {
      if (typeof p.isRead !== 'boolean') throw new GraphError(400, 'BadRequest', "Cannot convert the literal to the expected type 'Edm.Boolean'.")
      if (msg.isRead !== p.isRead) {
        msg.isRead = p.isRead
        touch(msg)
      }
    }
    reply(res, 200, messageJson(c.m, msg))
  }

  function folderJson(m: Mailbox, f: Folder) {
    const inside = [...m.messages.values()].filter((x) => x.folderId === f.id)
    return {
      id: f.id, displayName: f.displayName, parentFolderId: f.parentId ?? m.id,
      childFolderCount: [...m.folders.values()].filter((x) => x.parentId === f.id).length,
      unreadItemCount: inside.filter((x) => !x.isRead).length, totalItemCount: inside.length, isHidden: false,
    }
  }

  /** FOLDERS: the top-level folders or a folder's childFolders, with `$filter=displayName eq '…'` and `$top`. */
  function listFolders(res: http.ServerResponse, c: Ctx, u: URL, parentId: string | undefined) {
    requirePermission(c.caller, ...READ)
    let list = [...c.m.folders.values()].filter((f) => f.parentId === parentId)
    const filter = u.searchParams.get('$filter')
    if (filter !== null) {
      const eq = /^\s*displayName\s+eq\s+'((?:[^']|'')*)'\s*$/i.exec(filter)
      if (!eq) throw new GraphError(400, 'ErrorInvalidUrlQueryFilter', 'The query filter contains one or more invalid nodes.')
      const name = (eq[1] ?? '').replace(/''/g, "'")
      list = list.filter((f) => f.displayName === name)
    }
    const top = Number(u.searchParams.get('$top') ?? 10)
    reply(res, 200, { '@odata.context': `${url}/v1.0/$metadata#mailFolders`, value: list.slice(0, top).map((f) => folderJson(c.m, f)) })
  }

  /**
   * DELTA: a round of GETs. The first one (no token) lists the folder's messages; each page ends with
   * `@odata.nextLink` (a `$skiptoken`) until the last, which ends with `@odata.deltaLink` (a `$deltatoken`); a round
   * started from a deltaLink returns what changed since: added or changed messages, and `@removed` entries for those
   * that left. Query parameters are given once and "encoded into the token" of the links; `Prefer:
   * odata.maxpagesize` sets the page size. A token the service no longer has answers 410 Gone (DELTA_OVERVIEW,
   * synchronization reset; ERRORS' code syncStateNotFound: "The delta token is expired and data must be
   * synchronized again").
   */
  function delta(req: http.IncomingMessage, res: http.ServerResponse, c: Ctx, u: URL, folder: Folder) {
    requirePermission(c.caller, ...READ)
    const skip = u.searchParams.get('$skiptoken') ?? u.searchParams.get('$skipToken')
    const dtoken = u.searchParams.get('$deltatoken') ?? u.searchParams.get('$deltaToken')
    const token = skip ?? dtoken
    let round: Round
    if (token !== null) {
      const known = rounds.get(token)
      if (!known || known.generation < generation || known.mailbox !== c.m.address || known.folderId !== folder.id) {
        throw new GraphError(410, 'syncStateNotFound', 'The sync state generation is not found. The delta token is expired and data must be synchronized again.')
      }
      round = skip !== null ? known : startRound(c, folder, known.endSeq, known)
      if (skip !== null) rounds.delete(token) // a skip token moves on with its page
    } else {
      const select = u.searchParams.get('$select')
      round = startRound(c, folder, 0, { select: select ? select.split(',').map((s) => s.trim()) : undefined })
    }
    // The preference holds for the request that carries it (RFC 7240 §2; the SDKs send it on every page).
    const prefer = /odata\.maxpagesize=(\d+)/i.exec(String(req.headers.prefer ?? ''))
    const size = prefer ? Math.max(1, Number(prefer[1])) : DEFAULT_PAGE_SIZE
    const value: Array<Record<string, unknown>> = []
    while (value.length < size && (round.ids.length || round.removed.length)) {
      const id = round.ids.shift()
      if (id !== undefined) {
        const msg = c.m.messages.get(id)
        if (msg && msg.folderId === folder.id) value.push(messageJson(c.m, msg, round.select))
      } else {
        value.push({ '@odata.type': '#microsoft.graph.message', id: round.removed.shift(), '@removed': { reason: 'deleted' } })
      }
    }
    const base = `${url}/v1.0/${c.me ? 'me' : `users/${encodeURIComponent(c.m.address)}`}/mailFolders/${encodeURIComponent(folder.id)}/messages/delta`
    const next = randomBytes(24).toString('base64url')
    const headers: Record<string, string> = prefer ? { 'Preference-Applied': `odata.maxpagesize=${size}` } : {}
    if (round.ids.length || round.removed.length) {
      rounds.set(next, round)
      return reply(res, 200, { '@odata.context': `${url}/v1.0/$metadata#Collection(message)`, '@odata.nextLink': `${base}?$skiptoken=${next}`, value }, headers)
    }
    rounds.set(next, { ...round, ids: [], removed: [] })
    reply(res, 200, { '@odata.context': `${url}/v1.0/$metadata#Collection(message)`, '@odata.deltaLink': `${base}?$deltatoken=${next}`, value }, headers)
  }

  /** What a round returns: the folder's messages changed after `since` (all, for 0), and those that left it. */
  function startRound(c: Ctx, folder: Folder, since: number, from: Pick<Round, 'select'>): Round {
    const ids = [...c.m.messages.values()].filter((x) => x.folderId === folder.id && x.seq > since).sort((x, y) => x.seq - y.seq).map((x) => x.id)
    const removed = since ? [...c.m.removed].filter(([, r]) => r.folderId === folder.id && r.seq > since).map(([id]) => id) : []
    return { mailbox: c.m.address, folderId: folder.id, me: c.me, ids, removed, endSeq: seq, select: from.select, generation }
  }

  // ---------- faults, replies ----------

  function takeFault(method: string, path: string, mailbox: string) {
    const f = faults.find((x) => x.left > 0 && (!x.method || x.method === method) && (!x.path || x.path.test(path)) && (!x.mailbox || x.mailbox.toLowerCase() === mailbox.toLowerCase()))
    if (f) f.left--
    faults = faults.filter((x) => x.left > 0)
    return f
  }
  function faultError(f: GraphFault): GraphError {
    const status = f.status ?? 500
    // THROTTLING: 429 TooManyRequests with Retry-After; 503 serviceNotAvailable and 504 likewise (ERRORS).
    const defaults: Record<number, [string, string]> = {
      429: ['TooManyRequests', 'Too many requests.'],
      503: ['serviceNotAvailable', 'The service is temporarily unavailable for maintenance or is overloaded.'],
      504: ['UnknownError', 'The server did not answer in time.'],
    }
    const [code, message] = defaults[status] ?? ['generalException', 'An unspecified error has occurred.']
    return new GraphError(status, f.code ?? code, f.message ?? message, f.retryAfter !== undefined ? { 'Retry-After': String(f.retryAfter) } : {})
  }

  /** Every answer carries request-id and client-request-id (ERRORS, innerError; echoed when the client sent one). */
  function reply(res: http.ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}) {
    const requestId = randomUUID()
    const text = body === undefined ? '' : JSON.stringify(body)
    res.writeHead(status, { ...(text ? { 'Content-Type': 'application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8' } : {}), 'Content-Length': String(Buffer.byteLength(text)), 'request-id': requestId, 'client-request-id': requestId, ...headers })
    res.end(text)
  }

  /** ERRORS, error resource type: `{error: {code, message, innerError: {date, request-id, client-request-id}}}`. */
  function sendError(req: http.IncomingMessage, res: http.ServerResponse, e: GraphError) {
    const requestId = randomUUID()
    const clientRequestId = typeof req.headers['client-request-id'] === 'string' ? req.headers['client-request-id'] : requestId
    const text = JSON.stringify({ error: { code: e.code, message: e.message, innerError: { date: new Date(now()).toISOString().replace(/\.\d+Z$/, ''), 'request-id': requestId, 'client-request-id': clientRequestId } } })
    res.writeHead(e.status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(Buffer.byteLength(text)), 'request-id': requestId, 'client-request-id': clientRequestId, ...e.headers })
    res.end(text)
  }

  const port = await listen(server)
  url = `https://127.0.0.1:${port}`

  return {
    url,
    endpoint: `${url}/`,
    sent,
    requests,
    addMailbox(address, o = {}) {
      const m: Mailbox = { address, id: randomUUID(), displayName: o.displayName ?? address.split('@')[0] ?? address, sendAs: new Set((o.sendAs ?? []).map((s) => s.toLowerCase())), folders: new Map(), messages: new Map(), removed: new Map() }
      for (const [wellKnown, displayName] of WELL_KNOWN) {
        const id = newId()
        m.folders.set(id, { id, displayName, wellKnown })
      }
      mailboxes.set(address.toLowerCase(), m)
    },
    addFolder(mailbox, displayName, parent) {
      const m = mustMailbox(mailbox)
      const parentId = parent === undefined ? undefined : folderOf(m, parent)?.id
      if (parent !== undefined && !parentId) throw new Error(`no folder ${parent} in ${mailbox}`)
      const id = newId()
      m.folders.set(id, { id, displayName, parentId })
      return id
    },
    deliver(mailbox, mime, o = {}) {
      const m = mustMailbox(mailbox)
      const folder = folderOf(m, o.folder ?? 'inbox')
      if (!folder) throw new Error(`no folder ${o.folder} in ${mailbox}`)
      return store(m, folder.id, Buffer.isBuffer(mime) ? mime : Buffer.from(mime), { isRead: o.isRead }).id
    },
    message(mailbox, id) {
      const msg = mustMailbox(mailbox).messages.get(id)
      return msg && { id: msg.id, folder: msg.folderId, isRead: msg.isRead, isDraft: msg.isDraft, mime: withAttachments(msg.mime, msg.attachments) }
    },
    folderMessages(mailbox, folder) {
      const m = mustMailbox(mailbox)
      const f = folderOf(m, folder)
      return [...m.messages.values()].filter((x) => x.folderId === f?.id).map((x) => x.id)
    },
    remove: (mailbox, id) => removeMessage(mustMailbox(mailbox), id),
    peakConcurrency: (mailbox) => peaks.get(mustMailbox(mailbox).address) ?? 0,
    inject(fault) {
      faults.push({ ...fault, left: fault.times ?? 1 })
    },
    clearFaults() {
      faults = []
    },
    expireDeltaTokens() {
      generation++
    },
    restrictApp(appId, list) {
      policies.set(appId, new Set(list.map((x) => x.toLowerCase())))
    },
    async close() {
      await new Promise<void>((r) => {
        server.close(() => r())
        server.closeAllConnections()
      })
    },
  }
}

/** An identity emulator and a Graph emulator that trusts its tokens, with these mailboxes: what most tests need. */
export async function startGraphWorld(mailboxes: string[]): Promise<{ id: Emulator; g: GraphEmulator; close: () => Promise<void> }> {
  const id = await startIdentityEmulator()
  const g = await startGraphEmulator({ identity: id })
  for (const m of mailboxes) g.addMailbox(m)
  return { id, g, close: async () => void (await Promise.all([g.close(), id.close()])) }
}

// ---------- MIME: what Exchange reads of a message ----------

/** MIME: "Content-Type: text/plain to use MIME format in the request body". */
const isMime = (req: http.IncomingMessage) => /^text\/plain\b/i.test(req.headers['content-type'] ?? '')

/** The body is the MIME base64-encoded; anything else is SENDMAIL's 400 "Invalid base64 string for MIME content." */
function decodeMime(body: Buffer): Buffer {
  const text = body.toString('latin1').replace(/[\r\n]/g, '')
  if (!text.length || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw new GraphError(400, 'ErrorMimeContentInvalidBase64String', 'Invalid base64 string for MIME content.')
  }
  return Buffer.from(text, 'base64')
}

function parseJson(body: Buffer): Record<string, unknown> {
  // Graph's words for a body that is no JSON object (field reports of the same text).
  const fail = () => new GraphError(400, 'BadRequest', 'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.')
  try {
    const v: unknown = JSON.parse(body.toString('utf8'))
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw fail()
    return v as Record<string, unknown>
  } catch {
    throw fail()
  }
}

type Header = Map<string, string[]>

/** The header block (RFC 5322 §2.2: folded lines unfolded), field names lowercased. */
function headerFields(mime: Buffer): Header {
  const end = mime.indexOf('\r\n\r\n')
  const head = mime.subarray(0, end < 0 ? Math.min(mime.length, 256 * 1024) : end).toString('latin1').replace(/\r?\n[ \t]+/g, ' ')
  const out: Header = new Map()
  for (const line of head.split(/\r?\n/)) {
    const i = line.indexOf(':')
    if (i <= 0) continue
    const name = line.slice(0, i).trim().toLowerCase()
    out.set(name, [...(out.get(name) ?? []), line.slice(i + 1).trim()])
  }
  return out
}
const first = (h: Header, name: string) => h.get(name)?.[0]

function addresses(h: Header, name: string): Array<{ name: string; address: string }> {
  const flat = (list: ReturnType<typeof addressparser>): Array<{ name: string; address: string }> =>
    list.flatMap((a) => ('group' in a && a.group ? flat(a.group) : [{ name: libmime.decodeWords(a.name ?? ''), address: 'address' in a ? a.address ?? '' : '' }]))
  return (h.get(name) ?? []).flatMap((v) => flat(addressparser(v))).filter((a) => a.address)
}

/** A JSON message (the message resource) as Exchange would put it on the wire. */
async function composeJson(m: Mailbox, msg: Record<string, unknown>): Promise<Buffer> {
  const list = (v: unknown) => (Array.isArray(v) ? v : []).map((r?: { emailAddress?: { name?: string; address?: string } }) => ({ name: r?.emailAddress?.name ?? '', address: r?.emailAddress?.address ?? '' }))
  const from = list([msg.from])[0]
  const body = (msg.body ?? {}) as { contentType?: string; content?: string }
  const html = String(body.contentType ?? '').toLowerCase() === 'html'
  const headers = (Array.isArray(msg.internetMessageHeaders) ? msg.internetMessageHeaders : []) as Array<{ name: string; value: string }>
  const attachments = (Array.isArray(msg.attachments) ? msg.attachments : []) as Array<Record<string, string>>
  const composer = new MailComposer({
    from: from?.address ? from : { name: m.displayName, address: m.address },
    to: list(msg.toRecipients), cc: list(msg.ccRecipients), bcc: list(msg.bccRecipients), replyTo: list(msg.replyTo),
    subject: typeof msg.subject === 'string' ? msg.subject : '',
    ...(html ? { html: body.content ?? '' } : { text: body.content ?? '' }),
    messageId: typeof msg.internetMessageId === 'string' ? msg.internetMessageId : undefined,
    headers: Object.fromEntries(headers.map((x) => [x.name, x.value])),
    attachments: attachments.map((a) => ({ filename: a.name, contentType: a.contentType, content: Buffer.from(a.contentBytes ?? '', 'base64'), cid: a.contentId })),
  })
  return composer.compile().build()
}

function jsonRecipients(msg: Record<string, unknown>): string[] {
  return ['toRecipients', 'ccRecipients', 'bccRecipients'].flatMap((k) => (Array.isArray(msg[k]) ? msg[k] : []).map((r: { emailAddress?: { address?: string } }) => r.emailAddress?.address ?? ''))
}

/**
 * A draft with attachments added through Graph, as one MIME message: the draft's header block on top, its body as
 * the first part of a multipart/mixed, each attachment a base64 part (RFC 2046 §5.1.3, RFC 2045 §6.8).
 */
function withAttachments(mime: Buffer, atts: Attachment[]): Buffer {
  if (!atts.length) return mime
  const end = mime.indexOf('\r\n\r\n')
  const head = mime.subarray(0, end < 0 ? mime.length : end).toString('latin1')
  const body = end < 0 ? Buffer.alloc(0) : mime.subarray(end + 4)
  const fields = head.split(/\r\n(?![ \t])/)
  const isContent = (f: string) => /^(content-|mime-version:)/i.test(f)
  const boundary = `----=_emulator_${randomBytes(12).toString('hex')}`
  const parts: Buffer[] = [
    Buffer.from(`${fields.filter((f) => !isContent(f)).join('\r\n')}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="${boundary}"\r\n\r\n--${boundary}\r\n${fields.filter((f) => /^content-/i.test(f)).join('\r\n') || 'Content-Type: text/plain'}\r\n\r\n`, 'latin1'),
    body,
  ]
  for (const a of atts) {
    const name = a.name.replace(/["\r\n\\]/g, '_')
    const lines = a.bytes.toString('base64').replace(/.{76}/g, '$&\r\n')
    parts.push(Buffer.from(`\r\n--${boundary}\r\nContent-Type: ${a.contentType}; name="${name}"\r\nContent-Disposition: ${a.isInline ? 'inline' : 'attachment'}; filename="${name}"\r\n${a.contentId ? `Content-ID: <${a.contentId}>\r\n` : ''}Content-Transfer-Encoding: base64\r\n\r\n${lines}`, 'latin1'))
  }
  parts.push(Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1'))
  return Buffer.concat(parts)
}

function attachmentJson(a: Attachment) {
  return { '@odata.type': '#microsoft.graph.fileAttachment', id: a.id, name: a.name, contentType: a.contentType, size: a.bytes.length, isInline: a.isInline, contentId: a.contentId ?? null }
}

const iso = (d: Date) => d.toISOString().replace(/\.\d+Z$/, 'Z')

function selectOf(u: URL) {
  const s = u.searchParams.get('$select')
  return s ? s.split(',').map((x) => x.trim()) : undefined
}

/** The whole body, but no more than `limit` bytes kept: the rest is read and dropped so a 413 can still be sent. */
function readLimited(req: http.IncomingMessage, limit: number) {
  return new Promise<{ buf: Buffer; over: boolean; size: number }>((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size <= limit) chunks.push(c)
    })
    req.on('end', () => resolve({ buf: Buffer.concat(chunks), over: size > limit, size }))
    req.on('error', reject)
  })
}
