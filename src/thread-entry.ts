/**
 * The file a worker thread starts from: the compiled module in a build (dist/), else a small .mjs that registers
 * tsx first, because worker threads do not inherit the main thread's loader hooks on Node 20.
 */
export const threadEntry = (name: string, base: string): URL => new URL(base.endsWith('.js') ? `./${name}.js` : `./${name}-entry.mjs`, base)
