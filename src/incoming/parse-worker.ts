import { parentPort } from 'node:worker_threads'
import { parseOrKeep } from './parse.ts'

// One parser thread of the ParsePool (parse.ts): raw bytes in, parsed fields out.
parentPort!.on('message', async (m: { seq: number; raw: Uint8Array }) => {
  const raw = Buffer.from(m.raw.buffer, m.raw.byteOffset, m.raw.byteLength)
  parentPort!.postMessage({ seq: m.seq, parsed: await parseOrKeep(raw) })
})
