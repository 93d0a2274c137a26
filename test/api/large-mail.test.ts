import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { simpleParser } from 'mailparser'
import nodemailer from 'nodemailer'
import { startRelay, type Relay } from '../../src/relay/server.ts'
import { API_TOKEN } from '../support/harness.ts'
import { ALICE, runQueue, startWorld, type World } from '../support/world.ts'

const MB = 1024 * 1024
const TLS = fileURLToPath(new URL('../support/tls/', import.meta.url))
const RELAY_USER = 'plotter@contoso.com'
const RELAY_PASSWORD = 'plotter-password-0123'

// One world for the file: large mails are slow to make, so the tests share it and each finds its own mail.
let w: World
let relay: Relay
let url: string
before(async () => {
  w = await startWorld({
    // A tenant whose admin raised the message size limit to its maximum, 150 MB: a 35 MB mail is ~48 MB encoded.
    smtp: { maxMessageBytes: 150 * MB },
    env: { MAILBRIDGE_RELAY_TLS_CERT: join(TLS, 'cert.pem'), MAILBRIDGE_RELAY_TLS_KEY: join(TLS, 'key.pem'), MAILBRIDGE_RETRY_BASE_S: '0' },
  })
  const server = await w.outgoingServer()
  await w.connect(server.id)
  await w.mb.api('PATCH', `/api/v1/outgoing-servers/${server.id}`, { max_per_minute: null })
  const created = await w.mb.api('POST', '/api/v1/relay-users', { username: RELAY_USER, password: RELAY_PASSWORD, allowed_from: [] })
  assert.equal(created.statusCode, 201, created.body)
  relay = await startRelay(w.mb.services, { port: 0 })
  url = await w.mb.app.listen({ port: 0, host: '127.0.0.1' })
})
after(async () => {
  await relay.close()
  await w.close()
})

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex')
/** Random, so incompressible, with a PDF's first line: what a scanned contract looks like to every layer. */
const fakePdf = (bytes: number) => Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(bytes - 9)])

/** The attachments of the delivered message with this Message-ID, as the receiver reads them. */
async function delivered(messageId: string): Promise<Array<{ filename?: string; sha256: string }>> {
  await runQueue(w)
  const ids = await w.smtp.messageIds()
  const at = ids.indexOf(messageId)
  assert.ok(at >= 0, `the SMTP peer got no message ${messageId}`)
  const parsed = await simpleParser(w.smtp.messages[at]!.raw)
  return parsed.attachments.map((a) => ({ filename: a.filename, sha256: sha256(a.content) }))
}

async function sendThroughApi(files: Buffer[]): Promise<void> {
  const res = await w.mb.api('POST', '/api/v1/mail', {
    from: ALICE,
    to: ['bob@fabrikam.com'],
    subject: `${files.length} × ${files[0]!.length} bytes`,
    text: 'The signed contract is attached.',
    attachments: files.map((f, i) => ({ filename: `contract-${i}.pdf`, content_type: 'application/pdf', content_base64: f.toString('base64') })),
  })
  assert.equal(res.statusCode, 202, res.body.slice(0, 500))
  const { id, message_id } = res.json()
  assert.deepEqual(await delivered(message_id), files.map((f, i) => ({ filename: `contract-${i}.pdf`, sha256: sha256(f) })))
  assert.equal((await w.mb.api('GET', `/api/v1/mail/${id}`)).json().state, 'sent')
}

for (const size of [1, 5, 12, 30]) {
  test(`large mail: a ${size} MB attachment reaches the SMTP peer byte for byte through the API`, () => sendThroughApi([fakePdf(size * MB)]))
}

test('large mail: four 8 MB attachments in one mail (32 MB, under the 35 MB limit) all arrive intact', () =>
  sendThroughApi(Array.from({ length: 4 }, () => fakePdf(8 * MB))))

test('large mail: an attachment wrapped at 76 characters, as MIME tools write base64, is accepted and arrives intact', async () => {
  const file = fakePdf(5 * MB)
  const wrapped = file.toString('base64').replace(/.{76}/g, '$&\r\n')
  const res = await w.mb.api('POST', '/api/v1/mail', { from: ALICE, to: ['bob@fabrikam.com'], subject: 'wrapped', attachments: [{ filename: 'scan.pdf', content_type: 'application/pdf', content_base64: wrapped }] })
  assert.equal(res.statusCode, 202, res.body.slice(0, 500))
  assert.deepEqual(await delivered(res.json().message_id), [{ filename: 'scan.pdf', sha256: sha256(file) }])
})

test('large mail: a mail over the limit by its decoded size is 413 naming its size, the limit and the setting', async () => {
  const res = await w.mb.api('POST', '/api/v1/mail', { from: ALICE, to: ['bob@fabrikam.com'], subject: 'too big', attachments: [{ filename: 'a.pdf', content_type: 'application/pdf', content_base64: Buffer.alloc(36 * MB).toString('base64') }] })
  assert.equal(res.statusCode, 413)
  assert.deepEqual(res.json().error, { code: 'too_large', field: 'attachments', message: 'The mail is 36 MB; the limit is 35 MB (MAILBRIDGE_MAX_MAIL_BYTES).' })
})

test('large mail: a 30 MB attachment through the SMTP relay reaches the SMTP peer byte for byte', async () => {
  const file = fakePdf(30 * MB)
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port, requireTLS: true, tls: { servername: 'localhost' }, auth: { user: RELAY_USER, pass: RELAY_PASSWORD } })
  const info = await client.sendMail({ from: ALICE, to: 'bob@fabrikam.com', subject: 'plot', text: 'Plot attached.', attachments: [{ filename: 'plot.pdf', content: file }], messageId: '<plot-30mb@plotter.contoso.com>' })
  assert.match(info.response, /^250 /)
  assert.deepEqual(await delivered('<plot-30mb@plotter.contoso.com>'), [{ filename: 'plot.pdf', sha256: sha256(file) }])
})

/** Python's urllib, which writes the whole body before it reads a byte of the answer. */
function pythonPost(target: string, bytes: number): Promise<{ status: number; connection: string; body: string }> {
  const script = `
import json, sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], data=b'{"to":["bob@fabrikam.com"],"subject":"' + b'x' * int(sys.argv[2]) + b'"}', method='POST',
  headers={'Authorization': 'Bearer ${API_TOKEN}', 'Content-Type': 'application/json'})
try:
  r = urllib.request.urlopen(req, timeout=60)
  print(json.dumps({'status': r.status, 'connection': r.headers.get('Connection', ''), 'body': r.read().decode()}))
except urllib.error.HTTPError as e:
  print(json.dumps({'status': e.code, 'connection': e.headers.get('Connection', ''), 'body': e.read().decode()}))
`
  return new Promise((resolve, reject) => {
    const p = spawn('python3', ['-c', script, target, String(bytes - 40)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    p.stdout.on('data', (d) => (out += d))
    p.stderr.on('data', (d) => (err += d))
    p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`python3 failed (${code}): ${err}`))))
  })
}

const TOO_LARGE = { error: { code: 'too_large', message: 'The mail is 80 MB; the limit is 35 MB (MAILBRIDGE_MAX_MAIL_BYTES).' } }

test('large mail: Python urllib sending an 80 MB body reads the 413 (not a broken pipe), with Connection: close', async () => {
  const res = await pythonPost(`${url}/api/v1/mail`, 80 * MB)
  assert.equal(res.status, 413)
  assert.equal(res.connection.toLowerCase(), 'close')
  assert.deepEqual(JSON.parse(res.body), TOO_LARGE)
})

test('large mail: fetch sending 80 MB reads the 413, with a Content-Length and chunked', async () => {
  const body = Buffer.alloc(80 * MB, 0x20)
  const headers = { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' }
  const sized = await fetch(`${url}/api/v1/mail`, { method: 'POST', headers, body })
  assert.equal(sized.status, 413)
  assert.deepEqual(await sized.json(), TOO_LARGE)
  const stream = new ReadableStream({
    start(c) {
      for (let i = 0; i < 80; i++) c.enqueue(body.subarray(i * MB, (i + 1) * MB))
      c.close()
    },
  })
  const chunked = await fetch(`${url}/api/v1/mail`, { method: 'POST', headers, body: stream, duplex: 'half' } as RequestInit)
  assert.equal(chunked.status, 413)
  assert.equal((await chunked.json()).error.code, 'too_large')
  assert.match(chunked.headers.get('connection') ?? '', /close/i)
})

test('large mail: other routes keep their 1 MB limit, and say so', async () => {
  const res = await fetch(`${url}/api/v1/settings`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ microsoft_outlook_client_id: 'x'.repeat(2 * MB) }),
  })
  assert.equal(res.status, 413)
  assert.deepEqual(await res.json(), { error: { code: 'too_large', message: 'The request body is 2 MB; the limit is 1 MB.' } })
  // The connection closed after the refusal does not keep the next request from working.
  assert.equal((await fetch(`${url}/healthz`)).status, 200)
})
