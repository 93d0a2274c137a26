import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { simpleParser } from 'mailparser'
import nodemailer from 'nodemailer'
import { freePort, startNode } from '../support/process.ts'
import { ALICE, startWorld } from '../support/world.ts'

const TLS = fileURLToPath(new URL('../support/tls/', import.meta.url))

test('serve: MAILBRIDGE_RELAY_PORT starts the relay beside the API; a relayed mail is delivered by the queue thread; SIGTERM stops the listener', async (t) => {
  const w = await startWorld({ shared: true })
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  assert.equal((await w.mb.api('POST', '/api/v1/relay-users', { username: 'erp', password: 'erp-password-123' })).statusCode, 201)
  let relayPort = 0
  const node = await startNode(async () =>
    w.nodeEnv({ MAILBRIDGE_RELAY_PORT: String((relayPort = await freePort())), MAILBRIDGE_RELAY_TLS_CERT: join(TLS, 'cert.pem'), MAILBRIDGE_RELAY_TLS_KEY: join(TLS, 'key.pem'), NODE_EXTRA_CA_CERTS: 'test/support/tls/ca.pem' }),
  )
  t.after(() => node.child.kill('SIGKILL'))
  assert.match(node.output(), new RegExp(`SMTP relay for legacy applications on 127\\.0\\.0\\.1:${relayPort} \\(STARTTLS\\)`))

  const client = nodemailer.createTransport({ host: '127.0.0.1', port: relayPort, requireTLS: true, tls: { servername: 'localhost' }, auth: { user: 'erp', pass: 'erp-password-123' } })
  const info = await client.sendMail({ from: ALICE, to: 'bob@fabrikam.com', subject: 'Invoice 2026-117', text: 'Attached.' })
  assert.match(info.response, /^250 /)
  await w.smtp.waitFor(1, 30_000)
  assert.equal((await simpleParser(w.smtp.messages[0]!.raw)).subject, 'Invoice 2026-117')

  node.child.kill('SIGTERM')
  assert.equal(await node.exited, 0)
  const refused = await new Promise<boolean>((resolve) => connect(relayPort, '127.0.0.1').once('connect', () => resolve(false)).once('error', () => resolve(true)))
  assert.ok(refused, 'the relay port is closed after SIGTERM')
})
