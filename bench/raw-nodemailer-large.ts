// The baseline for bench/large-mail: raw nodemailer sending the same large mails one after another to the same
// SMTP peer, in its own process. argv: port token total attachmentBytes; prints {"seconds", "peakRssBytes"}.
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import nodemailer from 'nodemailer'
import { ALICE } from '../test/support/world.ts'

const [port, token, total, bytes] = [Number(process.argv[2]), process.argv[3]!, Number(process.argv[4]), Number(process.argv[5])]
const transport = nodemailer.createTransport({ host: '127.0.0.1', port, requireTLS: true, auth: { type: 'OAuth2', user: ALICE, accessToken: token } })
const t0 = performance.now()
for (let i = 0; i < total; i++) {
  const file = randomBytes(bytes)
  await transport.sendMail({ from: ALICE, to: ['bob@fabrikam.com'], subject: `Large ${i}`, text: 'The scan is attached.', attachments: [{ filename: `scan-${i}.pdf`, contentType: 'application/pdf', content: file }] })
}
process.stdout.write(JSON.stringify({ seconds: (performance.now() - t0) / 1000, peakRssBytes: process.resourceUsage().maxRSS * 1024 }) + '\n')
transport.close()
