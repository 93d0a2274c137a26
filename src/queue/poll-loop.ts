import { errorCode, type Logger } from '../log.ts'

/**
 * The background loop the queue worker, the fetch scheduler and the webhook dispatcher share: run a pass, then
 * sleep until the poll interval passes or someone has news (`wake`). A failed pass is logged and retried at the
 * next one, so one bad row never stops the loop.
 */
export class PollLoop {
  #running = false
  #loop?: Promise<void>
  #wake?: () => void

  constructor(
    private readonly o: { pass: () => Promise<unknown>; pollMs: number; log: Logger; what: string },
  ) {}

  get started(): boolean {
    return this.#loop !== undefined
  }

  start(): void {
    if (this.#running) return
    this.#running = true
    this.#loop = this.#run()
  }

  /** Run the next pass now instead of at the end of the interval. */
  wake(): void {
    this.#wake?.()
  }

  /** Stop after the pass under way. */
  async stop(): Promise<void> {
    this.#running = false
    this.#wake?.()
    await this.#loop
  }

  async #run(): Promise<void> {
    while (this.#running) {
      try {
        await this.o.pass()
      } catch (e) {
        this.o.log.error({ err: e, error_code: errorCode(e) }, `${this.o.what} pass failed; retrying`)
      }
      if (!this.#running) break
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.o.pollMs)
        this.#wake = () => {
          clearTimeout(t)
          this.#wake = undefined
          resolve()
        }
      })
    }
  }
}
