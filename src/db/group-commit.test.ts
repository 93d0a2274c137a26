import assert from 'node:assert/strict'
import { test } from 'node:test'
import { GroupCommit } from './group-commit.ts'

test('group commit: writes of one turn go together, writes arriving during a commit form the next group, in order', async () => {
  const groups: number[][] = []
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  const g = new GroupCommit<number, number>(async (items) => {
    groups.push(items)
    if (groups.length === 1) await gate
    return items.map((i) => i * 10)
  })
  const first = [1, 2, 3].map((i) => g.add(i))
  await new Promise((r) => setImmediate(r))
  const second = [4, 5].map((i) => g.add(i))
  release()
  assert.deepEqual(await Promise.all([...first, ...second]), [10, 20, 30, 40, 50])
  assert.deepEqual(groups, [[1, 2, 3], [4, 5]])
})

test('group commit: an item\'s own error fails only it; a thrown error fails its whole group and not the next', async () => {
  let calls = 0
  const g = new GroupCommit<number, number>(async (items) => {
    calls++
    if (items.includes(13)) throw new Error('disk full')
    return items.map((i) => (i % 2 ? new Error(`odd ${i}`) : i))
  }, 3)
  const r = await Promise.allSettled([1, 2, 4, 13, 6].map((i) => g.add(i)))
  assert.deepEqual(r.map((x) => (x.status === 'fulfilled' ? x.value : (x.reason as Error).message)), ['odd 1', 2, 4, 'disk full', 'disk full'])
  assert.equal(calls, 2, 'five items at most three a group: two commits')
})
