// A load generator in its own process, so it does not share a core with the SMTP peer it is measured against.
// argv: url token total concurrency; prints {"latencies":[...], "seconds": n, "started": epoch ms} on stdout.
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import { ALICE } from '../test/support/world.ts'
import { load } from './lib.ts'

const [url, token, total, concurrency] = [process.argv[2]!, process.argv[3]!, Number(process.argv[4]), Number(process.argv[5])]
export const benchMail = (i: number) => ({ from: ALICE, to: ['bob@fabrikam.com'], subject: `Bench ${i}`, text: `Hello ${i}\n`.repeat(20), html: `<p>Hello ${i}</p>`.repeat(20) })
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
const post = (i: number) =>
  new Promise<void>((resolve, reject) => {
    const payload = JSON.stringify(benchMail(i))
    const req = http.request(`${url}/api/v1/mail`, { method: 'POST', agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      let text = ''
      res.on('data', (d) => (text += d))
      res.on('end', () => (res.statusCode === 202 ? resolve() : reject(new Error(`HTTP ${res.statusCode}: ${text}`))))
    })
    req.on('error', reject)
    req.end(payload)
  })
const started = Date.now()
const t0 = performance.now()
const latencies = await load(total, concurrency, post)
process.stdout.write(JSON.stringify({ latencies, seconds: (performance.now() - t0) / 1000, started }) + '\n')
agent.destroy()
