import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ALICE, startUiWorld } from '../support/ui-world.ts'

test('ui: the Transport choice says when to pick Microsoft Graph, hides host, port and encryption while Graph is checked (no script), and is saved', async (t) => {
  const w = await startUiWorld()
  t.after(w.close)
  const { url } = w
  // No script runs: the hiding is the stylesheet's alone.
  const page = await (await w.browser.newContext({ javaScriptEnabled: false })).newPage()
  await w.signIn(page)
  for (const [kind, plain, when] of [['outgoing', 'SMTP', /SMTP AUTH is disabled .* 5\.7\.139/], ['incoming', 'IMAP', /IMAP is turned off for the mailbox/]] as const) {
    await page.goto(`${url}/admin/${kind}-servers/new`)
    const transport = page.getByRole('group', { name: 'Transport' })
    assert.equal(await transport.getByLabel(new RegExp(`^${plain}`)).isChecked(), true, `${plain} is the default`)
    assert.match(await page.getByRole('main').innerText(), when)
    assert.equal(await page.getByLabel('Host', { exact: true }).isVisible(), true)
    await transport.getByLabel('Microsoft Graph').check()
    for (const label of ['Host', 'Port', 'Encryption']) assert.equal(await page.getByLabel(label, { exact: true }).isVisible(), false, `${label} hidden for Graph`)
    await page.getByLabel('Description').fill(`${kind} through Graph`)
    await page.getByLabel('Username', { exact: true }).fill(ALICE)
    await page.getByRole('button', { name: 'Save' }).click()
    await page.getByText('Saved.').waitFor()
    assert.equal(await page.getByRole('group', { name: 'Transport' }).getByLabel('Microsoft Graph').isChecked(), true)
    assert.equal(await page.getByLabel('Host', { exact: true }).isVisible(), false)
    assert.match(await page.getByRole('main').innerText(), /gets a Microsoft Graph token/)
    const [server] = (await w.mb.api('GET', `/api/v1/${kind}-servers`)).json().items
    assert.equal(server.transport, 'graph')
    await page.getByRole('group', { name: 'Transport' }).getByLabel(new RegExp(`^${plain}`)).check()
    assert.equal(await page.getByLabel('Host', { exact: true }).isVisible(), true, 'and shown again for the plain protocol')
    if (kind === 'outgoing') await w.shot('graph-transport')
  }
  await page.goto(`${url}/admin/outgoing-servers`)
  assert.match(await page.getByRole('main').innerText(), /Microsoft Graph/)
})

test('ui: Gmail with Microsoft Graph is refused on the form, saying which authentications Graph needs', async (t) => {
  const w = await startUiWorld()
  t.after(w.close)
  const { page, url } = w
  await w.signIn()
  await page.goto(`${url}/admin/outgoing-servers/new`)
  await page.getByLabel('Gmail', { exact: true }).check()
  await page.getByRole('group', { name: 'Transport' }).getByLabel('Microsoft Graph').check()
  await page.getByLabel('Description').fill('Gmail via Graph')
  await page.getByLabel('Username', { exact: true }).fill('carol@gmail.com')
  await page.getByRole('button', { name: 'Save' }).click()
  await page.getByText(/needs authentication "outlook" or "outlook_app"/).first().waitFor()
  assert.equal((await w.mb.api('GET', '/api/v1/outgoing-servers')).json().items.length, 0)
})
