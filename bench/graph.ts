/**
 * bench/graph: the Graph client (src/graph/) against the Graph emulator, beside raw fetch() doing the same requests
 * with the same concurrency, in the same run and process (the emulator runs here too, so both share its cost).
 *   send:  N mails by sendMime (sendMail, base64 MIME) beside fetch() posting the same body
 *   fetch: N messages by delta pages and $value beside fetch() of the same pages and $values
 * Lanes are bound to mailboxes, 4 a mailbox, so neither side meets the mailbox concurrency limit. This is the
 * client's own cost; the queue and the fetcher on top of it are measured once they are wired to it.
 *   npm run bench:graph -- [mails=2000] [concurrency=8]
 */
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import MailComposer from 'nodemailer/lib/mail-composer'
import { Secret } from '../src/crypto/secret.ts'
import type { GraphTarget } from '../src/graph/graph-request.ts'
import { delta, folderId, messageMime } from '../src/graph/graph-read.ts'
import { sendMime } from '../src/graph/graph-send.ts'
import { MAILBOX_CONCURRENCY, startGraphWorld } from '../test/support/graph-emulator.ts'
import { table } from './lib.ts'

const N = Number(process.argv[2] ?? 2000)
const CONCURRENCY = Number(process.argv[3] ?? 8)
const PAGE = 50
const mailboxes = Array.from({ length: Math.ceil(CONCURRENCY / MAILBOX_CONCURRENCY) }, (_, i) => `bench${i}@contoso.example`)
const { id, g, close } = await startGraphWorld(mailboxes)
const targets: GraphTarget[] = mailboxes.map((m) => ({
  endpoint: g.endpoint, mailbox: m, delegated: true,
  token: new Secret(id.mintAccessToken({ user: m, scope: 'https://graph.microsoft.com/Mail.Send https://graph.microsoft.com/Mail.ReadWrite' })),
}))
const auth = (t: GraphTarget) => ({ authorization: `Bearer ${t.token.reveal()}` })

/** `total` jobs on `CONCURRENCY` lanes, lane k working for mailbox ⌊k/4⌋; answers the seconds it took. */
async function lanes(total: number, one: (i: number, t: GraphTarget) => Promise<void>): Promise<number> {
  let next = 0
  const t0 = performance.now()
  await Promise.all(Array.from({ length: CONCURRENCY }, async (_, k) => {
    const t = targets[Math.floor(k / MAILBOX_CONCURRENCY)]!
    while (next < total) await one(next++, t)
  }))
  return (performance.now() - t0) / 1000
}

const mimes = await Promise.all(Array.from({ length: 50 }, (_, i) => new MailComposer({
  from: 'x@contoso.example', to: 'carol@fabrikam.example', subject: `Bench ${i}`, text: randomBytes(3000).toString('base64'), messageId: `<b${i}@contoso.example>`,
}).compile().build()))
const mimeFor = (i: number, t: GraphTarget) => Buffer.from(mimes[i % mimes.length]!.toString('latin1').replace(/^From: .*$/m, `From: ${t.mailbox}`), 'latin1')

// ---------- send ----------
const rawOne = async (i: number, t: GraphTarget) => {
  const res = await fetch(`${g.endpoint}v1.0/me/sendMail`, { method: 'POST', headers: { ...auth(t), 'content-type': 'text/plain' }, body: mimeFor(i, t).toString('base64') })
  if (res.status !== 202) throw new Error(`raw sendMail: ${res.status} ${await res.text()}`)
  await res.arrayBuffer()
}
const clientOne = async (i: number, t: GraphTarget) => void (await sendMime(t, mimeFor(i, t)))
// Both sides warm up first (JIT, connection pools), so neither is measured cold.
const WARM = Math.min(200, N)
await lanes(WARM, rawOne)
await lanes(WARM, clientOne)
const rawSend = await lanes(N, rawOne)
const clientSend = await lanes(N, clientOne)
if (g.sent.length !== 2 * (N + WARM)) throw new Error(`sent ${g.sent.length}, expected ${2 * (N + WARM)}`)

// ---------- fetch ----------
const perMailbox = Math.ceil(N / mailboxes.length)
for (const m of mailboxes) for (let i = 0; i < perMailbox; i++) g.deliver(m, mimes[i % mimes.length]!)

/** All messages of each mailbox's inbox, listed page by page, then their MIME with 4 requests at a time per mailbox. */
async function fetchAll(list: (t: GraphTarget) => Promise<string[]>, value: (t: GraphTarget, id: string) => Promise<number>): Promise<{ s: number; bytes: number }> {
  let bytes = 0
  const t0 = performance.now()
  await Promise.all(targets.map(async (t) => {
    const ids = await list(t)
    let next = 0
    await Promise.all(Array.from({ length: Math.min(MAILBOX_CONCURRENCY, CONCURRENCY) }, async () => {
      while (next < ids.length) {
        const n = await value(t, ids[next++]!)
        bytes += n
      }
    }))
  }))
  return { s: (performance.now() - t0) / 1000, bytes }
}
const raw = await fetchAll(async (t) => {
  const ids: string[] = []
  let link: string | undefined = `${g.endpoint}v1.0/me/mailFolders/inbox/messages/delta?$select=id,internetMessageId,isRead,receivedDateTime`
  while (link) {
    const page = (await (await fetch(link, { headers: { ...auth(t), prefer: `odata.maxpagesize=${PAGE}` } })).json()) as { value: Array<{ id: string }>; '@odata.nextLink'?: string }
    ids.push(...page.value.map((v) => v.id))
    link = page['@odata.nextLink']
  }
  return ids
}, async (t, msg) => (await (await fetch(`${g.endpoint}v1.0/me/messages/${encodeURIComponent(msg)}/$value`, { headers: auth(t) })).arrayBuffer()).byteLength)
const client = await fetchAll(async (t) => {
  const ids: string[] = []
  for await (const page of delta(t, await folderId(t, 'inbox'), undefined, { pageSize: PAGE })) ids.push(...page.messages.map((m) => m.id))
  return ids
}, async (t, msg) => (await messageMime(t, msg)).length)
if (raw.bytes !== client.bytes) throw new Error(`fetched ${client.bytes} bytes by the client, ${raw.bytes} raw`)

const throttled = g.requests.filter((r) => r.status === 429).length
await close()
const fetched = perMailbox * mailboxes.length
console.log(`bench/graph: ${N} mails sent and ${fetched} messages fetched, concurrency ${CONCURRENCY} (${mailboxes.length} mailboxes × ${MAILBOX_CONCURRENCY}), one process; ${throttled} answers were 429`)
console.log(table([
  { phase: 'send', 'raw fetch() /s': N / rawSend, 'client /s': N / clientSend, ratio: rawSend / clientSend },
  { phase: 'fetch (delta + $value)', 'raw fetch() /s': fetched / raw.s, 'client /s': fetched / client.s, ratio: raw.s / client.s },
]))
