import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { buildInto, postMail, startNode } from '../support/process.ts'
import { startWorld } from '../support/world.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

test('build: the compiled node (plain node dist/src/main.js) serves the API and sends from its background thread', async (t) => {
  const name = `build-${process.pid}`
  t.after(() => rmSync(join(ROOT, '.tmp', name), { recursive: true, force: true }))
  const main = await buildInto(name)

  const w = await startWorld({ shared: true })
  t.after(w.close)
  const server = await w.outgoingServer()
  await w.connect(server.id)
  const node = await startNode(w.nodeEnv(), ['serve'], [], main)
  t.after(() => node.child.kill('SIGKILL'))
  const res = await postMail(node, 'from the build')
  assert.equal(res.status, 202)
  await w.smtp.waitFor(1, 30_000)
  const metrics = await (await fetch(`${node.url}/metrics`)).text()
  assert.match(metrics, /^mailbridge_send_duration_seconds_count\{outcome="sent"\} 1$/m, 'sent by the background thread, counted')
  node.child.kill('SIGTERM')
  assert.equal(await node.exited, 0, node.output())
})
