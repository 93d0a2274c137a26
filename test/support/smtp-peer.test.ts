import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import nodemailer from 'nodemailer'
import { startIdentityEmulator, OUTLOOK_IMAP, type Emulator } from './identity-emulator.ts'
import { startSmtpPeer, type PeerBehaviour, type SmtpPeer } from './smtp-peer.ts'

const ALICE = 'alice@contoso.example'
const BOB = 'bob@contoso.example'

async function setup(t: TestContext, behaviour: Partial<PeerBehaviour> = {}): Promise<{ em: Emulator; peer: SmtpPeer }> {
  const em = await startIdentityEmulator()
  t.after(() => em.close())
  const peer = await startSmtpPeer({ introspectUrl: em.introspectUrl, behaviour })
  t.after(() => peer.close())
  return { em, peer }
}

/** Send like Mailbridge does: STARTTLS required, XOAUTH2 with a ready access token. */
function send(peer: SmtpPeer, o: { user: string; token: string; from?: string; to?: string[]; subject?: string }) {
  const transport = nodemailer.createTransport({
    host: peer.host,
    port: peer.port,
    secure: false,
    requireTLS: true,
    auth: { type: 'OAuth2', user: o.user, accessToken: o.token },
  })
  return transport.sendMail({
    from: o.from ?? o.user,
    to: o.to ?? ['carol@example.org'],
    subject: o.subject ?? 'Hello from the test',
    text: 'Body text',
    messageId: '<test-1@mailbridge.test>',
  })
}

async function until(cond: () => boolean, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

interface SmtpError extends Error { code?: string; response?: string; responseCode?: number }
const smtpError = (re: RegExp, code?: string) => (err: SmtpError) => {
  assert.match(err.response ?? '', re)
  if (code) assert.equal(err.code, code)
  return true
}

/** A raw SMTP dialogue on a plain socket, for what nodemailer will not do (AUTH before STARTTLS). */
async function rawDialogue(peer: SmtpPeer, commands: string[]) {
  const socket = net.connect(peer.port, peer.host)
  const lines: string[] = []
  let buffer = ''
  let waiter: (() => void) | undefined
  let closed = false
  socket.on('close', () => {
    closed = true
    waiter?.()
  })
  socket.on('data', (d: Buffer) => {
    buffer += d.toString('utf8')
    let i
    while ((i = buffer.indexOf('\r\n')) >= 0) {
      lines.push(buffer.slice(0, i))
      buffer = buffer.slice(i + 2)
    }
    waiter?.()
  })
  const replyAfter = async (from: number) => {
    // a reply is complete at a line "ddd " (RFC 5321 §4.2.1)
    while (!lines.slice(from).some((l) => /^\d{3} /.test(l))) {
      if (closed) throw new Error(`connection closed; got ${JSON.stringify(lines)}`)
      await new Promise<void>((r) => (waiter = r))
    }
    const end = lines.findIndex((l, idx) => idx >= from && /^\d{3} /.test(l))
    return lines.slice(from, end + 1)
  }
  const replies: string[][] = [await replyAfter(0)]
  for (const c of commands) {
    const from = lines.length
    socket.write(`${c}\r\n`)
    replies.push(await replyAfter(from))
  }
  socket.destroy()
  return replies
}

test('a good token delivers over STARTTLS and the peer records envelope, bytes and user', async (t) => {
  const { em, peer } = await setup(t)
  const info = await send(peer, { user: ALICE, token: em.mintAccessToken({ user: ALICE }), to: ['carol@example.org', 'dave@example.org'] })
  assert.match(info.response, /^250 2\.0\.0 OK <test-1@mailbridge\.test> \[Hostname=127\.0\.0\.1\]$/)
  await peer.waitFor(1)
  const m = peer.messages[0]
  assert.ok(m)
  assert.equal(m.from, ALICE)
  assert.deepEqual(m.to, ['carol@example.org', 'dave@example.org'])
  assert.equal(m.user, ALICE)
  assert.match(m.raw.toString(), /^Subject: Hello from the test\r$/m)
  assert.deepEqual(peer.authAttempts, [{ user: ALICE, ok: true }])
  assert.equal(peer.connections.max, 1)
  await until(() => peer.connections.current === 0)
})

test('the peer greets like Exchange and refuses AUTH before STARTTLS with 538', async (t) => {
  const { em, peer } = await setup(t)
  const b64 = Buffer.from(`user=${ALICE}\x01auth=Bearer ${em.mintAccessToken({ user: ALICE })}\x01\x01`).toString('base64')
  const [greeting, ehlo, auth] = await rawDialogue(peer, ['EHLO client.test', `AUTH XOAUTH2 ${b64}`])
  assert.match(greeting?.[0] ?? '', /^220 127\.0\.0\.1 Microsoft ESMTP MAIL Service ready at /)
  assert.ok(ehlo?.some((l) => /^250[- ]STARTTLS$/.test(l)))
  assert.ok(ehlo?.some((l) => /^250[- ]SIZE 36700160$/.test(l)))
  assert.match(auth?.[0] ?? '', /^538 /)
  assert.deepEqual(peer.authAttempts, [])
})

test('a bad token is refused with 535 5.7.3 Authentication unsuccessful', async (t) => {
  const { peer } = await setup(t)
  await assert.rejects(send(peer, { user: ALICE, token: 'not-a-token' }), smtpError(/^535 5\.7\.3 Authentication unsuccessful \[127\.0\.0\.1\]$/, 'EAUTH'))
  assert.deepEqual(peer.authAttempts, [{ user: ALICE, ok: false }])
  assert.equal(peer.messages.length, 0)
})

test('another user\'s token, an expired token and a token without SMTP.Send are all refused with 535 5.7.3', async (t) => {
  const { em, peer } = await setup(t)
  await assert.rejects(send(peer, { user: ALICE, token: em.mintAccessToken({ user: BOB }) }), smtpError(/^535 5\.7\.3 /))
  await assert.rejects(send(peer, { user: ALICE, token: em.mintAccessToken({ user: ALICE, scope: OUTLOOK_IMAP }) }), smtpError(/^535 5\.7\.3 /))
  const token = em.mintAccessToken({ user: ALICE })
  em.expireAccessTokens(ALICE)
  await assert.rejects(send(peer, { user: ALICE, token }), smtpError(/^535 5\.7\.3 /))
  assert.equal(peer.authAttempts.filter((a) => a.ok).length, 0)
})

test('the user check ignores case, and the office365.com spelling of SMTP.Send is accepted', async (t) => {
  const { em, peer } = await setup(t)
  const token = em.mintAccessToken({ user: ALICE, scope: 'https://outlook.office365.com/SMTP.Send' })
  await send(peer, { user: 'Alice@Contoso.Example', token, from: 'Alice@Contoso.Example' })
  assert.equal(peer.messages.length, 1)
})

test('with SMTP AUTH disabled for the tenant the peer answers 535 5.7.139', async (t) => {
  const { em, peer } = await setup(t, { authDisabled: true })
  await assert.rejects(
    send(peer, { user: ALICE, token: em.mintAccessToken({ user: ALICE }) }),
    smtpError(/^535 5\.7\.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant\. Visit https:\/\/aka\.ms\/smtp_auth_disabled for more information\.$/, 'EAUTH'),
  )
})

test('an unreachable introspection endpoint gives 454 4.7.0 Temporary authentication failure', async (t) => {
  const em = await startIdentityEmulator()
  const dead = em.introspectUrl
  await em.close()
  const peer = await startSmtpPeer({ introspectUrl: dead })
  t.after(() => peer.close())
  await assert.rejects(send(peer, { user: ALICE, token: 'whatever' }), smtpError(/^454 4\.7\.0 Temporary authentication failure$/))
})

test('a sender other than the authenticated mailbox gets 550 5.7.60 unless enforceSender is off', async (t) => {
  const { em, peer } = await setup(t)
  const token = em.mintAccessToken({ user: ALICE })
  await assert.rejects(send(peer, { user: ALICE, token, from: 'shared@contoso.example' }), smtpError(/^550 5\.7\.60 SMTP; Client does not have permissions to send as this sender$/, 'EENVELOPE'))
  assert.equal(peer.messages.length, 0)
  peer.behave({ enforceSender: false })
  await send(peer, { user: ALICE, token, from: 'shared@contoso.example' })
  assert.equal(peer.messages[0]?.from, 'shared@contoso.example')
})

test('dataReply answers the first DATA with 451 4.7.500 and accepts the next', async (t) => {
  const { em, peer } = await setup(t, { dataReply: (n) => (n === 1 ? { code: 451, message: '4.7.500 Server busy. Please try again later.' } : undefined) })
  const token = em.mintAccessToken({ user: ALICE })
  await assert.rejects(send(peer, { user: ALICE, token }), smtpError(/^451 4\.7\.500 Server busy\. Please try again later\.$/))
  assert.equal(peer.messages.length, 0)
  await send(peer, { user: ALICE, token })
  assert.equal(peer.messages.length, 1)
})

test('rejectRcpt refuses a recipient with 550 5.1.10 and the rest are still delivered', async (t) => {
  const nobody = 'nobody@contoso.example'
  const { em, peer } = await setup(t, {
    rejectRcpt: (a) => (a === nobody ? { code: 550, message: `5.1.10 RESOLVER.ADR.RecipNotFound; Recipient ${a} not found by SMTP address lookup` } : undefined),
  })
  const token = em.mintAccessToken({ user: ALICE })
  await assert.rejects(send(peer, { user: ALICE, token, to: [nobody] }), smtpError(/^550 5\.1\.10 RESOLVER\.ADR\.RecipNotFound/, 'EENVELOPE'))
  const info = await send(peer, { user: ALICE, token, to: [nobody, 'carol@example.org'] })
  assert.deepEqual(info.rejected, [nobody])
  assert.deepEqual(peer.messages.map((m) => m.to), [['carol@example.org']])
})

test('a fourth concurrent session of one mailbox gets 432 4.3.2 on AUTH when maxConnections is 3', async (t) => {
  const { em, peer } = await setup(t, { maxConnections: 3, delayMs: 600 })
  const token = em.mintAccessToken({ user: ALICE })
  const first3 = [1, 2, 3].map(() => send(peer, { user: ALICE, token }))
  await until(() => peer.authAttempts.filter((a) => a.ok).length === 3)
  await assert.rejects(send(peer, { user: ALICE, token }), smtpError(/^432 4\.3\.2 STOREDRV\.ClientSubmit; sender thread limit exceeded$/))
  await Promise.all(first3)
  assert.equal(peer.connections.max, 4)
  assert.equal(peer.messages.length, 3)
  // a session frees its slot when its socket closes, which is a moment after the client saw 250
  await until(() => peer.connections.current === 0)
  await send(peer, { user: ALICE, token })
  assert.equal(peer.messages.length, 4)
})

test('dropDuringData cuts the connection mid-DATA and records nothing', async (t) => {
  const { em, peer } = await setup(t, { dropDuringData: (n) => n === 1 })
  const token = em.mintAccessToken({ user: ALICE })
  await assert.rejects(send(peer, { user: ALICE, token }))
  assert.equal(peer.messages.length, 0)
  await send(peer, { user: ALICE, token })
  await peer.waitFor(1)
})

test('dropBeforeReply records the message, then cuts the connection before the 250: the client sees an error', async (t) => {
  const { em, peer } = await setup(t, { dropBeforeReply: (n) => n === 1 })
  const token = em.mintAccessToken({ user: ALICE })
  await assert.rejects(send(peer, { user: ALICE, token }))
  assert.equal(peer.messages.length, 1, 'the server had it')
  assert.equal(peer.dataCommands(), 1)
})

test('a 421 reply to DATA closes the connection (RFC 5321 §3.8); dataCommands counts refused attempts too', async (t) => {
  const { em, peer } = await setup(t, { dataReply: (n) => (n === 1 ? { code: 421, message: '4.3.2 Service not available, closing transmission channel' } : undefined) })
  const token = em.mintAccessToken({ user: ALICE })
  await assert.rejects(send(peer, { user: ALICE, token }), smtpError(/^421 4\.3\.2 Service not available/))
  await until(() => peer.connections.current === 0)
  await send(peer, { user: ALICE, token })
  assert.equal(peer.dataCommands(), 2)
  assert.equal(peer.messages.length, 1)
})

test('waitFor times out with a clear message when too few messages arrive', async (t) => {
  const { peer } = await setup(t)
  await assert.rejects(peer.waitFor(1, 50), /0 of 1 messages/)
})
