// The baseline: raw nodemailer with a pooled transport (3 connections, like Mailbridge), in its own process.
// argv: port token total; prints {"seconds": n} on stdout.
import { performance } from 'node:perf_hooks'
import nodemailer from 'nodemailer'
import { ALICE } from '../test/support/world.ts'

const [port, token, total] = [Number(process.argv[2]), process.argv[3]!, Number(process.argv[4])]
const mail = (i: number) => ({ from: ALICE, to: ['bob@fabrikam.com'], subject: `Bench ${i}`, text: `Hello ${i}\n`.repeat(20), html: `<p>Hello ${i}</p>`.repeat(20) })
const transport = nodemailer.createTransport({ pool: true, maxConnections: 3, maxMessages: 100, host: '127.0.0.1', port, requireTLS: true, auth: { type: 'OAuth2', user: ALICE, accessToken: token } })
const t0 = performance.now()
await Promise.all(Array.from({ length: total }, (_, i) => transport.sendMail(mail(i))))
process.stdout.write(JSON.stringify({ seconds: (performance.now() - t0) / 1000 }) + '\n')
transport.close()
