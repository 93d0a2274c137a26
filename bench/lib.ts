import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { buildInto } from '../test/support/process.ts'

export const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN

/** Fire `total` requests with at most `concurrency` in flight; returns each latency in ms, sorted. */
export async function load(total: number, concurrency: number, one: (i: number) => Promise<void>): Promise<number[]> {
  const latencies: number[] = []
  let next = 0
  const lane = async () => {
    while (next < total) {
      const i = next++
      const t0 = performance.now()
      await one(i)
      latencies.push(performance.now() - t0)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane))
  return latencies.sort((a, b) => a - b)
}

export function table(rows: Array<Record<string, string | number>>): string {
  const cols = Object.keys(rows[0] ?? {})
  const cell = (v: string | number) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : v)
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]!).length)))
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(width[i]!)).join('  ')
  return [line(cols), line(width.map((w) => '-'.repeat(w))), ...rows.map((r) => line(cols.map((c) => cell(r[c]!))))].join('\n')
}

export const progress = (label: string, done: number, total: number) => {
  if (process.stderr.isTTY) process.stderr.write(`\r${label}: ${done}/${total}`)
  else if (done === total || done % Math.max(1, Math.floor(total / 5)) === 0) process.stderr.write(`${label}: ${done}/${total}\n`)
}

/**
 * The production build (tsconfig.build.json) in .tmp/, for benches that measure a node as it runs in production;
 * returns its main.js for startNode. BENCH_TSX=1 measures the TypeScript through tsx instead (returns undefined).
 */
export async function productionBuild(): Promise<string | undefined> {
  return process.env.BENCH_TSX ? undefined : buildInto('bench-build')
}

/** CPU seconds the whole machine spent busy so far (/proc/stat): the client, Dovecot, the database, everything. */
export const machineCpu = (): number => {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
  return (f.reduce((a, b) => a + b, 0) - f[3]! - f[4]!) / 100
}
