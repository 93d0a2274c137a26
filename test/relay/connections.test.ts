import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { test } from 'node:test'
import { relayWorld } from './relay-world.ts'
import { SmtpTalk } from './smtp-talk.ts'

/** Everything the relay says on a fresh connection until it closes it. */
function untilClosed(port: number, o: { dribble?: string; everyMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let said = ''
    let timer: NodeJS.Timeout | undefined
    socket.on('data', (d) => {
      said += d.toString()
      // After the greeting, a client that sends one byte at a time and never finishes its command.
      if (o.dribble && !timer) {
        let i = 0
        timer = setInterval(() => socket.write(o.dribble![i++ % o.dribble!.length]!), o.everyMs)
      }
    })
    socket.on('close', () => {
      clearInterval(timer)
      resolve(said)
    })
    socket.on('error', reject)
  })
}

test('relay connections: one address beyond MAILBRIDGE_RELAY_MAX_CONNECTIONS_PER_ADDRESS gets 421 4.7.0, and a closed one frees its place', async (t) => {
  const r = await relayWorld(t, { env: { MAILBRIDGE_RELAY_MAX_CONNECTIONS_PER_ADDRESS: '2' } })
  const a = await SmtpTalk.open(r.relay.port)
  const b = await SmtpTalk.open(r.relay.port)
  t.after(() => b.destroy())
  assert.equal((await a.greeting).code, 220)
  assert.equal((await b.greeting).code, 220)
  const c = await SmtpTalk.open(r.relay.port)
  t.after(() => c.destroy())
  const refused = await c.greeting
  assert.equal(refused.code, 421)
  assert.match(refused.text, /^4\.7\.0 Too many connections from 127\.0\.0\.1 \(MAILBRIDGE_RELAY_MAX_CONNECTIONS_PER_ADDRESS=2\)/)
  assert.equal((await a.cmd('QUIT')).code, 221)
  // The relay counts a connection out when it has seen it close: try until it has.
  let d: SmtpTalk
  for (;;) {
    d = await SmtpTalk.open(r.relay.port)
    if ((await d.greeting).code === 220) break
    d.destroy()
    await new Promise((res) => setTimeout(res, 20))
  }
  t.after(() => d.destroy())
  assert.equal((await d.cmd('EHLO printer.local')).code, 250)
})

test('relay connections: beyond MAILBRIDGE_RELAY_MAX_CONNECTIONS in all, a connection gets 421', async (t) => {
  const r = await relayWorld(t, { env: { MAILBRIDGE_RELAY_MAX_CONNECTIONS: '2' } })
  const open = [await SmtpTalk.open(r.relay.port), await SmtpTalk.open(r.relay.port)]
  t.after(() => open.forEach((o) => o.destroy()))
  const third = await SmtpTalk.open(r.relay.port)
  t.after(() => third.destroy())
  const refused = await third.greeting
  assert.equal(refused.code, 421)
  assert.match(refused.text, /Too many/)
})

// The timeout is a guard against hanging for ever when the command deadline is missing, not a measure.
test('relay connections: an idle client is closed after MAILBRIDGE_RELAY_IDLE_TIMEOUT_S, one that dribbles a command after MAILBRIDGE_RELAY_COMMAND_TIMEOUT_S', { timeout: 120_000 }, async (t) => {
  const r = await relayWorld(t, { env: { MAILBRIDGE_RELAY_IDLE_TIMEOUT_S: '1', MAILBRIDGE_RELAY_COMMAND_TIMEOUT_S: '2' } })
  const idle = await untilClosed(r.relay.port)
  assert.match(idle, /^220 /)
  assert.match(idle, /\r\n421 /, 'the idle client is told before it is closed')
  // One byte every 300 ms keeps the socket busy (never idle for 1 s) but never ends the command.
  const slow = await untilClosed(r.relay.port, { dribble: 'NOOP slowly, one byte at a time ', everyMs: 300 })
  assert.match(slow, /\r\n421 4\.4\.2 Command timeout/)
  assert.ok(r.w.mb.logs.some((l) => l.includes('MAILBRIDGE_RELAY_COMMAND_TIMEOUT_S')))
})
