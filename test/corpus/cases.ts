/**
 * The bad-input corpus: cases generated from the live OpenAPI document (every body field, every path id, every
 * paging parameter) plus hand-written families (header injection, addresses, base64, sizes, attachment names,
 * settings and webhooks rules). Each case says what a helpful answer must name: the field or the cause.
 */
import { jsonSizeOf } from '../../src/outgoing/mail-size.ts'

export interface Case {
  name: string
  method: string
  /** The path (with query); a function when the case needs something made first (a fresh OAuth state). */
  path: string | (() => Promise<string>)
  /** A raw body: a string is sent as is, anything else as JSON. */
  body?: unknown
  contentType?: string
  /** Replaces the API token; null sends no Authorization header. */
  authorization?: string | null
  /** An exact status when one is specified by the contract; otherwise any 4xx. */
  status?: number
  /** What the message must name: the field or the cause. */
  cause: RegExp
  /** The OAuth callback answers a browser: an HTML page. */
  html?: boolean
}

export interface Fixtures {
  outgoingId: string
  incomingId: string
  webhookId: string
  relayUserId: string
  mailId: string
  /** A sent-out-of-reach mail: cancelled, so retry and cancel are refused. */
  cancelledMailId: string
  maxMailBytes: number
  /** Start Connect and return a fresh, unused state. */
  freshState(): Promise<string>
  /** A state that was already used by a successful callback. */
  usedState: string
  /** A state whose 10 minutes are over. */
  expiredState: string
  /** The query of Microsoft's real "No" answer on the consent page (error=access_denied with its description). */
  refusedQuery: string
}

type Schema = {
  type?: string | string[]
  properties?: Record<string, Schema>
  items?: Schema
  anyOf?: Schema[]
  maxLength?: number
  minLength?: number
  minimum?: number
  maximum?: number
  maxItems?: number
  enum?: unknown[]
  const?: unknown
  patternProperties?: Record<string, Schema>
}
interface Operation {
  parameters?: Array<{ in: string; name: string; schema: Schema }>
  requestBody?: { content: Record<string, { schema: Schema }> }
}
export interface OpenApi {
  paths: Record<string, Record<string, Operation>>
}

/** A valid body per JSON endpoint, so that a case breaks exactly one thing. */
const validBodies: Record<string, Record<string, unknown>> = {
  'POST /api/v1/mail': { to: ['bob@fabrikam.com'], subject: 'Hello', text: 'Hi Bob' },
  'PATCH /api/v1/settings': { external_email_servers: true },
  'PUT /api/v1/parameters/{key}': { value: 'corpus' },
  'POST /api/v1/outgoing-servers': { name: 'Corpus', authentication: 'none', host: 'smtp.example.com', port: 25, encryption: 'none' },
  'PATCH /api/v1/outgoing-servers/{id}': { name: 'Outlook' },
  'POST /api/v1/incoming-servers': { name: 'Corpus', username: 'alice@contoso.com' },
  'PATCH /api/v1/incoming-servers/{id}': { name: 'Inbox' },
  'POST /api/v1/webhooks': { url: 'https://app.example.com/hook', events: ['mail.sent'] },
  'PATCH /api/v1/webhooks/{id}': { url: 'https://app.example.com/hook' },
  'POST /api/v1/relay-users': { username: 'corpus', password: 'corpus-password-1' },
}

const kinds = (s: Schema): string[] => {
  if (s.anyOf) return s.anyOf.flatMap(kinds)
  if (s.const !== undefined) return [typeof s.const]
  if (s.enum) return [...new Set(s.enum.map((v) => typeof v))]
  return Array.isArray(s.type) ? s.type : s.type ? [s.type] : []
}

/** Values of a JSON type other than the ones the schema allows (no coercion is expected: a JSON API is typed). */
function wrongValues(s: Schema): unknown[] {
  const allowed = new Set(kinds(s).map((k) => (k === 'integer' ? 'number' : k)))
  const candidates: Array<[string, unknown]> = [
    ['string', 'not-a-number'],
    ['number', 42],
    ['number', 1.5],
    ['boolean', true],
    ['object', { nested: 1 }],
    ['array', ['x']],
    ['null', null],
  ]
  const out = candidates.filter(([k]) => !allowed.has(k)).map(([, v]) => v)
  // 1.5 is wrong for an integer even though it is a number.
  if (kinds(s).includes('integer') && !kinds(s).includes('number')) out.push(1.5)
  return [...new Set(out)]
}

const fill = (path: string, f: Fixtures): string =>
  path.replace('{id}', path.includes('/mail/') ? f.mailId : path.includes('outgoing') ? f.outgoingId : path.includes('incoming') ? f.incomingId : path.includes('webhooks') ? f.webhookId : f.relayUserId).replace('{key}', 'corpus.key')

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** Every body field of every JSON endpoint: wrong types, too long, out of range, null where null is not allowed. */
function bodyFieldCases(api: OpenApi, f: Fixtures): Case[] {
  const cases: Case[] = []
  for (const [key, base] of Object.entries(validBodies)) {
    const [method, path] = key.split(' ') as [string, string]
    const op = api.paths[path]?.[method.toLowerCase()]
    const schema = op?.requestBody?.content['application/json']?.schema
    if (!schema?.properties) throw new Error(`the OpenAPI document has no JSON body for ${key}`)
    for (const [field, fs] of Object.entries(schema.properties)) {
      const at = (value: unknown, why: string, status?: number): Case => ({
        name: `${key}: ${field} ${why}`,
        method,
        path: fill(path, f),
        body: { ...base, [field]: value },
        cause: new RegExp(`\\b${esc(field)}\\b`),
        status,
      })
      for (const v of wrongValues(fs)) cases.push(at(v, `is ${JSON.stringify(v)}`, 400))
      const str = fs.anyOf?.find((s) => s.type === 'string') ?? (fs.type === 'string' ? fs : undefined)
      if (str?.maxLength !== undefined) cases.push(at('x'.repeat(str.maxLength + 1), `is ${str.maxLength + 1} characters`, 400))
      if (str?.minLength) cases.push(at('', 'is empty', 400))
      const int = fs.anyOf?.find((s) => s.type === 'integer') ?? (fs.type === 'integer' ? fs : undefined)
      if (int?.minimum !== undefined) cases.push(at(int.minimum - 1, `is below ${int.minimum}`, 400))
      if (int?.maximum !== undefined) cases.push(at(int.maximum + 1, `is above ${int.maximum}`, 400))
      if (fs.type === 'array' && fs.maxItems !== undefined) cases.push(at(Array.from({ length: fs.maxItems + 1 }, (_, i) => `r${i}@fabrikam.com`), `has ${fs.maxItems + 1} items`, 400))
    }
  }
  return cases
}

/** Whole bodies that are not what a JSON endpoint takes. */
function bodyShapeCases(f: Fixtures): Case[] {
  const cases: Case[] = []
  for (const [key, base] of Object.entries(validBodies)) {
    const [method, p] = key.split(' ') as [string, string]
    const path = fill(p, f)
    const json = JSON.stringify(base)
    const malformed = [json.slice(0, -1), `${json.slice(0, -1)},}`, `{'to': 'x'}`, '{"a":}', 'NaN', `\u0000${json}`]
    for (const body of malformed) cases.push({ name: `${key}: malformed JSON ${JSON.stringify(body.slice(0, 20))}`, method, path, body, cause: /JSON/, status: 400 })
    for (const body of ['[]', '"text"', '42', 'null', 'true']) cases.push({ name: `${key}: a JSON ${body} instead of an object`, method, path, body, cause: /body/, status: 400 })
    cases.push({ name: `${key}: an unknown field`, method, path, body: { ...base, unexpected_field: 1 }, cause: /unexpected_field/, status: 400 })
    cases.push({ name: `${key}: a __proto__ key`, method, path, body: `{"__proto__": {"admin": true}, ${json.slice(1)}`, cause: /__proto__/, status: 400 })
    cases.push({ name: `${key}: a constructor.prototype key`, method, path, body: `{"constructor": {"prototype": {"admin": true}}, ${json.slice(1)}`, cause: /constructor/, status: 400 })
    cases.push({ name: `${key}: text/plain`, method, path, body: json, contentType: 'text/plain', cause: /Content-Type: application\/json/, status: 415 })
    cases.push({ name: `${key}: a form instead of JSON`, method, path, body: new URLSearchParams(Object.entries(base).map(([k, v]) => [k, String(v)])).toString(), contentType: 'application/x-www-form-urlencoded', cause: /Content-Type: application\/json/, status: 415 })
    cases.push({ name: `${key}: no API token`, method, path, body: base, authorization: null, cause: /Authorization: Bearer/, status: 401 })
    cases.push({ name: `${key}: a wrong API token`, method, path, body: base, authorization: 'Bearer wrong-token', cause: /Authorization: Bearer/, status: 401 })
  }
  // Larger than any route takes: refused before it is read into memory.
  cases.push({ name: 'PATCH /api/v1/settings: a 2 MB body', method: 'PATCH', path: '/api/v1/settings', body: { microsoft_outlook_client_id: 'x'.repeat(2 * 1024 * 1024) }, cause: /^The request body is 2 MB; the limit is 1 MB\.$/, status: 413 })
  cases.push({ name: 'POST /api/v1/mail: a body over the mail route\'s limit', method: 'POST', path: '/api/v1/mail', body: { ...validBodies['POST /api/v1/mail'], text: 'x'.repeat(jsonSizeOf(f.maxMailBytes) + 1) }, cause: /^The mail is 1\.3 MB; the limit is 0\.2 MB \(MAILBRIDGE_MAX_MAIL_BYTES\)\.$/, status: 413 })
  return cases
}

/** Every route with an id in its path: ids that are too long, unknown, traversal, NUL, SQL, badly encoded. */
function pathIdCases(api: OpenApi, f: Fixtures): Case[] {
  const cases: Case[] = []
  const ids: Array<[string, string, RegExp, number?]> = [
    ['65 characters', 'a'.repeat(65), /must not have more than 64 characters/i, 400],
    ['unknown', 'nonexistent0000', /nonexistent0000 does not exist/, 404],
    ['a traversal', '..%2F..%2Fetc%2Fpasswd', /\.\.\/\.\.\/etc\/passwd does not exist/, 404],
    ['a NUL', 'ab%00cd', /NUL/, 400],
    ['SQL', "1'%20OR%20'1'%3D'1", /1' OR '1'='1 does not exist/, 404],
    ['bad percent-encoding', '%E0%A4%A', /percent-encoded/, 400],
  ]
  for (const [path, ops] of Object.entries(api.paths)) {
    if (!path.startsWith('/api/v1/') || !path.includes('{')) continue
    for (const method of Object.keys(ops)) {
      const M = method.toUpperCase()
      const base = validBodies[`${M} ${path}`]
      for (const [what, id, cause, status] of ids) {
        // The attachment route has two ids: break each in turn.
        const variants = path.includes('{attachment_id}') ? [path.replace('{id}', id).replace('{attachment_id}', 'att0000'), path.replace('{id}', 'msg0000').replace('{attachment_id}', id)] : [path.replace(/\{\w+\}/, id)]
        for (const p of variants) {
          const keyPath = path.includes('{key}')
          // A parameter key is a free-form name (letters, dots…): its "unknown" and "SQL" cases are 404 for GET/DELETE and 400 for PUT.
          let c = cause
          let s = status
          if (path.includes('{attachment_id}') && status === 404) c = /(Message|Attachment) .* does not exist/
          // (An unknown key is a new parameter for PUT: not bad input.)
          if (keyPath && M === 'PUT' && what === 'unknown') continue
          if (keyPath && (what === 'unknown' || what === 'SQL' || what === 'a traversal')) {
            if (M === 'PUT') [c, s] = [/parameter key/, 400]
            else c = /Parameter .* does not exist/
          }
          if (keyPath && what === '65 characters') continue // keys may be 200 characters long
          cases.push({ name: `${M} ${path}: ${what} id`, method: M, path: p, body: base, cause: c, status: s })
        }
      }
    }
  }
  cases.push({ name: 'PUT /api/v1/parameters/{key}: a 201-character key', method: 'PUT', path: `/api/v1/parameters/${'k'.repeat(201)}`, body: { value: 'x' }, cause: /key must not have more than 200 characters/i, status: 400 })
  cases.push({ name: 'GET /api/v1/mail/{id}: a 300-character id', method: 'GET', path: `/api/v1/mail/${'m'.repeat(300)}`, cause: /over 256 characters/, status: 414 })
  return cases
}

/** Lists that page: limits and cursors that make no sense, filters that do not exist, unknown parameters. */
function pagingCases(api: OpenApi, f: Fixtures): Case[] {
  const cases: Case[] = []
  for (const [path, ops] of Object.entries(api.paths)) {
    const query = ops.get?.parameters?.filter((p) => p.in === 'query') ?? []
    if (!query.some((p) => p.name === 'limit')) continue
    const url = fill(path, f)
    const bad: Array<[string, RegExp]> = [
      ['limit=0', /limit must be >= 1/],
      ['limit=-5', /limit must be >= 1/],
      ['limit=501', /limit must be <= 500/],
      ['limit=abc', /limit must be integer/],
      ['limit=1.5', /limit must be integer, got "1\.5"/],
      ['limit=1e2', /limit must be integer, got "1e2"/],
      ['limit=1&limit=2', /limit must be integer/],
      [`cursor=${'c'.repeat(65)}`, /cursor must match pattern/],
      ['cursor=not-an-id', /cursor must match pattern/],
      ['cursor=ab%00cd', /cursor (must match pattern|contains a NUL)/],
      ['cursor=%ZZ', /cursor must match pattern/],
      ['unexpected=1', /unexpected is not a known field of the querystring/],
    ]
    if (query.some((p) => p.name === 'state')) bad.push(['state=bogus', /state must be one of "outgoing"/])
    if (query.some((p) => p.name === 'server_id')) bad.push([`server_id=${'s'.repeat(65)}`, /server_id must not have more than 64 characters/i])
    for (const [q, cause] of bad) cases.push({ name: `GET ${path}?${q}`, method: 'GET', path: `${url}?${q}`, cause, status: 400 })
  }
  return cases
}

const MAIL = validBodies['POST /api/v1/mail']!
const mail = (name: string, patch: Record<string, unknown>, cause: RegExp, status = 400): Case => ({ name: `POST /api/v1/mail: ${name}`, method: 'POST', path: '/api/v1/mail', body: { ...MAIL, ...patch }, cause, status })
const attachment = (a: Record<string, unknown>) => ({ attachments: [{ filename: 'report.pdf', content_type: 'application/pdf', content_base64: 'JVBERi0xLjQ=', ...a }] })

/** Header injection, addresses (unicode and IDN that are not addresses), base64, attachment names and sizes. */
function mailCases(f: Fixtures): Case[] {
  const cases: Case[] = []
  const injections = ['\r\nBcc: eve@evil.example', '\nBcc: eve@evil.example', '\rBcc: eve@evil.example', '\u0000', '\r\n\r\n<html>body</html>']
  for (const inj of injections) {
    const tag = JSON.stringify(inj).slice(1, 12)
    cases.push(mail(`CR/LF/NUL in the subject (${tag})`, { subject: `Hello${inj}` }, /subject/))
    cases.push(mail(`CR/LF/NUL in a header value (${tag})`, { headers: { 'X-Order': `42${inj}` } }, /X-Order/))
    for (const field of ['from', 'reply_to']) {
      cases.push(mail(`CR/LF/NUL in ${field}'s display name (${tag})`, { [field]: `Alice${inj} <alice@contoso.com>` }, new RegExp(field)))
      cases.push(mail(`CR/LF/NUL after ${field}'s address (${tag})`, { [field]: `alice@contoso.com${inj}` }, new RegExp(field)))
    }
    for (const field of ['to', 'cc', 'bcc']) cases.push(mail(`CR/LF/NUL in ${field} (${tag})`, { to: [], [field]: [`Bob${inj} <bob@fabrikam.com>`] }, new RegExp(`${field}\\[0\\]`)))
  }
  const headerNames = ['X Order', 'X-Order:', 'X-Order\r\nBcc', 'Bcc', 'From', 'Content-Type', 'Message-ID', 'X-Ördér', '']
  for (const h of headerNames) cases.push(mail(`header name ${JSON.stringify(h)}`, { headers: { [h]: 'v' } }, /header|headers|set by Mailbridge/))
  const addresses = [
    'bob', 'bob@', '@fabrikam.com', 'bob@@fabrikam.com', 'bob@fabrikam', 'bob@fabrikam.123', 'bob..x@fabrikam.com', '.bob@fabrikam.com',
    'bob@-fabrikam.com', 'bob@fabrikam-.com', `bob@${'a'.repeat(64)}.com`, `${'b'.repeat(65)}@fabrikam.com`, `b@${'a.'.repeat(130)}com`,
    'bob@fabrikam.com, eve@evil.example', 'Bob <bob@fabrikam.com> <eve@evil.example>', 'undisclosed-recipients:;', '"unterminated <bob@fabrikam.com>',
    'Smith, Bob <bob@fabrikam.com>', 'bob@[127.0.0.1]', '"bob smith"@fabrikam.com', 'bob(comment)@fabrikam.com',
    // Unicode that is not an address: fullwidth @, zero-width space, right-to-left override, combining marks, emoji domain.
    'bob＠fabrikam.com', 'bob@fabri\u200bkam.com', 'bob\u202e@fabrikam.com', 'bob@fabrikam.com\u202e', 'bob@💥.com', 'bob@fabrikam.c\u0301om', 'bob@xn--.com',
    'bob@fabri\u2028kam.com', '\u00a0bob@fabrikam.com\u00a0x',
  ]
  for (const a of addresses) {
    cases.push(mail(`to ${JSON.stringify(a)}`, { to: [a] }, /to\[0\]/))
    cases.push(mail(`from ${JSON.stringify(a)}`, { from: a }, /\bfrom\b/))
  }
  cases.push(mail('no recipient at all', { to: [] }, /recipient/))
  cases.push(mail('an unknown server_id', { server_id: 'nonexistent0000' }, /server_id|nonexistent0000/))
  const b64 = ['abc', 'ab=c', '!!!!', 'YQ===', 'YQ', '=YQ=', 'Y Q = =x', '€€€€', 'data:application/pdf;base64,JVBERi0=']
  for (const v of b64) cases.push(mail(`content_base64 ${JSON.stringify(v)}`, attachment({ content_base64: v }), /content_base64/))
  const names = ['../../etc/passwd', '..\\..\\windows\\win.ini', '/etc/passwd', 'C:\\boot.ini', '..', '.', 'dir/report.pdf', 'report\u0000.pdf.exe', 'report\r\n.pdf', 'report\u007f.pdf', '']
  for (const n of names) cases.push(mail(`attachment filename ${JSON.stringify(n)}`, attachment({ filename: n }), /filename/))
  for (const t of ['pdf', 'application/', 'text/html\r\nBcc: eve@evil.example', 'application/pdf; name="x\r\n"', 'a'.repeat(300)]) {
    cases.push(mail(`attachment content_type ${JSON.stringify(t.slice(0, 30))}`, attachment({ content_type: t }), /content_type/))
  }
  cases.push(mail('an attachment without content_base64', { attachments: [{ filename: 'a.pdf', content_type: 'application/pdf' }] }, /content_base64/))
  cases.push(mail('an attachment with an unknown field', attachment({ path: '/etc/passwd' }), /path/))
  cases.push(mail('an attachment given as a string', { attachments: ['/etc/passwd'] }, /attachments/))
  const big = Buffer.alloc(f.maxMailBytes + 1, 7).toString('base64')
  cases.push(mail('an attachment one byte over the limit', attachment({ content_base64: big }), /limit/, 413))
  cases.push(mail('text over the limit', { text: 'x'.repeat(f.maxMailBytes + 1) }, /limit/, 413))
  cases.push(mail('html over the limit', { html: '<p>' + 'x'.repeat(f.maxMailBytes) + '</p>' }, /limit/, 413))
  cases.push(mail('many attachments that add up over the limit', { attachments: Array.from({ length: 5 }, (_, i) => ({ filename: `part${i}.bin`, content_type: 'application/octet-stream', content_base64: Buffer.alloc(Math.ceil(f.maxMailBytes / 4), i).toString('base64') })) }, /limit/, 413))
  return cases
}

/** Settings, parameters, servers, webhooks and relay users: values of the right type that are still wrong. */
function ruleCases(f: Fixtures): Case[] {
  const c = (method: string, path: string, body: unknown, cause: RegExp, status = 400, name?: string): Case => ({ name: `${method} ${path}: ${name ?? JSON.stringify(body).slice(0, 70)}`, method, path, body, cause, status })
  return [
    c('PATCH', '/api/v1/settings', { microsoft_outlook_client_id: 'not a guid!' }, /Client ID/),
    c('PATCH', '/api/v1/settings', { microsoft_outlook_client_secret: 'secret\r\nvalue' }, /Client Secret/),
    c('PATCH', '/api/v1/settings', { microsoft_outlook_client_secret_expires_at: 'next tuesday' }, /expiry/),
    c('PUT', '/api/v1/parameters/microsoft_outlook.endpoint', { value: 'not a url' }, /microsoft_outlook\.endpoint/),
    c('PUT', '/api/v1/parameters/microsoft_outlook.endpoint', { value: 'http://login.microsoftonline.com/common/oauth2/v2.0/' }, /https/),
    c('PUT', '/api/v1/parameters/microsoft_outlook.endpoint', { value: 'javascript:alert(1)' }, /https/),
    c('PUT', '/api/v1/parameters/mail.force.smtp.from', { value: 'Alice <alice@contoso.com>\r\nBcc: eve@evil.example' }, /mail\.force\.smtp\.from/),
    c('PUT', '/api/v1/parameters/bad key!', { value: 'x' }, /parameter key/),
    c('PUT', '/api/v1/parameters/..%2F..%2Fetc', { value: 'x' }, /parameter key/),
    c('POST', '/api/v1/outgoing-servers', { name: 'X', authentication: 'outlook', username: 'alice@contoso.com', password: 'hunter2' }, /password/),
    c('POST', '/api/v1/outgoing-servers', { name: 'X', authentication: 'outlook', username: 'alice@contoso.com', encryption: 'ssl' }, /starttls/),
    c('POST', '/api/v1/outgoing-servers', { name: 'X', authentication: 'outlook', username: 'not-an-address' }, /Username/),
    c('POST', '/api/v1/outgoing-servers', { name: 'X', authentication: 'outlook' }, /Username/),
    c('POST', '/api/v1/outgoing-servers', { name: 'X', authentication: 'login', host: 'smtp.example.com', username: 'u' }, /password/),
    c('POST', '/api/v1/outgoing-servers', { name: '   ', authentication: 'none', host: 'smtp.example.com' }, /Description|name/),
    c('POST', '/api/v1/outgoing-servers', { name: 'X', authentication: 'none', host: '   ' }, /host/),
    c('POST', '/api/v1/outgoing-servers', { name: 'X', authentication: 'none', host: 'h', from_filter: 'contoso.com, not an address' }, /from_filter/),
    c('POST', '/api/v1/outgoing-servers', { name: 'X', host: 'h' }, /authentication/),
    c('POST', '/api/v1/incoming-servers', { name: 'X', username: 'not-an-address' }, /Username|username/),
    c('POST', '/api/v1/incoming-servers', { name: 'X' }, /Username|username/),
    c('POST', '/api/v1/webhooks', { url: 'not a url', events: ['mail.sent'] }, /url/),
    c('POST', '/api/v1/webhooks', { url: 'ftp://app.example.com/hook', events: ['mail.sent'] }, /https/),
    c('POST', '/api/v1/webhooks', { url: 'javascript:alert(1)', events: ['mail.sent'] }, /https/),
    c('POST', '/api/v1/webhooks', { url: 'https://app.example.com/hook', events: [] }, /events/),
    c('POST', '/api/v1/webhooks', { url: 'https://app.example.com/hook', events: ['mail.sent', 'mail.sent'] }, /events/),
    c('POST', '/api/v1/webhooks', { url: 'https://app.example.com/hook', events: ['mail.bogus'] }, /events/),
    c('POST', '/api/v1/webhooks', { url: 'https://app.example.com/hook' }, /event/),
    c('POST', '/api/v1/webhooks', { events: ['mail.sent'] }, /url/),
    c('POST', '/api/v1/webhooks', { url: 'https://app.example.com/hook', events: ['mail.sent'], secret: 'short' }, /secret/),
    c('POST', '/api/v1/relay-users', { username: 'crm', password: 'short' }, /password|characters/),
    c('POST', '/api/v1/relay-users', { username: 'c r m', password: 'long-enough-password' }, /username|Username/),
    c('POST', '/api/v1/relay-users', { username: 'crm\u0000', password: 'long-enough-password' }, /username|Username/),
    c('POST', '/api/v1/relay-users', { username: 'crm', password: 'long-enough-password', allowed_from: ['not an address'] }, /allowed_from|not an address/),
    c('POST', '/api/v1/relay-users', { password: 'long-enough-password' }, /username/),
    c('POST', `/api/v1/mail/${f.cancelledMailId}/retry`, undefined, /cannot be retried/, 409, 'a cancelled mail'),
    c('POST', `/api/v1/mail/${f.cancelledMailId}/cancel`, undefined, /cannot be cancelled/, 409, 'a cancelled mail'),
    c('POST', `/api/v1/outgoing-servers/${f.outgoingId}/connect`, { login_hint: 'eve@evil.example' }, /login_hint is not a known field of the body; remove it/, 400, 'a field connect does not take (only "flow")'),
    c('POST', `/api/v1/outgoing-servers/${f.outgoingId}/admin-consent`, { login_hint: 'eve@evil.example' }, /takes no body; remove "login_hint"/, 400, 'a body on an action that takes none'),
    c('POST', `/api/v1/mail/${f.mailId}/retry`, { force: true }, /takes no body; remove "force"/, 400, 'a body on an action that takes none'),
    c('DELETE', `/api/v1/webhooks/${f.webhookId}`, '[1]', /takes no body/, 400, 'a body on a DELETE'),
  ]
}

/** The OAuth callback: forged, expired, replayed and oversized states, codes missing or doubled, Microsoft's refusals. */
function confirmCases(f: Fixtures): Case[] {
  const page = (name: string, path: string | (() => Promise<string>), cause: RegExp, status = 400): Case => ({ name: `confirm: ${name}`, method: 'GET', path, cause, status, html: true })
  const withState = (q: string) => async () => `/microsoft_outlook/confirm?state=${encodeURIComponent(await f.freshState())}&${q}`
  const forged = 'Zm9yZ2VkLXN0YXRlLXRoYXQtd2FzLW5ldmVyLWlzc3VlZA'
  const unknown = /unknown or was forged/
  return [
    page('no query at all', '/microsoft_outlook/confirm', unknown),
    page('a code but no state', '/microsoft_outlook/confirm?code=M.C507_BAY.2.U.abc', unknown),
    page('a forged state', `/microsoft_outlook/confirm?state=${forged}&code=abc`, unknown),
    page('an empty state', '/microsoft_outlook/confirm?state=&code=abc', unknown),
    page('a 300-character state', `/microsoft_outlook/confirm?state=${'s'.repeat(300)}&code=abc`, unknown),
    page('a 9000-character state', `/microsoft_outlook/confirm?state=${'s'.repeat(9000)}&code=abc`, unknown),
    page('a state with a NUL', '/microsoft_outlook/confirm?state=ab%00cd&code=abc', unknown),
    page('two states', `/microsoft_outlook/confirm?state=${forged}&state=${forged}&code=abc`, unknown),
    page('a badly encoded state', '/microsoft_outlook/confirm?state=%E0%A4%A&code=abc', unknown),
    page('an expired state', `/microsoft_outlook/confirm?state=${encodeURIComponent(f.expiredState)}&code=abc`, /expired/),
    page('a replayed state', `/microsoft_outlook/confirm?state=${encodeURIComponent(f.usedState)}&code=abc`, /already used/),
    page('a replayed state with Microsoft\'s error', `/microsoft_outlook/confirm?state=${encodeURIComponent(f.usedState)}&error=access_denied`, /already used/),
    page('a fresh state without a code', withState(''), /no code/),
    page('a fresh state with an empty code', withState('code='), /no code/),
    page('a fresh state with two codes', withState('code=abc&code=def'), /code/),
    page('a fresh state with a 5000-character code', withState(`code=${'c'.repeat(5000)}`), /code/),
    page('a fresh state with a 9000-character code', withState(`code=${'c'.repeat(9000)}`), /code/),
    page('a fresh state with a forged code', withState('code=M.C507_BAY.2.U.forged-code'), /Microsoft refused the sign-in: .*AADSTS/),
    page('Microsoft\'s own "No" on the consent page', `/microsoft_outlook/confirm?${f.refusedQuery}`, /Microsoft refused the sign-in: .*AADSTS65004/),
    page('error=access_denied without a description', withState('error=access_denied'), /Microsoft refused the sign-in: access_denied/),
    page('AADSTS50011 redirect mismatch', withState(`error=invalid_request&error_description=${encodeURIComponent('AADSTS50011: The redirect URI specified in the request does not match the redirect URIs configured for the application.')}`), /AADSTS50011/),
    page('AADSTS65001 consent required', withState(`error=consent_required&error_description=${encodeURIComponent('AADSTS65001: The user or administrator has not consented to use the application.')}`), /AADSTS65001/),
    page('AADSTS700016 unknown app', withState(`error=unauthorized_client&error_description=${encodeURIComponent('AADSTS700016: Application with identifier was not found in the directory.')}`), /AADSTS700016/),
    page('an error with both a code and an error', withState('code=abc&error=access_denied'), /Microsoft refused the sign-in/),
    page('an error_description with markup', withState(`error=access_denied&error_description=${encodeURIComponent('<script>alert(1)</script>AADSTS65004')}`), /&lt;script&gt;alert\(1\)&lt;\/script&gt;AADSTS65004/),
    page('an error_description with CR/LF', withState(`error=access_denied&error_description=${encodeURIComponent('AADSTS65004: declined\r\nSet-Cookie: x=1')}`), /AADSTS65004: declined/),
    page('a 9000-character error_description', withState(`error=access_denied&error_description=${'d'.repeat(9000)}`), /error_description|Microsoft refused/),
    page('an unknown parameter beside a forged state', `/microsoft_outlook/confirm?state=${forged}&code=abc&admin=1`, unknown),
  ]
}

export function generateCases(api: OpenApi, f: Fixtures): Case[] {
  return [...bodyFieldCases(api, f), ...bodyShapeCases(f), ...pathIdCases(api, f), ...pagingCases(api, f), ...mailCases(f), ...ruleCases(f), ...confirmCases(f)]
}
