import { readdirSync, readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import MailComposer from 'nodemailer/lib/mail-composer/index.js'
import { recognise } from '../src/bounces/recognise.ts'
import { parseMessage } from '../src/incoming/parse.ts'
import { table } from './lib.ts'

/**
 * What bounce and automatic-reply recognition costs per message, over the bounce corpus and over ordinary mail,
 * beside mailparser parsing the same messages the way the fetch path does (src/incoming/parse.ts).
 * Usage: npm run bench:bounces -- [rounds]
 */
const rounds = Number(process.argv[2] ?? 20)
const dir = new URL('../test/corpus/bounces/', import.meta.url)
const corpus = readdirSync(dir).filter((f) => f.endsWith('.eml')).map((f) => readFileSync(new URL(f, dir)))
const pdf = Buffer.alloc(64 * 1024, 7)
const ordinary = await Promise.all(
  Array.from({ length: 200 }, (_, i) =>
    new MailComposer({
      from: 'Alice <alice@contoso.com>',
      to: 'bob@fabrikam.example',
      subject: `Re: Invoice ${i}`,
      inReplyTo: i % 2 ? `<m${i}@fabrikam.example>` : undefined,
      text: 'Thanks, paid today.\n'.repeat(20),
      html: `<p>${'Thanks, paid today. '.repeat(20)}</p>`,
      attachments: i % 3 === 0 ? [{ filename: 'invoice.pdf', content: pdf }] : [],
    })
      .compile()
      .build(),
  ),
)

async function perMessage(messages: Buffer[], one: (raw: Buffer) => Promise<unknown>): Promise<number> {
  for (const raw of messages) await one(raw) // warm up
  const t0 = performance.now()
  for (let r = 0; r < rounds; r++) for (const raw of messages) await one(raw)
  return ((performance.now() - t0) * 1000) / (rounds * messages.length)
}

const rows = []
for (const [name, messages] of [['bounce corpus', corpus], ['ordinary mail', ordinary]] as const) {
  const recognition = await perMessage(messages, recognise)
  const parsing = await perMessage(messages, parseMessage)
  rows.push({ messages: name, count: messages.length, 'recognise µs/msg': recognition, 'mailparser µs/msg (baseline)': parsing, 'recognise / parse': `${((100 * recognition) / parsing).toFixed(1)} %` })
}
console.log(`${rounds} rounds each\n${table(rows)}`)
