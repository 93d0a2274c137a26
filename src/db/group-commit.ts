/**
 * Many small writes committed as one. Writes that arrive while a commit runs (or in the same turn of the event
 * loop) wait for it and then go together: one transaction, one fsync, for the lot. Under a burst this is the
 * difference between one disk flush per mail and one per hundred; alone, a write waits one turn of the loop.
 *
 * `commit` gets the waiting items in order and answers, per item, its result or the error that is that item's
 * alone; a throw fails the whole group.
 */
export class GroupCommit<T, R> {
  #waiting: Array<{ item: T; resolve: (r: R) => void; reject: (e: unknown) => void }> = []
  #draining = false

  constructor(
    private readonly commit: (items: T[]) => Promise<Array<R | Error>>,
    private readonly maxItems = 200,
  ) {}

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#waiting.push({ item, resolve, reject })
      if (!this.#draining) {
        this.#draining = true
        setImmediate(() => void this.#drain())
      }
    })
  }

  async #drain(): Promise<void> {
    while (this.#waiting.length) {
      const group = this.#waiting.splice(0, this.maxItems)
      try {
        const results = await this.commit(group.map((g) => g.item))
        group.forEach((g, i) => {
          const r = results[i]!
          if (r instanceof Error) g.reject(r)
          else g.resolve(r)
        })
      } catch (e) {
        for (const g of group) g.reject(e)
      }
    }
    this.#draining = false
  }
}
