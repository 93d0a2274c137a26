/**
 * The file a worker thread starts from: the compiled module in a build (dist/), else a small .mjs that registers
 * tsx first, because worker threads do not inherit the main thread's loader hooks on Node 20.
 */
export const threadEntry = (name: string, base: string): URL => new URL(base.endsWith('.js') ? `./${name}.js` : `./${name}-entry.mjs`, base)

/**
 * What a worker thread takes of the process's flags: only `--cpu-prof…`, so a profiled node profiles its threads
 * too (bench/fetch's BENCH_PROF); never `--import tsx`, which the .mjs entry registers itself.
 */
export const threadExecArgv = (): string[] => process.execArgv.filter((a) => a.startsWith('--cpu-prof'))
