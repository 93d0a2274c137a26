import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { API_TOKEN } from './harness.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/**
 * The production build (tsconfig.build.json, as `npm run build` makes it) into `.tmp/<name>` — never the
 * operator's dist/; returns its main.js, for startNode's `main`.
 */
export async function buildInto(name: string): Promise<string> {
  const out = join(ROOT, '.tmp', name)
  await promisify(execFile)(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', out], { cwd: ROOT })
  return join(out, 'src/main.js')
}

/**
 * How a test starts the CLI: the src/main.js that test/run.ts compiled beside the sources when this module runs
 * compiled too, else the TypeScript through tsx (a file run by hand).
 */
export const MAIN: string[] = import.meta.url.endsWith('.js') ? ['src/main.js'] : ['--import', 'tsx', 'src/main.ts']

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
}

/** POST /api/v1/mail to a running node, as an application would. */
export const postMail = (node: Pick<Node, 'url'>, subject: string): Promise<Response> =>
  fetch(`${node.url}/api/v1/mail`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ to: ['bob@fabrikam.com'], subject, text: 'x' }),
  })

export interface Node {
  child: ChildProcess
  url: string
  output: () => string
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>
}

/**
 * Start `mailbridge serve` (or another command) as a real process, and wait until /healthz answers. `main`: a
 * compiled main.js (npm run build) to run instead of the TypeScript through tsx. `env` may be a function: it is
 * asked again when a port it chose (the relay's, say) was taken before the node could bind it.
 */
export async function startNode(env: Record<string, string> | (() => Promise<Record<string, string>>), args = ['serve'], nodeArgs: string[] = [], main?: string): Promise<Node> {
  // A port is free when chosen, but another listener may take it before the node binds it: then choose again.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    try {
      return await startNodeOn(port, typeof env === 'function' ? await env() : env, args, nodeArgs, main)
    } catch (e) {
      const taken = e instanceof Error && e.message.includes('EADDRINUSE') && (typeof env === 'function' || e.message.includes(`:${port}`))
      if (!taken || attempt >= 5) throw e
    }
  }
}

async function startNodeOn(port: number, env: Record<string, string>, args: string[], nodeArgs: string[], main?: string): Promise<Node> {
  let out = ''
  const child = spawn(process.execPath, [...nodeArgs, ...(main ? [main] : MAIN), ...args], {
    cwd: ROOT,
    // The test peers listen on 127.0.0.1: a node may send tokens there, as the in-process harness does.
    env: { ...process.env, MAILBRIDGE_PORT: String(port), MAILBRIDGE_HOST: '127.0.0.1', MAILBRIDGE_LOG_LEVEL: 'warn', MAILBRIDGE_TRUSTED_HOSTS: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  // Never outlive the test process, whatever way it ends.
  const reap = () => child.kill('SIGKILL')
  process.once('exit', reap)
  child.once('exit', () => process.off('exit', reap))
  child.stdout!.on('data', (d) => (out += d))
  child.stderr!.on('data', (d) => (out += d))
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)))
  const url = `http://127.0.0.1:${port}`
  // A bound for a stuck start, not a speed target: test/run.ts runs several files at once on two cores.
  const deadline = Date.now() + 90_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mailbridge exited early:\n${out}`)
    try {
      if ((await fetch(`${url}/healthz`)).ok) break
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`mailbridge did not start within 90 s:\n${out}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return { child, url, output: () => out, exited }
}
