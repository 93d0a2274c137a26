import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ALICE } from '../support/world.ts'
import { legacyClient, PASSWORD, refusal, relayWorld, USER } from './relay-world.ts'
import { SmtpTalk } from './smtp-talk.ts'

/** The value of one series in the node's /metrics text, 0 when absent. */
async function series(r: Awaited<ReturnType<typeof relayWorld>>, name: string): Promise<number> {
  const text = (await r.w.mb.app.inject({ url: '/metrics' })).body
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return line ? Number(line.slice(name.length + 1)) : 0
}

test('relay metrics: /metrics counts open sessions, AUTH failures and mails accepted and refused by reason', async (t) => {
  const r = await relayWorld(t, { allowedFrom: [ALICE] })
  const before = {
    wrong: await series(r, 'mailbridge_relay_auth_failures_total{reason="wrong"}'),
    accepted: await series(r, 'mailbridge_relay_mails_accepted_total'),
    refused: await series(r, 'mailbridge_relay_mails_refused_total{reason="sender_not_allowed"}'),
  }
  const idle = await SmtpTalk.open(r.relay.port)
  t.after(() => idle.destroy())
  assert.equal(await series(r, 'mailbridge_relay_sessions'), 1, 'the open connection is a session')

  assert.equal((await refusal(legacyClient(r.relay.port, { user: USER, pass: 'wrong-password' }).sendMail({ from: ALICE, to: 'bob@fabrikam.com', text: 'x' }))).responseCode, 535)
  await legacyClient(r.relay.port).sendMail({ from: ALICE, to: 'bob@fabrikam.com', text: 'x' })
  assert.equal((await refusal(legacyClient(r.relay.port, { user: USER, pass: PASSWORD }).sendMail({ from: 'ceo@contoso.com', to: 'bob@fabrikam.com', text: 'x' }))).responseCode, 550)

  assert.equal(await series(r, 'mailbridge_relay_auth_failures_total{reason="wrong"}'), before.wrong + 1)
  assert.equal(await series(r, 'mailbridge_relay_mails_accepted_total'), before.accepted + 1)
  assert.equal(await series(r, 'mailbridge_relay_mails_refused_total{reason="sender_not_allowed"}'), before.refused + 1)
})
