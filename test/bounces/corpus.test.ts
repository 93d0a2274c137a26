import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { test } from 'node:test'
import { recognise, type Recognition, type RecipientReport } from '../../src/bounces/recognise.ts'

/**
 * Real bounces and automatic replies from many MTAs (test/corpus/bounces, the Sisimai project's "set-of-emails")
 * against what Sisimai's own tables expect of each (expected.json). The rules follow the RFCs and the MTAs'
 * templates; the corpus checks them against formats nobody here wrote.
 */
const DIR = new URL('../corpus/bounces/', import.meta.url)

interface Expected {
  file: string
  kind: 'bounce' | 'auto_reply' | 'not_bounce'
  recipients: Array<{ index: number; status: string | null; reply_code: string | null; reason: string }>
}
const expected = JSON.parse(readFileSync(new URL('expected.json', DIR), 'utf8')) as Expected[]

/** Files out of reach of rules that follow the RFCs and the formats, and why. */
const NOT_RECOGNISED: Record<string, string> = {
  'lhost-amazonses-11.eml': 'an Amazon SES complaint (feedback on a delivered mail), not a delivery report',
  'lhost-postfix-75.eml': "a Postfix SMTP server's error transcript for the postmaster, not a report to the sender",
}

/**
 * Recipients whose status Sisimai derives from its own reading of the diagnostic text, where the report's
 * codes say something else.
 */
const STATUS_DIFFERS: Record<string, string> = {
  // RFC 3464 §2.3.4: Status is the reporting MTA's verdict for the recipient. It is kept when it says more than
  // its class; Sisimai takes the remote server's code from the diagnostic text instead.
  'lhost-sendmail-33.eml#1': 'Status 5.1.1; the remote server replied 5.7.1',
  'lhost-sendmail-39.eml#1': 'Status 4.4.7 (expired); the last attempt was refused with 4.4.5',
  'lhost-amazonses-17.eml#1': 'Status 4.4.7 (expired); the last attempt timed out with 4.4.2',
  'lhost-exchange2007-05.eml#1': 'Status 4.4.7 (QUEUE.Expired); Sisimai reads 4.4.1',
}

/** Files whose report names fewer recipients than Sisimai counts. */
const RECIPIENTS_DIFFER: Record<string, string> = {
  'rfc3464-01.eml': 'one Final-Recipient group; Sisimai also counts <nekochan> from the text part',
}

const ACTIONS = new Set(['failed', 'delayed', 'delivered', 'relayed', 'expanded'])
const ADDRESS = /^[^\s@]*@[^\s@]+$/

const results = new Map<string, Recognition>()
const recognised = async (file: string) => {
  let r = results.get(file)
  if (!r) results.set(file, (r = await recognise(readFileSync(new URL(file, DIR)))))
  return r
}

test('corpus: every file is in expected.json and every expected file is there', () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.eml')).sort()
  assert.deepEqual(files, expected.map((e) => e.file).sort())
})

for (const e of expected) {
  test(`corpus: ${e.file} is recognised as ${e.kind}`, async () => {
    const r = await recognised(e.file)
    if (NOT_RECOGNISED[e.file]) {
      assert.equal(r.bounce, null, `${e.file} is listed as a known miss (${NOT_RECOGNISED[e.file]}) but is now recognised: take it off the list`)
      return
    }
    if (e.kind === 'not_bounce') {
      assert.equal(r.bounce, null)
      assert.equal(r.auto_reply, false)
      return
    }
    if (e.kind === 'auto_reply') {
      assert.equal(r.bounce, null, 'an automatic reply is not a bounce')
      assert.equal(r.auto_reply, true)
      return
    }
    assert.ok(r.bounce, 'a bounce is recognised')
    assert.equal(r.auto_reply, false, 'a bounce is not also an automatic reply')
    if (!RECIPIENTS_DIFFER[e.file]) assert.equal(r.bounce.recipients.length, e.recipients.length, 'one report per failed recipient')
    for (const [i, want] of e.recipients.entries()) {
      const got: RecipientReport | undefined = r.bounce.recipients[i]
      if (!got) continue
      assert.match(got.recipient, ADDRESS)
      assert.ok(ACTIONS.has(got.action), `action ${got.action}`)
      if (want.status === null || STATUS_DIFFERS[`${e.file}#${want.index}`]) continue
      assert.equal(got.status, want.status, `recipient ${want.index} (${got.recipient}): status`)
      // RFC 3463 §2: the class says whether the failure is permanent; a permanent one is never "delayed".
      if (got.status?.startsWith('5')) assert.equal(got.action, 'failed')
    }
  })
}

test('corpus: accuracy', async (t) => {
  const bounces = expected.filter((e) => e.kind === 'bounce')
  let detected = 0
  let withStatus = 0
  let exact = 0
  for (const e of bounces) {
    const r = await recognised(e.file)
    if (r.bounce) detected++
    for (const want of e.recipients) {
      if (want.status === null) continue
      withStatus++
      if (r.bounce?.recipients[want.index - 1]?.status === want.status) exact++
    }
  }
  const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(1)} %`
  t.diagnostic(`bounces detected: ${detected}/${bounces.length} (${pct(detected, bounces.length)}); status exact: ${exact}/${withStatus} (${pct(exact, withStatus)})`)
  assert.ok(detected > 0)
})
