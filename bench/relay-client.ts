// A legacy application in its own process: nodemailer with a password over STARTTLS to the relay.
// argv: port user pass total concurrency mode; mode "pooled" keeps `concurrency` connections open (an application
// server), "fresh" opens one connection per mail (a printer or scanner: TLS handshake and AUTH every time).
// Prints {"latencies":[...], "seconds": n, "started": epoch ms} on stdout.
import { performance } from 'node:perf_hooks'
import nodemailer from 'nodemailer'
import { ALICE } from '../test/support/world.ts'
import { load } from './lib.ts'

const [port, user, pass, total, concurrency, mode] = [Number(process.argv[2]), process.argv[3]!, process.argv[4]!, Number(process.argv[5]), Number(process.argv[6]), process.argv[7] ?? 'pooled']
// The same message as bench/http-load.ts posts to the API.
const mail = (i: number) => ({ from: ALICE, to: ['bob@fabrikam.com'], subject: `Bench ${i}`, text: `Hello ${i}\n`.repeat(20), html: `<p>Hello ${i}</p>`.repeat(20) })
const options = { host: '127.0.0.1', port, requireTLS: true, tls: { servername: 'localhost' }, auth: { user, pass } }
const pooled = mode === 'pooled' ? nodemailer.createTransport({ ...options, pool: true, maxConnections: concurrency, maxMessages: Infinity }) : undefined
const started = Date.now()
const t0 = performance.now()
const latencies = await load(total, concurrency, async (i) => {
  const transport = pooled ?? nodemailer.createTransport(options)
  const info = await transport.sendMail(mail(i))
  if (!/^250 /.test(info.response)) throw new Error(`relay answered ${info.response}`)
})
process.stdout.write(JSON.stringify({ latencies, seconds: (performance.now() - t0) / 1000, started }) + '\n')
pooled?.close()
