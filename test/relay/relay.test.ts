import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { simpleParser } from 'mailparser'
import { ConfigError } from '../../src/config.ts'
import { mimeSizeOf } from '../../src/outgoing/mail-size.ts'
import { parseAllowList } from '../../src/relay/server.ts'
import { ALICE } from '../support/world.ts'
import { legacyClient, PASSWORD, refusal, relayWorld, USER } from './relay-world.ts'
import { plainAuth, SmtpTalk } from './smtp-talk.ts'

test('relay: a legacy client with a password is queued before the 250 and delivered through the XOAUTH2 peer, Bcc from the envelope only', async (t) => {
  const r = await relayWorld(t)
  const info = await legacyClient(r.relay.port).sendMail({
    from: 'Scanner <alice@contoso.com>',
    to: 'Bob <bob@fabrikam.com>',
    cc: 'carol@fabrikam.com',
    bcc: 'audit@contoso.com',
    subject: 'Scan — page 1 ✓',
    text: 'Scanned document attached.',
    attachments: [{ filename: 'scan.pdf', content: Buffer.from('%PDF-1.4 binary \u0000\u00ff') }],
    messageId: '<scan-0001@printer.contoso.com>',
  })
  assert.match(info.response, /^250 .*queued as [0-9a-f]{32}/)
  // The 250 came back: the mail is already in the queue, before any worker ran.
  const [queued] = await r.mails()
  assert.equal(queued!.state, 'outgoing')
  assert.equal(queued!.message_id, '<scan-0001@printer.contoso.com>', "the application's Message-ID is kept")
  assert.deepEqual([queued!.to, queued!.cc, queued!.bcc], [['bob@fabrikam.com'], ['carol@fabrikam.com'], ['audit@contoso.com']])
  assert.equal(queued!.subject, 'Scan — page 1 ✓')
  assert.equal(r.w.smtp.messages.length, 0)

  await r.drain()
  assert.equal(r.w.smtp.messages.length, 1)
  const got = r.w.smtp.messages[0]!
  assert.equal(got.user, ALICE, 'submitted with the mailbox XOAUTH2 token')
  assert.equal(got.from, ALICE)
  assert.deepEqual([...got.to].sort(), ['audit@contoso.com', 'bob@fabrikam.com', 'carol@fabrikam.com'])
  const parsed = await simpleParser(got.raw)
  assert.equal(parsed.messageId, '<scan-0001@printer.contoso.com>')
  assert.equal(parsed.headers.get('bcc'), undefined, 'Bcc travels in the envelope only')
  assert.equal(parsed.subject, 'Scan — page 1 ✓')
  assert.deepEqual(parsed.attachments[0]!.content, Buffer.from('%PDF-1.4 binary \u0000\u00ff'))
  const mail = (await r.w.mb.api('GET', `/api/v1/mail/${queued!.id}`)).json()
  assert.equal(mail.state, 'sent')
  assert.equal(mail.server_id, r.serverId)

  const [user] = (await r.w.mb.api('GET', '/api/v1/relay-users')).json().items
  assert.ok(Date.parse(user.last_used_at) > 0, 'the last use is shown')
  assert.equal(user.last_used_from, '127.0.0.1')
  assert.ok(!r.w.mb.logs.join('').includes(PASSWORD), 'the password is never logged')
})

test('relay: a sender outside the from_filter is rewritten on the header block only; the body arrives byte for byte', async (t) => {
  const r = await relayWorld(t)
  const body = 'Line one\r\nLine two with trailing spaces   \r\n'
  await legacyClient(r.relay.port).sendMail({ envelope: { from: 'noreply@shop.example', to: ['bob@fabrikam.com'] }, raw: `From: "Shop, Orders" <noreply@shop.example>\r\nTo: bob@fabrikam.com\r\nSubject: Order 7\r\nX-Order: 7\r\n\r\n${body}` })
  const [queued] = await r.mails()
  assert.match(queued!.message_id, /^<[0-9a-f]{32}\.mailbridge@shop\.example>$/, 'a Message-ID is added when the application gave none')
  await r.drain()
  const got = r.w.smtp.messages[0]!
  assert.equal(got.from, ALICE, 'the envelope sender is the mailbox, as Exchange demands')
  const parsed = await simpleParser(got.raw)
  assert.deepEqual(parsed.from?.value, [{ name: 'Shop, Orders', address: ALICE }])
  assert.deepEqual(parsed.replyTo?.value, [{ name: 'Shop, Orders', address: 'noreply@shop.example' }])
  assert.equal(parsed.messageId, queued!.message_id)
  assert.equal(parsed.headers.get('x-order'), '7')
  assert.ok(got.raw.toString('latin1').endsWith(`\r\n\r\n${body}`), 'the body is untouched')
})

test('relay: a wrong password or an unknown user gets 535 and nothing is queued', async (t) => {
  const r = await relayWorld(t)
  const wrong = await refusal(legacyClient(r.relay.port, { user: USER, pass: 'not-the-password' }).sendMail({ from: ALICE, to: 'bob@fabrikam.com', text: 'x' }))
  assert.equal(wrong.responseCode, 535)
  const unknown = await refusal(legacyClient(r.relay.port, { user: 'nobody@contoso.com', pass: PASSWORD }).sendMail({ from: ALICE, to: 'bob@fabrikam.com', text: 'x' }))
  assert.equal(unknown.responseCode, 535)
  assert.deepEqual(await r.mails(), [])
  assert.equal((await r.w.mb.api('GET', '/api/v1/relay-users')).json().items[0].last_used_at, null)
})

test('relay: no AUTH gets 530 — never an open relay', async (t) => {
  const r = await relayWorld(t)
  const e = await refusal(legacyClient(r.relay.port, null).sendMail({ from: ALICE, to: 'bob@fabrikam.com', text: 'x' }))
  assert.equal(e.responseCode, 530)
  assert.deepEqual(await r.mails(), [])
})

test('relay: AUTH before STARTTLS is refused, and MAIL FROM still needs AUTH', async (t) => {
  const r = await relayWorld(t)
  const talk = await SmtpTalk.open(r.relay.port)
  assert.match((await talk.cmd('EHLO printer.local')).text, /STARTTLS/)
  const auth = await talk.cmd(`AUTH PLAIN ${plainAuth(USER, PASSWORD)}`)
  assert.equal(auth.code, 538)
  assert.equal((await talk.cmd(`MAIL FROM:<${ALICE}>`)).code, 530)
  // After STARTTLS the same login works.
  await talk.starttls()
  assert.match((await talk.cmd('EHLO printer.local')).text, /AUTH PLAIN LOGIN/)
  assert.equal((await talk.cmd(`AUTH PLAIN ${plainAuth(USER, PASSWORD)}`)).code, 235)
  talk.destroy()
})

test('relay: MAILBRIDGE_RELAY_INSECURE_LOCALHOST=1 allows AUTH without TLS from 127.0.0.1', async (t) => {
  const r = await relayWorld(t, { env: { MAILBRIDGE_RELAY_INSECURE_LOCALHOST: '1' } })
  await legacyClient(r.relay.port, { user: USER, pass: PASSWORD }, { requireTLS: false, ignoreTLS: true }).sendMail({ from: ALICE, to: 'bob@fabrikam.com', subject: 'local', text: 'x' })
  assert.equal((await r.mails()).length, 1)
})

test('relay: a sender the relay user may not use is refused, by envelope and by From header', async (t) => {
  const r = await relayWorld(t, { allowedFrom: ['alice@contoso.com', 'fabrikam.com'] })
  const envelope = await refusal(legacyClient(r.relay.port).sendMail({ from: 'ceo@contoso.com', to: 'bob@fabrikam.com', text: 'x' }))
  assert.equal(envelope.responseCode, 550)
  assert.match(envelope.response!, /5\.7\.1 .*scanner@contoso\.com may not send as ceo@contoso\.com/)
  const header = await refusal(legacyClient(r.relay.port).sendMail({ envelope: { from: ALICE, to: ['bob@fabrikam.com'] }, from: 'ceo@contoso.com', to: 'bob@fabrikam.com', text: 'x' }))
  assert.equal(header.responseCode, 550)
  assert.match(header.response!, /From header/)
  assert.deepEqual(await r.mails(), [])
  // Allowed: the exact address and any address of the domain.
  await legacyClient(r.relay.port).sendMail({ from: ALICE, to: 'bob@fabrikam.com', text: 'x' })
  await legacyClient(r.relay.port).sendMail({ from: 'sales@fabrikam.com', to: 'bob@fabrikam.com', text: 'x' })
  assert.equal((await r.mails()).length, 2)
})

test('relay: a connection killed during DATA leaves no phantom mail', async (t) => {
  const r = await relayWorld(t)
  const talk = await SmtpTalk.open(r.relay.port)
  await talk.cmd('EHLO printer.local')
  await talk.starttls()
  await talk.cmd('EHLO printer.local')
  assert.equal((await talk.cmd(`AUTH PLAIN ${plainAuth(USER, PASSWORD)}`)).code, 235)
  assert.equal((await talk.cmd(`MAIL FROM:<${ALICE}>`)).code, 250)
  assert.equal((await talk.cmd('RCPT TO:<bob@fabrikam.com>')).code, 250)
  assert.equal((await talk.cmd('DATA')).code, 354)
  talk.write(`From: ${ALICE}\r\nTo: bob@fabrikam.com\r\nSubject: cut off\r\n\r\nhalf a message`)
  talk.destroy()
  // Wait until the relay has seen the connection go (its log says so), then look.
  for (let i = 0; i < 500 && !r.w.mb.logs.some((l) => l.includes('went away during DATA')); i++) await new Promise((res) => setTimeout(res, 10))
  assert.ok(r.w.mb.logs.some((l) => l.includes('went away during DATA')), 'the relay noticed the cut')
  assert.deepEqual(await r.mails(), [])
  await r.drain()
  assert.equal(r.w.smtp.messages.length, 0)
})

test('relay: SIZE is announced and enforced (552), and nothing too large is queued', async (t) => {
  const r = await relayWorld(t, { env: { MAILBRIDGE_MAX_MAIL_BYTES: '20000' } })
  const talk = await SmtpTalk.open(r.relay.port)
  await talk.cmd('EHLO printer.local')
  await talk.starttls()
  // The limit counts decoded bytes; SIZE is the encoded message's (base64 and its line breaks, the header block).
  const size = mimeSizeOf(20000)
  assert.match((await talk.cmd('EHLO printer.local')).text, new RegExp(`^SIZE ${size}$`, 'm'))
  await talk.cmd(`AUTH PLAIN ${plainAuth(USER, PASSWORD)}`)
  assert.equal((await talk.cmd(`MAIL FROM:<${ALICE}> SIZE=${size + 1}`)).code, 552, 'a declared size over the limit is refused at once')
  // A size declared too small (or not at all) is caught at the end of DATA.
  assert.equal((await talk.cmd(`MAIL FROM:<${ALICE}> SIZE=100`)).code, 250)
  assert.equal((await talk.cmd('RCPT TO:<bob@fabrikam.com>')).code, 250)
  assert.equal((await talk.cmd('DATA')).code, 354)
  const end = await talk.cmd(`Subject: big\r\n\r\n${'x'.repeat(998) + '\r\n'}`.repeat(Math.ceil(size / 1000)) + '.')
  assert.equal(end.code, 552)
  talk.destroy()
  // A client that declares nothing is refused after DATA.
  const big = await refusal(legacyClient(r.relay.port).sendMail({ from: ALICE, to: 'bob@fabrikam.com', text: 'x'.repeat(size) }))
  assert.equal(big.responseCode, 552)
  assert.deepEqual(await r.mails(), [])
})

test('relay: 50 concurrent clients are all queued and all delivered', async (t) => {
  const r = await relayWorld(t)
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) => legacyClient(r.relay.port).sendMail({ from: ALICE, to: 'bob@fabrikam.com', subject: `concurrent ${i}`, text: `mail ${i}` })),
  )
  assert.equal(results.filter((x) => /^250 /.test(x.response)).length, 50)
  assert.equal((await r.w.mb.services.mails.list({ limit: 100 })).items.length, 50)
  await r.drain()
  const subjects = await Promise.all(r.w.smtp.messages.map(async (m) => (await simpleParser(m.raw)).subject))
  assert.deepEqual(subjects.sort(), Array.from({ length: 50 }, (_, i) => `concurrent ${i}`).sort())
  assert.equal((await r.w.mb.services.mails.list({ state: 'sent', limit: 100 })).items.length, 50)
})

test('relay: implicit TLS on MAILBRIDGE_RELAY_TLS_PORT takes the same logins', async (t) => {
  const r = await relayWorld(t, { tlsPort: true })
  await legacyClient(r.relay.tlsPort!, { user: USER, pass: PASSWORD }, { secure: true, requireTLS: false }).sendMail({ from: ALICE, to: 'bob@fabrikam.com', text: 'x' })
  assert.equal((await r.mails()).length, 1)
})

test('relay: MAILBRIDGE_RELAY_ALLOW refuses addresses outside the list before the greeting', async (t) => {
  const r = await relayWorld(t, { env: { MAILBRIDGE_RELAY_ALLOW: '10.0.0.0/8, fd00::/8' } })
  const e = await refusal(legacyClient(r.relay.port).sendMail({ from: ALICE, to: 'bob@fabrikam.com', text: 'x' }))
  assert.match(String(e.response ?? (e as Error).message), /554|not in MAILBRIDGE_RELAY_ALLOW/)
  assert.deepEqual(await r.mails(), [])
  assert.throws(() => parseAllowList(['10.0.0.0/33']), ConfigError)
  assert.throws(() => parseAllowList(['printer.local']), /not an IP address or CIDR range/)
  assert.ok(parseAllowList(['127.0.0.1'])!.check('127.0.0.1', 'ipv4'))
})

test('relay: behind a proxy in MAILBRIDGE_TRUST_PROXY the PROXY protocol header names the client that MAILBRIDGE_RELAY_ALLOW checks', async (t) => {
  const r = await relayWorld(t, { env: { MAILBRIDGE_TRUST_PROXY: '127.0.0.1', MAILBRIDGE_RELAY_ALLOW: '203.0.113.0/24' } })
  const inside = await SmtpTalk.open(r.relay.port, '127.0.0.1', { proxyHeader: 'PROXY TCP4 203.0.113.7 127.0.0.1 40000 25' })
  t.after(() => inside.destroy())
  assert.equal((await inside.greeting).code, 220)
  assert.equal((await inside.cmd('EHLO printer')).code, 250)
  const outside = await SmtpTalk.open(r.relay.port, '127.0.0.1', { proxyHeader: 'PROXY TCP4 198.51.100.9 127.0.0.1 40001 25' })
  t.after(() => outside.destroy())
  const refused = await outside.greeting
  assert.equal(refused.code, 554)
  assert.match(refused.text, /198\.51\.100\.9 may not use this relay/)
})

test('relay: without a configured certificate a self-signed one is generated into the data folder and used', async (t) => {
  const r = await relayWorld(t, { env: { MAILBRIDGE_RELAY_TLS_CERT: '', MAILBRIDGE_RELAY_TLS_KEY: '' } })
  const cert = readFileSync(join(r.w.mb.dir, 'relay-tls', 'cert.pem'))
  await legacyClient(r.relay.port, { user: USER, pass: PASSWORD }, { tls: { servername: 'localhost', ca: cert } }).sendMail({ from: ALICE, to: 'bob@fabrikam.com', text: 'x' })
  assert.equal((await r.mails()).length, 1)
})
