import { mkdtempSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { hashPassword } from '../../src/crypto/passwords.ts'
import { startMailbridge, type Harness } from './harness.ts'
import { startIdentityEmulator, type Emulator } from './identity-emulator.ts'
import { freePort } from './process.ts'
import { startSmtpPeer, type SmtpPeer } from './smtp-peer.ts'
import { ALICE, CLIENT_ID, CLIENT_SECRET } from './world.ts'

export { ALICE, CLIENT_ID, CLIENT_SECRET }
export const ADMIN_PASSWORD = 'correct horse battery staple'

/** Debian's chromium, headless, with the flags that keep it quiet and offline (DEVELOPERS.md in the brief). */
export const CHROMIUM = {
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
}

export interface UiWorld {
  /** MAILBRIDGE_BASE_URL: http://127.0.0.1:<port> unless another base host was asked for */
  url: string
  mb: Harness
  ms: Emulator
  smtp: SmtpPeer
  browser: Browser
  context: BrowserContext
  page: Page
  /** Where screenshots go: docs/screenshots with MAILBRIDGE_SCREENSHOTS=1, else a temporary folder. */
  shot(name: string): Promise<void>
  /** Sign in through the form, as a person would. */
  signIn(page?: Page): Promise<void>
  close(): Promise<void>
}

/**
 * Mailbridge over real HTTP (its public URL is the address it listens on, so Microsoft's emulator redirects
 * back to it), the identity emulator with the app registered, the SMTP peer, and a fresh Chromium profile.
 * Nothing is configured in Mailbridge except the endpoint parameter (the sandbox does the same).
 */
export async function startUiWorld(o: { baseHost?: string } = {}): Promise<UiWorld> {
  // The port is chosen before Mailbridge starts (its public URL names it), so another listener may take it
  // meanwhile (EADDRINUSE): then start again on another port.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startUiWorldOn(await freePort(), o.baseHost ?? '127.0.0.1')
    } catch (e) {
      if ((e as { code?: string }).code !== 'EADDRINUSE' || attempt >= 5) throw e
    }
  }
}

/** `baseHost`: the host name of MAILBRIDGE_BASE_URL; Mailbridge listens on 127.0.0.1 whatever it is. */
async function startUiWorldOn(port: number, baseHost: string): Promise<UiWorld> {
  const url = `http://${baseHost}:${port}`
  const ms = await startIdentityEmulator()
  // Whatever fails to start, close what did: a listener left open keeps the test file's process alive.
  const mb = await startMailbridge({ env: { MAILBRIDGE_BASE_URL: url } }).catch(async (e: unknown) => {
    await ms.close()
    throw e
  })
  await mb.app.listen({ host: '127.0.0.1', port }).catch(async (e: unknown) => {
    await mb.close()
    await ms.close()
    throw e
  })
  const smtp = await startSmtpPeer({ introspectUrl: ms.introspectUrl })
  ms.registerApp({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUris: [`${url}/microsoft_outlook/confirm`], name: 'Mailbridge' })
  ms.addUser(ALICE)
  await mb.services.settings.set('admin_password_hash', await hashPassword(ADMIN_PASSWORD))
  await mb.services.settings.setParameter('microsoft_outlook.endpoint', ms.endpoint())
  const browser = await chromium.launch(CHROMIUM)
  // A new context is a fresh, throw-away profile: no cookies or storage from any other run.
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 900 } })
  const page = await context.newPage()
  const saveTo = process.env.MAILBRIDGE_SCREENSHOTS ? fileURLToPath(new URL('../../docs/screenshots/', import.meta.url)) : mkdtempSync(join(tmpdir(), 'mb-shots-'))
  mkdirSync(saveTo, { recursive: true })
  const world: UiWorld = {
    url,
    mb,
    ms,
    smtp,
    browser,
    context,
    page,
    async shot(name) {
      await page.screenshot({ path: join(saveTo, `${name}.png`), fullPage: true })
    },
    async signIn(p = page) {
      await p.goto(`${url}/admin/login`)
      await p.getByLabel('Username').fill('admin')
      await p.getByLabel('Password').fill(ADMIN_PASSWORD)
      await p.getByRole('button', { name: 'Sign in' }).click()
      // Signing in lands on the home page (the mailboxes at a glance).
      await p.waitForURL(`${url}/admin`)
    },
    async close() {
      await browser.close()
      await mb.services.mailWorker.stop()
      await mb.close()
      await smtp.close()
      await ms.close()
      if (!process.env.MAILBRIDGE_SCREENSHOTS) rmSync(saveTo, { recursive: true, force: true })
    },
  }
  return world
}
