// The baseline: raw imapflow fetching every message's source (BODY.PEEK[]) from the folder in one streamed
// UID FETCH, in its own process, storing nothing. argv: host port user token; prints {"seconds", "messages", "bytes", "cpu", "machineCpu"}.
import { performance } from 'node:perf_hooks'
import { ImapFlow } from 'imapflow'
import { machineCpu } from './lib.ts'

const [host, port, user, token] = [process.argv[2]!, Number(process.argv[3]), process.argv[4]!, process.argv[5]!]
const t0 = performance.now()
const cpu0 = process.cpuUsage()
const machine0 = machineCpu()
const client = new ImapFlow({ host, port, secure: true, auth: { user, accessToken: token }, logger: false, disableAutoIdle: true })
await client.connect()
const lock = await client.getMailboxLock('INBOX', { readOnly: true })
let messages = 0
let bytes = 0
for await (const m of client.fetch('1:*', { uid: true, source: true }, { uid: true })) {
  messages++
  bytes += m.source?.length ?? 0
}
lock.release()
await client.logout()
const cpu = process.cpuUsage(cpu0)
process.stdout.write(JSON.stringify({ seconds: (performance.now() - t0) / 1000, messages, bytes, cpu: (cpu.user + cpu.system) / 1e6, machineCpu: machineCpu() - machine0 }) + '\n')
