import { execFile } from 'node:child_process'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from './dialects.ts'

/**
 * The typecheck of `npm test`, which also writes the JavaScript the test files then run as: each `x.ts` of src/,
 * test/ and bench/ compiled to `x.js` beside it (with its source map), so every path a test builds from
 * `import.meta.url` (README.md, test/support/tls, src/main.js) is the one it has in the sources. Through tsx, a
 * process that loads Mailbridge spent 2.8 s of CPU where the compiled one spends 1.4 s, and every `mailbridge`
 * process a test starts pays it again. The files are removed after the run (and ignored by git meanwhile).
 */
export async function compile(): Promise<{ ok: boolean; output: string; remove(): void }> {
  const args = [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--noEmit', 'false', '--rewriteRelativeImportExtensions', '--sourceMap', '--listEmittedFiles']
  const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve) =>
    execFile(process.execPath, args, { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 }, (e, stdout, stderr) => resolve({ code: e ? Number(e.code ?? 1) : 0, stdout: stdout + stderr })),
  )
  const emitted: string[] = []
  const output: string[] = []
  for (const line of stdout.split('\n')) {
    if (line.startsWith('TSFILE: ')) emitted.push(line.slice('TSFILE: '.length))
    else if (line.trim()) output.push(line)
  }
  return {
    ok: code === 0,
    output: output.join('\n'),
    remove: () => {
      for (const f of emitted.filter((f) => /\.js(\.map)?$/.test(f))) rmSync(f, { force: true })
    },
  }
}
