import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import type { Page } from 'playwright-core'
import { dovecotAvailable, startDovecot } from '../support/dovecot.ts'
import { rfc822 } from '../support/mailroom.ts'
import { ALICE, CLIENT_ID, CLIENT_SECRET, startUiWorld, type UiWorld } from '../support/ui-world.ts'

const BOB = 'bob@contoso.com'
const CAROL = 'carol@contoso.com'
const PDF = Buffer.from('%PDF-1.4\n% the console test\'s invoice\n')

const invoice = [
  'From: Bob <bob@fabrikam.com>', `To: ${ALICE}`, 'Subject: Invoice 7', 'Message-ID: <invoice-7@fabrikam.com>', 'Date: Tue, 3 Mar 2026 09:30:00 +0100', 'MIME-Version: 1.0',
  'Content-Type: multipart/mixed; boundary="b1"', '', '--b1', 'Content-Type: text/plain; charset=utf-8', '', 'See the attachment.', '--b1',
  'Content-Type: application/pdf; name="invoice-7.pdf"', 'Content-Disposition: attachment; filename="invoice-7.pdf"', 'Content-Transfer-Encoding: base64', '', PDF.toString('base64'), '--b1--', '',
].join('\r\n')

/** Connect a server through the API and the emulator's consent page, as bench/mailboxes does. */
async function connect(w: UiWorld, kind: 'outgoing' | 'incoming', id: string, user: string) {
  const res = await w.mb.api('POST', `/api/v1/${kind}-servers/${id}/connect`)
  const back = await w.ms.consent(res.json().authorize_url, { user })
  const done = await w.mb.app.inject({ url: back.pathname + back.search })
  assert.equal(done.statusCode, 302, `connect ${user}`)
}

/**
 * The contrast of every visible element that holds text against what is painted behind it (WCAG 2.1 §1.4.3,
 * relative luminance and contrast ratio as the standard defines them): backgrounds composited from the root down,
 * the text's color (an SVG text's fill) with every ancestor's opacity. Returns the elements below 4.5:1.
 * @see https://www.w3.org/TR/WCAG21/#dfn-contrast-ratio
 */
const lowContrast = async (page: Page) => {
  // tsx keeps function names with an `__name` helper the page does not have: give it one that does nothing.
  await page.evaluate('globalThis.__name = (f) => f')
  return page.evaluate(() => {
    type Rgba = [number, number, number, number]
    const parse = (c: string): Rgba | undefined => {
      const m = /rgba?\(([^)]+)\)/.exec(c)
      if (!m) return undefined
      const p = m[1]!.split(/[\s,/]+/).filter(Boolean).map(Number)
      return [p[0]!, p[1]!, p[2]!, p[3] ?? 1]
    }
    const over = (top: Rgba, bottom: Rgba): Rgba => [0, 1, 2].map((i) => top[i]! * top[3] + bottom[i]! * (1 - top[3])).concat(1) as Rgba
    const luminance = (c: Rgba) => {
      const f = (v: number) => ((v /= 255) <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
      return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2])
    }
    const chain = (el: Element) => {
      const all: Element[] = []
      for (let e: Element | null = el; e; e = e.parentElement) all.unshift(e)
      return all
    }
    const found: Array<{ text: string; element: string; ratio: number }> = []
    const seen = new Set<Element>()
    const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT)
    while (walk.nextNode()) {
      const el = walk.currentNode.parentElement
      if (!el || seen.has(el) || !walk.currentNode.textContent!.trim()) continue
      seen.add(el)
      const box = el.getBoundingClientRect()
      if (!el.checkVisibility({ opacityProperty: true, visibilityProperty: true }) || box.width === 0 || box.right < 0 || box.bottom < 0) continue
      let bg: Rgba = [255, 255, 255, 1]
      let opacity = 1
      for (const e of chain(el)) {
        const s = getComputedStyle(e)
        const c = parse(s.backgroundColor)
        if (c && c[3] > 0) bg = over(c, bg)
        opacity *= Number(s.opacity)
      }
      const s = getComputedStyle(el)
      const fg = parse(el instanceof SVGElement ? s.fill : s.color)!
      const text = over([fg[0], fg[1], fg[2], fg[3] * opacity], bg)
      const [hi, lo] = [luminance(text), luminance(bg)].sort((a, b) => b - a)
      const ratio = (hi! + 0.05) / (lo! + 0.05)
      if (ratio < 4.5) found.push({ text: walk.currentNode.textContent!.trim().slice(0, 40), element: `${el.tagName.toLowerCase()}.${el.getAttribute('class') ?? ''}`, ratio: Math.round(ratio * 100) / 100 })
    }
    return found
  })
}

test('console in Chromium: the home with mailboxes in different states, Resume, a moving sync bar, queue filters and a mail\'s page, message search and a download; every page at 4.5:1 contrast, and at 390 px', { skip: !dovecotAvailable() && 'Dovecot is not installed' }, async (t) => {
  const w = await startUiWorld()
  t.after(w.close)
  const dovecot = await startDovecot({ introspectUrl: w.ms.introspectUrl })
  t.after(() => dovecot.stop())
  const { page, url, mb } = w
  const { db } = mb.services.database
  for (const u of [BOB, CAROL]) w.ms.addUser(u)
  const inTenDays = new Date(Date.now() + 10 * 86_400_000).toISOString().slice(0, 10)
  await mb.services.settings.update({ external_email_servers: true, microsoft_outlook_client_id: CLIENT_ID, microsoft_outlook_client_secret: CLIENT_SECRET, microsoft_outlook_client_secret_expires_at: inTenDays })
  w.smtp.behave({ rejectRcpt: (a) => (a === 'ghost@fabrikam.com' ? { code: 550, message: '5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup' } : undefined) })
  const created = async (kind: 'outgoing' | 'incoming', body: Record<string, unknown>) => (await mb.api('POST', `/api/v1/${kind}-servers`, { authentication: 'outlook', ...body })).json() as { id: string }
  // Alice: sends and receives, all well but one mail refused. Bob: sends, token revoked and paused, a mail held back. Carol: an incoming server not connected yet.
  const aliceOut = await created('outgoing', { name: 'Alice out', username: ALICE, host: w.smtp.host, port: w.smtp.port })
  const aliceIn = await created('incoming', { name: 'Alice in', username: ALICE, host: dovecot.host, port: dovecot.imapsPort })
  const bobOut = await created('outgoing', { name: 'Bob out', username: BOB, host: w.smtp.host, port: w.smtp.port })
  await created('incoming', { name: 'Carol in', username: CAROL, host: dovecot.host, port: dovecot.imapsPort })
  await connect(w, 'outgoing', aliceOut.id, ALICE)
  await connect(w, 'outgoing', bobOut.id, BOB)
  assert.equal((await mb.api('POST', `/api/v1/incoming-servers/${aliceIn.id}/test`)).json().ok, true)
  for (const [to, subject] of [['carol@fabrikam.com', 'Quarterly report'], ['ghost@fabrikam.com', 'To a ghost'], ['dave@fabrikam.com', 'Welcome Dave']]) {
    await mb.api('POST', '/api/v1/mail', { from: ALICE, to: [to], subject, text: 'Hello', headers: { 'X-Campaign': 'spring' } })
  }
  for (let i = 0; i < 5; i++) {
    await mb.services.mailWorker.tick()
    await mb.services.mailWorker.idle()
  }
  w.ms.revokeUser(BOB)
  w.ms.expireAccessTokens(BOB)
  assert.equal((await mb.api('POST', `/api/v1/outgoing-servers/${bobOut.id}/test`)).json().ok, false)
  const until = new Date(Date.now() + 3_600_000).toISOString()
  await db.updateTable('outgoing_servers').set({ paused_until: until, pause_reason: '554 5.2.252 SendAsDenied; Exchange stopped this mailbox sending for a while' }).where('id', '=', bobOut.id).execute()
  const held = (await mb.api('POST', '/api/v1/mail', { from: BOB, to: ['erin@fabrikam.com'], subject: 'Held back', text: 'Hello' })).json().id
  await db.updateTable('mails').set({ next_attempt_at: until }).where('id', '=', held).execute()
  await dovecot.seed(ALICE, invoice)
  await dovecot.seed(ALICE, rfc822({ subject: 'Re: Invoice 7', messageId: '<invoice-7-re@contoso.com>', from: `Alice <${ALICE}>`, headers: 'In-Reply-To: <invoice-7@fabrikam.com>\r\n' }))
  await dovecot.seed(ALICE, rfc822({ subject: 'Lunch on Friday?', messageId: '<lunch@fabrikam.com>' }))
  await mb.services.fetcher.fetch(aliceIn.id)

  // Signing in lands on the home page: a row per mailbox, its outgoing and incoming servers together.
  await w.signIn()
  const rows = page.locator('table.mailboxes tbody tr')
  assert.equal(await rows.count(), 3)
  const bob = rows.filter({ hasText: BOB })
  await bob.getByText(/^Token (invalid|expired)$/).waitFor()
  await bob.getByText(/Paused until .* UTC/).waitFor()
  await rows.filter({ hasText: CAROL }).getByText('Not connected').waitFor()
  await rows.filter({ hasText: CAROL }).getByRole('button', { name: `Connect ${CAROL}` }).waitFor()
  await rows.filter({ hasText: ALICE }).getByText('Outlook Token Valid').waitFor()
  await page.getByRole('alert').filter({ hasText: 'The Outlook Client Secret expires on' }).waitFor()
  await page.getByRole('img', { name: 'Last 24 hours, all mailboxes' }).waitFor()
  assert.match(await page.locator('#all-caption').innerText(), /2 sent, 1 failed, 3 received/)
  await w.shot('home')

  // Resume (a POST with the session's CSRF token): the pause is gone and the held mail is due.
  await bob.getByRole('button', { name: 'Resume Bob out' }).click()
  await page.getByRole('status').filter({ hasText: 'Resumed' }).waitFor()
  assert.equal((await mb.services.outgoingServers.get(bobOut.id)).paused_until, null)
  assert.equal(await page.locator('table.mailboxes tbody tr', { hasText: BOB }).getByText(/Paused until/).count(), 0)

  // A first sync's bar moves, and finishes, while the page stays as it is.
  await db.updateTable('incoming_servers').set({ sync_progress: '10 of 100 new messages stored' }).where('id', '=', aliceIn.id).execute()
  await page.goto(`${url}/admin`)
  const bar = page.locator(`#sync-${aliceIn.id}`)
  assert.equal(await bar.getAttribute('value'), '10')
  await db.updateTable('incoming_servers').set({ sync_progress: '60 of 100 new messages stored' }).where('id', '=', aliceIn.id).execute()
  await page.waitForFunction((id) => (document.getElementById(`sync-${id}`) as HTMLProgressElement | null)?.value === 60, aliceIn.id)
  await page.getByText('60 of 100 new messages stored').waitFor()
  await db.updateTable('incoming_servers').set({ sync_progress: null }).where('id', '=', aliceIn.id).execute()
  await page.getByText('Fetched: reload the page for the new figures').waitFor()

  // The mail queue: filter by state, then by text; the failed mail's page with its attempt and the server's reply; Retry.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Mail queue' }).click()
  await page.getByLabel('State').selectOption('exception')
  await page.getByRole('button', { name: 'Filter' }).click()
  const queue = page.locator('table.queue tbody tr')
  assert.equal(await queue.count(), 1)
  await page.getByLabel('State').selectOption('')
  await page.getByLabel('Subject or recipient').fill('DAVE@')
  await page.getByRole('button', { name: 'Filter' }).click()
  assert.deepEqual(await queue.locator('td[data-label="Subject"] a').allInnerTexts(), ['Welcome Dave'])
  await page.getByRole('link', { name: 'Show all' }).click()
  await page.getByRole('link', { name: 'To a ghost' }).click()
  await page.getByRole('heading', { name: 'To a ghost' }).waitFor()
  await page.locator('td[data-label="The server\'s reply"]', { hasText: '550 5.1.10 RESOLVER.ADR.RecipientNotFound' }).waitFor()
  await page.getByRole('row', { name: /X-Campaign spring/ }).waitFor()
  const mailPage = page.url()
  await page.getByRole('button', { name: 'Retry' }).click()
  await page.getByRole('status').filter({ hasText: 'The mail is queued again' }).waitFor()
  assert.equal(new URL(page.url()).pathname, new URL(mailPage).pathname, 'Retry comes back to the mail\'s page')

  // Messages: search, a thread laid out as one, the attachment downloaded.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Messages' }).click()
  await page.getByLabel('Subject or sender').fill('invoice')
  await page.getByRole('button', { name: 'Search' }).click()
  assert.equal(await page.locator('.msg').count(), 2)
  assert.equal(await page.locator('.thread-tree > li > ul > li .msg a').first().innerText(), 'Re: Invoice 7', 'the reply sits under the message it answers')
  await w.shot('messages')
  await page.getByRole('link', { name: 'Invoice 7', exact: true }).click()
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'invoice-7.pdf' }).click()])
  assert.equal(download.suggestedFilename(), 'invoice-7.pdf')
  assert.deepEqual(readFileSync((await download.path())!), PDF)
  const messagePage = page.url()

  // Every page: the menu's, and the pages they lead to (a mailbox, each kind of server, a mail, a message, an error).
  const menu = await page.getByRole('navigation', { name: 'Main' }).getByRole('link').evaluateAll((as) => as.map((a) => (a as HTMLAnchorElement).pathname))
  const token = (await mb.api('POST', '/api/v1/api-tokens', { name: 'billing', scopes: ['mail:send'] })).json()
  const pages = [
    ...menu,
    `/admin/mailboxes/${encodeURIComponent(ALICE)}`, '/admin?done=resumed',
    `/admin/outgoing-servers/${bobOut.id}`, '/admin/outgoing-servers/new', `/admin/incoming-servers/${aliceIn.id}`, '/admin/incoming-servers/new',
    '/admin/parameters/microsoft_outlook.endpoint', `/admin/api-tokens/${token.id}/revoke`, new URL(mailPage).pathname, new URL(messagePage).pathname,
    '/admin/mail?state=sent', '/admin/no-such-page',
  ]
  assert.ok(menu.length >= 10, `the menu has every page: ${menu.join(' ')}`)
  const failures: Record<string, unknown> = {}
  for (const path of pages) {
    await page.goto(url + path)
    const low = await lowContrast(page)
    if (low.length) failures[path] = low
  }
  const signedOut = await w.browser.newPage()
  await signedOut.goto(`${url}/admin/login`)
  const loginLow = await lowContrast(signedOut)
  if (loginLow.length) failures['/admin/login'] = loginLow
  await signedOut.close()
  assert.deepEqual(failures, {}, 'every text at 4.5:1 at least')

  // 390 px: the menu folds behind a button that the keyboard opens, and no page is wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 })
  const tooWide: string[] = []
  for (const path of pages) {
    await page.goto(url + path)
    const wide = await page.evaluate(() =>
      document.documentElement.scrollWidth > window.innerWidth
        ? [`${document.documentElement.scrollWidth} px`, ...[...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth).map((e) => `${e.tagName.toLowerCase()}.${e.getAttribute('class') ?? ''}`).slice(0, 5)]
        : [],
    )
    if (wide.length) tooWide.push(`${path}: ${wide.join(' ')}`)
  }
  assert.deepEqual(tooWide, [], 'tables scroll or stack inside the screen')
  for (const [path, name] of [['/admin', 'home-390'], ['/admin/mail', 'mail-queue-390'], [new URL(mailPage).pathname, 'mail-390'], ['/admin/messages', 'messages-390']] as const) {
    await page.goto(url + path)
    await w.shot(name)
  }
  await page.goto(`${url}/admin`)
  const toggle = page.getByRole('button', { name: 'Menu' })
  const firstLink = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'General Settings' })
  assert.equal(await firstLink.isVisible(), false, 'the menu is folded')
  await toggle.focus()
  await page.keyboard.press('Enter')
  assert.equal(await toggle.getAttribute('aria-expanded'), 'true')
  await page.keyboard.press('Tab')
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'General Settings', 'Tab goes from the button into the menu')
  await w.shot('menu-390')
  await page.keyboard.press('Enter')
  await page.getByRole('heading', { name: 'General Settings' }).waitFor()
})
