/**
 * The Graph client (src/graph/) against the Graph emulator: sending (one request, or a draft with upload sessions),
 * throttling, the verdict of each failure, delta paging and its expiry, MIME, isRead, folders by name.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import MailComposer from 'nodemailer/lib/mail-composer'
import { simpleParser } from 'mailparser'
import { Secret } from '../../src/crypto/secret.ts'
import type { GraphTarget } from '../../src/graph/graph-request.ts'
import { sendMime, MAX_REQUEST_BYTES, UPLOAD_CHUNK_BYTES } from '../../src/graph/graph-send.ts'
import { delta, folderId, markRead, messageMime, type DeltaPage } from '../../src/graph/graph-read.ts'
import { graphVerdict } from '../../src/graph/verdict.ts'
import { OUTLOOK_SMTP_SEND, type Emulator } from '../support/identity-emulator.ts'
import { startGraphWorld, type GraphEmulator } from '../support/graph-emulator.ts'

const ALICE = 'alice@contoso.example'
const SCOPES = 'https://graph.microsoft.com/Mail.Send https://graph.microsoft.com/Mail.ReadWrite'
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

interface World { id: Emulator; g: GraphEmulator; t: GraphTarget }

async function world(tc: TestContext): Promise<World> {
  const { id, g, close } = await startGraphWorld([ALICE])
  tc.after(close)
  return { id, g, t: { endpoint: g.endpoint, token: new Secret(id.mintAccessToken({ user: ALICE, scope: SCOPES })), mailbox: ALICE, delegated: true } }
}

const compose = (o: { subject?: string; attachments?: Array<{ filename: string; content: Buffer }>; from?: string; to?: string } = {}) =>
  new MailComposer({ from: o.from ?? ALICE, to: o.to ?? 'carol@fabrikam.example', subject: o.subject ?? 'Hello', messageId: `<${randomBytes(6).toString('hex')}@contoso.example>`, text: 'Body text.', attachments: o.attachments }).compile().build()

async function failure(p: Promise<unknown>) {
  try {
    await p
  } catch (e) {
    return e
  }
  assert.fail('expected a failure')
}

test('sendMime: a mail within one request goes as sendMail in base64 MIME, and Graph gets the same bytes', async (tc) => {
  const { g, t } = await world(tc)
  const mime = await compose({ attachments: [{ filename: 'a.bin', content: randomBytes(200_000) }] })
  assert.deepEqual(await sendMime(t, mime), { via: 'sendMail', requests: 1 })
  assert.equal(g.sent.length, 1)
  assert.ok(g.sent[0]!.mime.equals(mime))
  assert.equal(g.folderMessages(ALICE, 'sentitems').length, 1)
})

test('sendMime: a 20 MB attachment goes as a draft with an upload session and arrives byte for byte (SHA-256), Message-ID kept', async (tc) => {
  const { g, t } = await world(tc)
  const file = randomBytes(20 * 1024 * 1024)
  const small = randomBytes(40_000)
  const mime = await compose({ subject: 'Quarterly data', attachments: [{ filename: 'data.bin', content: file }, { filename: 'notes.txt', content: small }] })
  const result = await sendMime(t, mime)
  assert.equal(result.via, 'draft')
  assert.equal(g.sent.length, 1)
  const got = await simpleParser(g.sent[0]!.mime)
  const sent = await simpleParser(mime)
  assert.deepEqual([got.messageId, got.subject, got.text?.trim()], [sent.messageId, 'Quarterly data', 'Body text.'])
  assert.deepEqual(got.attachments.map((a) => [a.filename, sha(a.content)]).sort(), [['data.bin', sha(file)], ['notes.txt', sha(small)]].sort())
  const puts = g.requests.filter((r) => r.method === 'PUT')
  assert.equal(puts.length, Math.ceil(file.length / UPLOAD_CHUNK_BYTES))
  assert.ok(puts.every((p) => !p.authorization && p.bytes <= MAX_REQUEST_BYTES))
  assert.equal(result.requests, g.requests.length)
  assert.deepEqual(g.folderMessages(ALICE, 'drafts'), [])
})

test('sendMime: a 429 with Retry-After 1 is waited out and the mail is sent once; a long Retry-After goes up as a transient verdict', async (tc) => {
  const { g, t } = await world(tc)
  g.inject({ path: /\/sendMail$/, status: 429, retryAfter: 1 })
  await sendMime(t, await compose())
  const tries = g.requests.filter((r) => r.path.endsWith('/sendMail'))
  assert.deepEqual(tries.map((r) => r.status), [429, 202])
  assert.ok(tries[1]!.at - tries[0]!.at >= 1000, 'waited for Retry-After')
  assert.equal(g.sent.length, 1)

  g.inject({ path: /\/sendMail$/, status: 429, retryAfter: 120 })
  const v = graphVerdict(await failure(sendMime(t, await compose())))
  assert.equal(v.kind, 'transient')
  assert.equal(v.kind === 'transient' && v.retryAfterMs, 120_000)
  assert.equal(g.sent.length, 1)
})

test('graphVerdict: 401 refused, ErrorSendAsDenied / ErrorInvalidRecipients / ErrorAccessDenied permanent with Graph\'s code and message, 503 and no answer transient', async (tc) => {
  const { id, g, t } = await world(tc)
  const outlook = { ...t, token: new Secret(id.mintAccessToken({ user: ALICE, scope: OUTLOOK_SMTP_SEND })) }
  const refused = graphVerdict(await failure(sendMime(outlook, await compose())))
  assert.equal(refused.kind, 'refused')
  assert.match(refused.reason, /401 InvalidAuthenticationToken to sendMail for alice@contoso\.example: Access token validation failure\. Invalid audience\./)

  const sendAs = graphVerdict(await failure(sendMime(t, await compose({ from: 'ceo@contoso.example' }))))
  assert.deepEqual([sendAs.kind, sendAs.kind === 'permanent' && sendAs.failureType, sendAs.kind === 'permanent' && sendAs.code], ['permanent', 'mail_from_invalid', 'ErrorSendAsDenied'])
  assert.match(sendAs.reason, /does not have the right to send mail on behalf of the specified sending account/)
  const rcpt = graphVerdict(await failure(sendMime(t, await compose({ to: 'nobody' }))))
  assert.deepEqual([rcpt.kind, rcpt.kind === 'permanent' && rcpt.failureType], ['permanent', 'mail_email_invalid'])
  const readOnly = { ...t, token: new Secret(id.mintAccessToken({ user: ALICE, scope: 'https://graph.microsoft.com/Mail.ReadWrite' })) }
  const denied = graphVerdict(await failure(sendMime(readOnly, await compose())))
  assert.deepEqual([denied.kind, denied.kind === 'permanent' && denied.code], ['permanent', 'ErrorAccessDenied'])

  g.inject({ status: 503, times: 3 })
  const busy = graphVerdict(await failure(sendMime(t, await compose(), { retry: { maxWaitMs: 0, attempts: 1 } })))
  assert.equal(busy.kind, 'transient')
  const down = graphVerdict(await failure(sendMime({ ...t, endpoint: 'https://127.0.0.1:9/' }, await compose())))
  assert.equal(down.kind, 'transient')
  assert.match(down.reason, /did not answer sendMail for alice@contoso\.example/)
  assert.equal(g.sent.length, 0)
})

test('delta: pages of the chosen size to a deltaLink, the next round brings only what came since, an expired link resyncs the whole folder', async (tc) => {
  const { g, t } = await world(tc)
  const raw = (n: number) => `From: x@fabrikam.example\r\nTo: ${ALICE}\r\nSubject: n${n}\r\nMessage-ID: <n${n}@fabrikam.example>\r\n\r\nBody ${n}\r\n`
  const ids = Array.from({ length: 7 }, (_, n) => g.deliver(ALICE, raw(n)))
  const inbox = await folderId(t, 'Inbox')
  const round = async (link?: string) => {
    const pages: DeltaPage[] = []
    for await (const p of delta(t, inbox, link, { pageSize: 3 })) pages.push(p)
    return pages
  }
  const first = await round()
  assert.deepEqual(first.map((p) => p.messages.length), [3, 3, 1])
  assert.deepEqual(first.flatMap((p) => p.messages.map((m) => m.id)), ids)
  assert.equal(first[0]!.messages[0]!.internetMessageId, '<n0@fabrikam.example>')
  const link = first.at(-1)!.deltaLink
  assert.ok(link && first.slice(0, -1).every((p) => p.nextLink && !p.deltaLink))

  const later = [7, 8].map((n) => g.deliver(ALICE, raw(n)))
  const second = await round(link)
  assert.deepEqual(second.flatMap((p) => p.messages.map((m) => m.id)), later)
  assert.ok(second.every((p) => !p.resync))

  g.expireDeltaTokens()
  const third = await round(second.at(-1)!.deltaLink)
  assert.ok(third.every((p) => p.resync))
  assert.equal(third.flatMap((p) => p.messages).length, 9)

  assert.equal((await messageMime(t, ids[2]!)).toString(), raw(2))
  await markRead(t, ids[2]!)
  assert.equal(g.message(ALICE, ids[2]!)?.isRead, true)
})

test('folderId: well-known names, a path of display names through childFolders, and a missing folder named in the error', async (tc) => {
  const { g, t } = await world(tc)
  const orders = g.addFolder(ALICE, 'Orders', 'inbox')
  const top = g.addFolder(ALICE, "Archive '24")
  assert.equal(await folderId(t, 'inbox'), await folderId(t, 'INBOX'))
  assert.equal(await folderId(t, 'Inbox/Orders'), orders)
  assert.equal(await folderId(t, "Archive '24"), top)
  const e = await failure(folderId(t, 'Inbox/Nope'))
  assert.match(String(e), /No folder "Inbox\/Nope" in this mailbox/)
  assert.equal(graphVerdict(e).kind, 'permanent')
})

test('app-only target: /users/{mailbox} with a client-credentials token for Graph', async (tc) => {
  const { id, g } = await world(tc)
  const tenant = '9a8b7c6d-5e4f-4321-8765-0123456789ab'
  id.registerApp({ clientId: 'daemon', clientSecret: 's', redirectUris: [] })
  id.grantAppAccess({ clientId: 'daemon', tenant, roles: ['Mail.Send', 'Mail.ReadWrite'] })
  const res = await fetch(new URL('token', id.endpoint(tenant)), { method: 'POST', body: new URLSearchParams({ client_id: 'daemon', client_secret: 's', grant_type: 'client_credentials', scope: 'https://graph.microsoft.com/.default' }) })
  const token = new Secret(((await res.json()) as { access_token: string }).access_token)
  const t: GraphTarget = { endpoint: g.endpoint, token, mailbox: ALICE, delegated: false }
  await sendMime(t, await compose())
  assert.equal(g.requests.at(-1)?.path, `/users/${ALICE}/sendMail`)
  assert.equal(g.sent.length, 1)
})
