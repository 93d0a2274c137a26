import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { dialectsOf, ONCE, ROOT } from './dialects.ts'
import { ALONE, longestFirst } from './schedule.ts'

test('test/dialects.ts: every file named in ONCE or ALONE exists, so a renamed file cannot drop out of the rule unseen', () => {
  assert.deepEqual([...ONCE, ...ALONE].filter((f) => !existsSync(join(ROOT, f))), [])
})

test('test/dialects.ts: a file that never reaches the test database runs once; one that starts a world runs on both', () => {
  assert.deepEqual(dialectsOf('src/oauth/aadsts.test.ts'), ['sqlite'])
  assert.deepEqual(dialectsOf('test/api/mail.test.ts'), ['sqlite', 'postgres'], 'through test/support/world.ts and harness.ts')
  assert.deepEqual(dialectsOf('src/db/migrations.test.ts'), ['sqlite', 'postgres'])
  assert.deepEqual(dialectsOf('test/ui/guide.test.ts'), ['sqlite'], 'listed in ONCE')
})

test('test/schedule.ts: without a record, a file that starts processes goes before a unit test', () => {
  const order = longestFirst([
    { file: 'src/oauth/aadsts.test.ts', dialect: 'sqlite' },
    { file: 'test/process/crash-and-drain.test.ts', dialect: 'sqlite' },
  ]).map((j) => j.file)
  assert.equal(order[0], 'test/process/crash-and-drain.test.ts')
})
