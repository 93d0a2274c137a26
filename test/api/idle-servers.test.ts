import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startWorld } from '../support/world.ts'

const users = ['alice@contoso.com', 'bob@contoso.com', 'carol@contoso.com']

test('queue: outgoing servers without mail take no SMTP connection slot and open no connection; one with mail takes its own and sends', async (t) => {
  const w = await startWorld({ users })
  t.after(w.close)
  const servers = []
  for (const user of users) {
    const server = await w.outgoingServer({ username: user, body: { name: user, from_filter: user } })
    await w.connect(server.id, { user })
    servers.push(server)
  }
  const { mailWorker, database } = w.mb.services
  const slots = () => database.db.selectFrom('smtp_slots').select(['server_id']).execute()
  assert.equal(await mailWorker.tick(), 0)
  assert.deepEqual(await slots(), [], 'no mail, no slot taken')
  assert.equal((await w.mb.api('POST', '/api/v1/mail', { from: users[1], to: ['partner@fabrikam.com'], subject: 'Order', text: 'Thanks' })).statusCode, 202)
  assert.equal(await mailWorker.tick(), 1)
  await mailWorker.idle()
  await w.smtp.waitFor(1)
  assert.equal(w.smtp.messages[0]!.user, users[1])
  assert.deepEqual(new Set((await slots()).map((s) => s.server_id)), new Set([servers[1]!.id]), 'only the server with mail holds slots')
  assert.equal(w.smtp.connections.max, 1)
})

test('queue: with MAILBRIDGE_SEND_CONCURRENCY=1, four mailboxes with a mail each send one after another, and every mail goes out', async (t) => {
  const four = ['alice@contoso.com', 'bob@contoso.com', 'carol@contoso.com', 'dave@contoso.com']
  const w = await startWorld({ users: four, env: { MAILBRIDGE_SEND_CONCURRENCY: '1' } })
  t.after(w.close)
  for (const user of four) {
    const server = await w.outgoingServer({ username: user, body: { name: user, from_filter: user } })
    await w.connect(server.id, { user })
    assert.equal((await w.mb.api('POST', '/api/v1/mail', { from: user, to: ['partner@fabrikam.com'], subject: `From ${user}`, text: 'Hello' })).statusCode, 202)
  }
  const worker = w.mb.services.mailWorker
  const startedPerPass: number[] = []
  while (w.smtp.messages.length < four.length && startedPerPass.length < 20) {
    startedPerPass.push(await worker.tick())
    await worker.idle()
  }
  assert.deepEqual(new Set(w.smtp.messages.map((m) => m.user)), new Set(four), 'every mailbox sent its mail')
  assert.ok(startedPerPass.every((n) => n <= 1), `one mailbox at a time: started per pass ${startedPerPass}`)
  // A mailbox's connection ends (QUIT) as the next one opens, so two may overlap for a moment; never four.
  assert.ok(w.smtp.connections.max <= 2, `saw ${w.smtp.connections.max} connections at once`)
})
