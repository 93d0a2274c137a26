import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { simpleParser } from 'mailparser'
import { mimeSizeOf } from '../../src/outgoing/mail-size.ts'
import { ALICE } from '../support/world.ts'
import { legacyClient, PASSWORD, refusal, relayWorld, USER, type RelayWorld } from './relay-world.ts'
import { plainAuth, SmtpTalk, type Reply } from './smtp-talk.ts'

/** A signed-in conversation over STARTTLS, as a device has it once it said hello. */
async function signedIn(r: RelayWorld, hello = 'EHLO printer.local'): Promise<SmtpTalk> {
  const talk = await SmtpTalk.open(r.relay.port)
  assert.equal((await talk.cmd(hello)).code, 250)
  await talk.starttls()
  assert.equal((await talk.cmd(hello)).code, 250)
  assert.equal((await talk.cmd(`AUTH PLAIN ${plainAuth(USER, PASSWORD)}`)).code, 235)
  return talk
}

/** MAIL, RCPT, DATA and the message as the device writes it (its line breaks as they are); the reply to the end of data. */
async function submit(talk: SmtpTalk, raw: string, from = ALICE): Promise<Reply> {
  assert.equal((await talk.cmd(`MAIL FROM:<${from}>`)).code, 250)
  assert.equal((await talk.cmd('RCPT TO:<bob@fabrikam.com>')).code, 250)
  assert.equal((await talk.cmd('DATA')).code, 354)
  return talk.cmd(`${raw}\r\n.`)
}

test('relay devices: EHLO with a model name, a bare EHLO and a bare HELO are accepted, and the odd name is logged', async (t) => {
  const r = await relayWorld(t)
  for (const hello of ['EHLO HP LaserJet M404', 'EHLO', 'HELO', 'HELO Brother MFC-L2750DW series']) {
    const talk = await signedIn(r, hello)
    assert.equal((await submit(talk, `From: ${ALICE}\r\nTo: bob@fabrikam.com\r\nSubject: ${hello}\r\n\r\nscan`)).code, 250, hello)
    talk.destroy()
  }
  assert.deepEqual((await r.mails()).map((m) => m.subject).sort(), ['EHLO', 'EHLO HP LaserJet M404', 'HELO', 'HELO Brother MFC-L2750DW series'])
  assert.ok(r.w.mb.logs.some((l) => l.includes('HP LaserJet M404') && l.includes('EHLO')), 'the odd name is logged as it came')
})

test('relay devices: AUTH is not offered before STARTTLS, only after it (and before it from loopback under MAILBRIDGE_RELAY_INSECURE_LOCALHOST)', async (t) => {
  const r = await relayWorld(t)
  const talk = await SmtpTalk.open(r.relay.port)
  t.after(() => talk.destroy())
  const before = (await talk.cmd('EHLO printer.local')).text
  assert.match(before, /^STARTTLS$/m)
  assert.doesNotMatch(before, /AUTH/, 'no password is invited over a clear connection')
  await talk.starttls()
  assert.match((await talk.cmd('EHLO printer.local')).text, /^AUTH PLAIN LOGIN$/m)

  const local = await relayWorld(t, { env: { MAILBRIDGE_RELAY_INSECURE_LOCALHOST: '1' } })
  const plain = await SmtpTalk.open(local.relay.port)
  t.after(() => plain.destroy())
  assert.match((await plain.cmd('EHLO app.local')).text, /^AUTH PLAIN LOGIN$/m)
})

test('relay devices: an oversized mail gets the documented 552 5.3.4 whether its SIZE says so or its data does', async (t) => {
  const r = await relayWorld(t, { env: { MAILBRIDGE_MAX_MAIL_BYTES: '20000' } })
  const size = mimeSizeOf(20000)
  const talk = await signedIn(r)
  t.after(() => talk.destroy())
  const declared = await talk.cmd(`MAIL FROM:<${ALICE}> SIZE=${size + 1}`)
  assert.equal(declared.code, 552)
  assert.match(declared.text, /^5\.3\.4 The message is larger than \d+ bytes/)
  const sent = await submit(talk, `From: ${ALICE}\r\nSubject: big\r\n\r\n${`${'x'.repeat(998)}\r\n`.repeat(Math.ceil(size / 1000))}`)
  assert.equal(sent.code, 552)
  assert.match(sent.text, /^5\.3\.4 The message is larger than \d+ bytes/)
  const client = await refusal(legacyClient(r.relay.port).sendMail({ from: ALICE, to: 'bob@fabrikam.com', text: 'x'.repeat(size) }))
  assert.match(client.response ?? '', /^552 5\.3\.4 The message is larger than/)
  assert.deepEqual(await r.mails(), [])
})

test('relay devices: allowed_from holds for every address in From and Sender, and a second From field is refused', async (t) => {
  const r = await relayWorld(t, { allowedFrom: [ALICE] })
  const talk = await signedIn(r)
  t.after(() => talk.destroy())
  const list = await submit(talk, `From: ${ALICE}, ceo@contoso.com\r\nTo: bob@fabrikam.com\r\nSubject: list\r\n\r\nx`)
  assert.equal(list.code, 550)
  assert.match(list.text, /^5\.7\.1 .* may not send as ceo@contoso\.com \(the From header\)/)
  const twice = await submit(talk, `From: ${ALICE}\r\nFrom: ceo@contoso.com\r\nTo: bob@fabrikam.com\r\nSubject: twice\r\n\r\nx`)
  assert.equal(twice.code, 554)
  assert.match(twice.text, /^5\.6\.0 .*2 From fields.*RFC 5322/)
  const sender = await submit(talk, `From: ${ALICE}\r\nSender: ceo@contoso.com\r\nTo: bob@fabrikam.com\r\nSubject: sender\r\n\r\nx`)
  assert.equal(sender.code, 550)
  assert.match(sender.text, /may not send as ceo@contoso\.com \(the Sender header\)/)
  const group = await submit(talk, `From: Team: ${ALICE}, ceo@contoso.com;\r\nTo: bob@fabrikam.com\r\nSubject: group\r\n\r\nx`)
  assert.equal(group.code, 550)
  assert.deepEqual(await r.mails(), [])
  assert.equal((await submit(talk, `From: Alice <${ALICE}>\r\nSender: ${ALICE}\r\nTo: bob@fabrikam.com\r\nSubject: fine\r\n\r\nx`)).code, 250)
  assert.equal((await r.mails()).length, 1)
})

test('relay devices: a bare CR in the header block is refused (no field hides behind it); bare LF line ends are normalised and Bcc still goes', async (t) => {
  const r = await relayWorld(t)
  const talk = await signedIn(r)
  t.after(() => talk.destroy())
  const cr = await submit(talk, `From: ${ALICE}\r\nTo: bob@fabrikam.com\r\nX-A: 1\rBcc: hidden@evil.example\r\nSubject: cr\r\n\r\nx`)
  assert.equal(cr.code, 554)
  assert.match(cr.text, /^5\.6\.0 .*bare CR/)
  assert.deepEqual(await r.mails(), [])

  assert.equal((await submit(talk, `From: ${ALICE}\nTo: bob@fabrikam.com\nX-A: 1\nBcc: hidden@evil.example\nSubject: lf\n\nbody`)).code, 250)
  await r.drain()
  assert.equal(r.w.smtp.messages.length, 1)
  const raw = r.w.smtp.messages[0]!.raw.toString('latin1')
  const parsed = await simpleParser(r.w.smtp.messages[0]!.raw)
  assert.equal(parsed.subject, 'lf')
  assert.equal(parsed.headers.get('bcc'), undefined)
  assert.ok(!raw.includes('hidden@evil.example'), 'the Bcc address reaches no header')
  assert.doesNotMatch(raw.slice(0, raw.indexOf('\r\n\r\n')), /\r(?!\n)|(?<!\r)\n/, 'the header block upstream has CRLF line ends only')
})

test('relay devices: Python smtplib, a real client, sees no AUTH before STARTTLS, logs in after it, and gets 552 5.3.4 for a mail over the limit', async (t) => {
  const r = await relayWorld(t, { env: { MAILBRIDGE_MAX_MAIL_BYTES: '20000' } })
  const script = `
import smtplib, ssl, sys
port, user, password, big = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
s = smtplib.SMTP('127.0.0.1', port)
s.ehlo()
print('auth-before-tls', s.has_extn('auth'))
s.starttls(context=ssl.create_default_context(cafile=sys.argv[5]))
s.ehlo()
print('auth-after-tls', s.has_extn('auth'))
s.login(user, password)
s.sendmail('${ALICE}', ['bob@fabrikam.com'], 'From: ${ALICE}\\r\\nTo: bob@fabrikam.com\\r\\nSubject: from python\\r\\n\\r\\nhello\\r\\n')
try:
    s.sendmail('${ALICE}', ['bob@fabrikam.com'], 'Subject: big\\r\\n\\r\\n' + ('x' * 998 + '\\r\\n') * big)
except smtplib.SMTPException as e:
    code, text = (e.smtp_code, e.smtp_error) if hasattr(e, 'smtp_code') else next(iter(e.recipients.values()))
    print('big', code, text.decode())
s.quit()
`
  const ca = fileURLToPath(new URL('../support/tls/ca.pem', import.meta.url))
  const { stdout } = await promisify(execFile)('python3', ['-c', script, String(r.relay.port), USER, PASSWORD, String(Math.ceil(mimeSizeOf(20000) / 1000)), ca])
  assert.match(stdout, /^auth-before-tls False$/m)
  assert.match(stdout, /^auth-after-tls True$/m)
  assert.match(stdout, /^big 552 5\.3\.4 The message is larger than/m)
  assert.deepEqual((await r.mails()).map((m) => m.subject), ['from python'])
})
