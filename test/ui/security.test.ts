import assert from 'node:assert/strict'
import http from 'node:http'
import { test } from 'node:test'
import { ADMIN_PASSWORD, startUiWorld } from '../support/ui-world.ts'

test('browser: a logged-out visit is sent to the sign-in form, which works from the keyboard and lands where it was going', async (t) => {
  const w = await startUiWorld()
  t.after(w.close)
  const { page, url } = w
  await page.goto(`${url}/admin/parameters`)
  assert.equal(new URL(page.url()).pathname, '/admin/login')
  await page.getByLabel('Username').fill('admin')
  await page.getByLabel('Password').fill('not the password')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByText('Wrong username or password.').waitFor()
  assert.equal(await page.getByRole('heading', { name: 'System Parameters' }).count(), 0)
  // The keyboard alone signs in: Tab reaches Username, then Password; Enter submits.
  await page.locator('body').focus()
  await page.keyboard.press('Tab')
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'f-username')
  await page.keyboard.press('Tab')
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'f-password')
  await page.keyboard.type(ADMIN_PASSWORD)
  await page.keyboard.press('Enter')
  await page.getByRole('heading', { name: 'System Parameters' }).waitFor()
  // On admin pages the first Tab stop is the skip link to the content.
  await page.locator('body').focus()
  await page.keyboard.press('Tab')
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content')
  const cookie = (await w.context.cookies()).find((c) => c.name === 'mb_session')!
  assert.equal(cookie.httpOnly, true)
  assert.equal(cookie.sameSite, 'Lax')
  assert.equal(cookie.secure, false, 'http base URL: no Secure flag, or the browser would drop the cookie')

  // Sign out ends the session server-side: the old cookie no longer opens anything.
  await page.getByRole('button', { name: /Sign out/ }).click()
  await page.waitForURL(`${url}/admin/login`)
  await w.context.addCookies([{ ...cookie }])
  await page.goto(`${url}/admin/settings`)
  assert.equal(new URL(page.url()).pathname, '/admin/login')
  assert.equal(await w.mb.services.database.db.selectFrom('admin_sessions').select('id').execute().then((r) => r.length), 0)
})

test('browser: a form post with a forged CSRF token is refused with 403 and changes nothing', async (t) => {
  const w = await startUiWorld()
  t.after(w.close)
  const { page, url } = w
  await w.signIn()
  await page.goto(`${url}/admin/parameters`)
  // Same origin, live session cookie, but a token that is not the session's.
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${url}/admin/parameters` && r.request().method() === 'POST'),
    page.evaluate(() => {
      const f = document.createElement('form')
      f.method = 'post'
      f.action = '/admin/parameters'
      for (const [k, v] of Object.entries({ _csrf: 'forged-token-forged-token-forged-token-000', key: 'mail.force.smtp.from', value: 'mallory@evil.example' })) {
        const i = document.createElement('input')
        i.type = 'hidden'
        i.name = k
        i.value = v
        f.append(i)
      }
      document.body.append(f)
      f.submit()
    }),
  ])
  assert.equal(response.status(), 403)
  await page.getByRole('heading', { name: 'Form refused' }).waitFor()
  assert.equal(await w.mb.services.settings.parameter('mail.force.smtp.from'), undefined)

  // Another site's auto-submitting form (no token at all): SameSite=Lax keeps the session cookie home, so the
  // POST arrives signed out and is sent to the sign-in form; the redirect's GET may then carry the cookie
  // (Lax allows top-level GETs) and show the admin's own settings, but nothing was posted.
  const evil = http.createServer((_req, res) => {
    res.setHeader('content-type', 'text/html')
    res.end(`<form method="post" action="${url}/admin/parameters"><input name="key" value="mail.force.smtp.from"><input name="value" value="mallory@evil.example"></form><script>document.forms[0].submit()</script>`)
  })
  await new Promise<void>((r) => evil.listen(0, '127.0.0.1', () => r()))
  t.after(() => new Promise<void>((r) => evil.close(() => r())))
  // localhost and 127.0.0.1 are different sites to the browser.
  const [post] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${url}/admin/parameters` && r.request().method() === 'POST'),
    page.goto(`http://localhost:${(evil.address() as { port: number }).port}/`),
  ])
  assert.equal(post.status(), 303)
  assert.equal(post.headers().location, '/admin/login?next=%2Fadmin')
  assert.equal((await post.request().allHeaders()).cookie, undefined, 'the cross-site POST carried no session cookie')
  assert.equal(await w.mb.services.settings.parameter('mail.force.smtp.from'), undefined)
})
