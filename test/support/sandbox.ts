import assert from 'node:assert/strict'
import { startNode, type Node } from './process.ts'

/** Start `mailbridge sandbox` as a real process and wait until it has printed its steps. */
export async function startSandbox(env: Record<string, string> | (() => Promise<Record<string, string>>)): Promise<Node> {
  const node = await startNode(env, ['sandbox'])
  while (!node.output().includes('Ctrl+C stops everything.')) {
    if (node.child.exitCode !== null) assert.fail(`the sandbox exited:\n${node.output()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return node
}

/** The first group of `re` in what the sandbox printed, or a failure showing the whole output. */
export const printed = (out: string, re: RegExp): string => re.exec(out)?.[1] ?? assert.fail(`not printed (${re}):\n${out}`)
