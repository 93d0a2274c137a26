import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8')

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
const anchor = (heading: string) => heading.toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, '').replace(/ /g, '-')

test('README: the table of contents lists every section, and each of its links reaches a heading', () => {
  const [, toc = '', body = ''] = /<!-- toc -->([\s\S]*?)<!-- \/toc -->([\s\S]*)/.exec(readme) ?? []
  assert.ok(toc, 'README.md has a table of contents between <!-- toc --> and <!-- /toc --> (python3 .ci/readme-toc.py writes it)')
  const headings = body.replace(/```[\s\S]*?```/g, '').split('\n').filter((l) => /^#{2,3} /.test(l)).map((l) => l.replace(/^#+ /, ''))
  const links = [...toc.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1])
  assert.deepEqual(links, headings.map(anchor), 'the table of contents is out of date: run python3 .ci/readme-toc.py')
})

test('README: the Quick start offers the sandbox first and names the admin UI', () => {
  const quick = readme.slice(readme.indexOf('## Quick start'), readme.indexOf('## Configuration'))
  assert.ok(quick.indexOf('npm run sandbox') >= 0 && quick.indexOf('npm run sandbox') < quick.indexOf('npm start'))
  assert.match(quick, /\/admin/)
})
