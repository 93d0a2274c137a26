import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startMailbridge } from '../support/harness.ts'
import { startUiWorld } from '../support/ui-world.ts'

const everywhere = (h: Record<string, unknown>, where: string) => {
  assert.equal(h['x-content-type-options'], 'nosniff', where)
  assert.equal(h['x-frame-options'], 'DENY', where)
  assert.equal(h['referrer-policy'], 'no-referrer', where)
  assert.match(String(h['content-security-policy']), /frame-ancestors 'none'/, where)
  assert.equal(h['x-powered-by'], undefined, where)
  if (where !== '/docs') assert.equal(h['cache-control'], 'no-store', where)
}

test('headers: UI pages, the API, errors and /docs carry CSP, frame-ancestors, nosniff and no-referrer; no HSTS over http', async (t) => {
  const mb = await startMailbridge()
  t.after(mb.close)
  const login = await mb.app.inject({ url: '/admin/login' })
  everywhere(login.headers, 'sign-in page')
  const csp = String(login.headers['content-security-policy'])
  assert.match(csp, /default-src 'none'/)
  assert.match(csp, /script-src 'sha256-[A-Za-z0-9+/]+=*'(;|$)/, 'only the one inline script, by its hash')
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|upgrade-insecure-requests/)
  assert.equal(login.headers['strict-transport-security'], undefined, 'HSTS needs TLS in front')
  everywhere((await mb.api('GET', '/api/v1/settings')).headers, 'API')
  everywhere((await mb.app.inject({ url: '/api/v1/settings' })).headers, '401')
  everywhere((await mb.app.inject({ url: '/nowhere' })).headers, '404')
  everywhere((await mb.app.inject({ url: '/microsoft_outlook/confirm?state=forged' })).headers, 'OAuth callback refusal')
  const docs = await mb.app.inject({ url: '/docs' })
  assert.equal(docs.statusCode, 200)
  everywhere(docs.headers, '/docs')
  assert.doesNotMatch(String(docs.headers['content-security-policy']), /upgrade-insecure-requests|validator\.swagger\.io/)
})

test('headers: behind TLS (an https public URL) every response carries HSTS and upgrade-insecure-requests', async (t) => {
  const mb = await startMailbridge({ env: { MAILBRIDGE_BASE_URL: 'https://mail.example.com' } })
  t.after(mb.close)
  for (const url of ['/admin/login', '/api/v1/settings', '/docs']) {
    const res = await mb.app.inject({ url })
    assert.equal(res.headers['strict-transport-security'], 'max-age=31536000', url)
    assert.match(String(res.headers['content-security-policy']), /upgrade-insecure-requests/, url)
  }
})

test('browser: under that CSP the admin UI still runs its script and styles, and /docs still renders, with no violation reported', async (t) => {
  const w = await startUiWorld()
  t.after(w.close)
  const violations: string[] = []
  w.page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) violations.push(m.text())
  })
  await w.signIn()
  await w.page.goto(`${w.url}/admin/settings`)
  // The script un-hides the copy button (its section stays hidden until External Email Servers is ticked).
  await w.page.waitForFunction(() => document.querySelector<HTMLButtonElement>('[data-copy]')?.hidden === false)
  const brand = await w.page.locator('header').evaluate((e) => getComputedStyle(e).backgroundColor)
  assert.equal(brand, 'rgb(113, 75, 103)', 'the inline style applies')
  await w.page.goto(`${w.url}/docs`)
  await w.page.getByText('Mailbridge API').first().waitFor()
  assert.deepEqual(violations, [])
  // And the page cannot be framed by another site.
  const framed = await w.page.evaluate(async (u) => {
    const f = document.createElement('iframe')
    f.src = u
    document.body.append(f)
    await new Promise((r) => f.addEventListener('load', r))
    try {
      return f.contentDocument?.body?.innerHTML ?? ''
    } catch {
      return 'blocked'
    }
  }, `${w.url}/admin/login`)
  assert.doesNotMatch(framed, /Sign in to Mailbridge/)
})
