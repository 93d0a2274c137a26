// The baseline of bench/mailboxes: raw imapflow polling many mailboxes once, in its own process, with at most
// `concurrency` sessions at a time; each poll is connect + AUTHENTICATE XOAUTH2 + SELECT (read-only) + UID SEARCH for
// the new messages + one streamed UID FETCH of their source + LOGOUT, storing nothing and setting no flag.
// argv: host port concurrency; stdin: [{user, token}]. Prints {"seconds", "mailboxes", "messages", "bytes", "max_rss_mb"}.
import { performance } from 'node:perf_hooks'
import { ImapFlow } from 'imapflow'
import { load } from './lib.ts'

const [host, port, concurrency] = [process.argv[2]!, Number(process.argv[3]), Number(process.argv[4])]
let input = ''
for await (const chunk of process.stdin) input += chunk
const boxes = JSON.parse(input) as Array<{ user: string; token: string }>
let messages = 0
let bytes = 0
const t0 = performance.now()
await load(boxes.length, concurrency, async (i) => {
  const { user, token } = boxes[i]!
  const client = new ImapFlow({ host, port, secure: true, auth: { user, accessToken: token }, logger: false, disableAutoIdle: true })
  client.on('error', () => undefined)
  await client.connect()
  await client.mailboxOpen('INBOX', { readOnly: true })
  const uids = (await client.search({ uid: '1:*' }, { uid: true })) || []
  if (uids.length) {
    for await (const m of client.fetch(uids.join(','), { uid: true, source: true }, { uid: true })) {
      messages++
      bytes += m.source?.length ?? 0
    }
  }
  await client.logout()
})
const seconds = (performance.now() - t0) / 1000
process.stdout.write(JSON.stringify({ seconds, mailboxes: boxes.length, messages, bytes, max_rss_mb: process.resourceUsage().maxRSS / 1024 }) + '\n')
