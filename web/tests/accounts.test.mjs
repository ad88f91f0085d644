// Sign-in, accounts and tenancy: an operator creates a customer and a console user for
// it; that user signs in and sees only its own customer's bots, in the page and through
// the API with the same cookie.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { openBrowser, inspect, seedBot, signIn, startParley } from './harness.mjs'

describe('accounts and tenancy', () => {
  let srv, b
  const user = { email: 'ops@acme.example', password: 'correct horse battery' }
  let acme, other

  before(async () => {
    srv = await startParley()
    b = await openBrowser()
    other = await seedBot(srv, 'Globex', 'globex support')
  })
  after(async () => {
    await b?.close()
    await srv?.stop()
  })

  it('shows the sign-in page, reachable by keyboard with visible focus', async () => {
    const { page } = b
    await page.goto(`${srv.base}/console`)
    assert.equal(new URL(page.url()).pathname, '/console/')
    await page.getByRole('heading', { name: 'Sign in to Parley' }).waitFor()
    await inspect(page, 'signin')
    await page.keyboard.press('Tab')
    const focus = await page.evaluate(() => {
      const el = document.activeElement
      const s = el ? getComputedStyle(el) : null
      return { tag: el?.tagName, outline: s?.outlineStyle, width: s?.outlineWidth }
    })
    assert.notEqual(focus.tag, 'BODY')
    assert.notEqual(focus.outline, 'none', `focused ${focus.tag} shows no outline`)
    b.check()
  })

  it('refuses a wrong admin token, entered by keyboard alone', async () => {
    const { page } = b
    b.allow(401, /^\/admin\/v1\/session$/)
    const focused = () => page.evaluate(() => document.activeElement?.closest('label')?.textContent?.trim() ?? '')
    for (let i = 0; i < 10 && (await focused()) !== 'Account'; i++) await page.keyboard.press('Tab')
    assert.equal(await focused(), 'Account')
    await page.keyboard.press('ArrowDown')
    assert.equal(await focused(), 'Admin token')
    await page.keyboard.press('Tab')
    assert.equal(await focused(), 'Token')
    await page.keyboard.type('not-the-token')
    await page.keyboard.press('Enter')
    await page.getByRole('alert').filter({ hasText: /token/i }).waitFor()
    b.check()
  })

  it('signs in as operator and creates a customer', async () => {
    const { page } = b
    await signIn(page, srv.base, { token: srv.token })
    await page.getByRole('heading', { name: 'Customers' }).waitFor()
    await page.getByRole('link', { name: 'Globex' }).waitFor()
    await inspect(page, 'customers')
    await page.getByLabel('Customer name').fill('Acme')
    await page.getByRole('button', { name: 'Create customer' }).click()
    await page.getByRole('heading', { name: /Acme/ }).waitFor()
    acme = Number(/\/customers\/(\d+)$/.exec(new URL(page.url()).pathname)?.[1])
    assert.ok(acme > 0)
    await page.getByText('This customer has no bots yet.').waitFor()
    await page.getByLabel('Bot name').fill('acme support')
    await page.getByRole('button', { name: 'Create bot' }).click()
    await page.getByTestId('new-bot').waitFor()
    await page.getByRole('link', { name: 'acme support' }).waitFor()
    await inspect(page, 'customer')
    b.check()
  })

  it('creates a console user for the customer', async () => {
    const { page } = b
    await page.getByRole('link', { name: 'Accounts' }).click()
    await page.getByRole('heading', { name: 'Console accounts' }).waitFor()
    await page.getByText('No accounts yet').waitFor()
    await page.getByLabel('Email').fill(user.email)
    await page.getByLabel(/^Password/).fill(user.password)
    await page.getByLabel('Access').selectOption(String(acme))
    await page.getByRole('button', { name: 'Create account' }).click()
    await page.getByRole('cell', { name: user.email }).waitFor()

    // An operator account, then deleted.
    await page.getByLabel('Email').fill('temp@ops.example')
    await page.getByLabel(/^Password/).fill('temporary password')
    await page.getByLabel('Access').selectOption('')
    await page.getByRole('button', { name: 'Create account' }).click()
    const temp = page.getByRole('row').filter({ hasText: 'temp@ops.example' })
    await temp.getByRole('cell', { name: 'operator' }).waitFor()
    await temp.getByRole('button', { name: 'Delete' }).click()
    await temp.getByRole('button', { name: 'Yes, delete' }).click()
    await temp.waitFor({ state: 'detached' })

    // A new password for the customer user.
    const row = page.getByRole('row').filter({ hasText: user.email })
    await row.getByRole('button', { name: 'Set password' }).click()
    user.password = 'another long passphrase'
    await row.getByLabel(`New password for ${user.email}`).fill(user.password)
    await row.getByRole('button', { name: 'Save' }).click()
    await row.getByText('Password changed.').waitFor()
    await inspect(page, 'accounts')
    b.check()
  })

  it('signs out and signs in as the customer user', async () => {
    const { page } = b
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.getByRole('heading', { name: 'Sign in to Parley' }).waitFor()
    await signIn(page, srv.base, user)
    assert.match(await page.getByTestId('whoami').innerText(), new RegExp(`customer ${acme}`))
    await page.getByRole('link', { name: 'acme support' }).waitFor()
    assert.equal(await page.getByRole('link', { name: 'Customers' }).count(), 0, 'a customer user sees no customer list')
    assert.equal(await page.getByRole('link', { name: 'Accounts' }).count(), 0)
    b.check()
  })

  it("cannot see or reach another customer's bot", async () => {
    const { page } = b
    b.allow(403, /^\/admin\/v1\//)
    // In the page: the other customer's bot section refuses.
    await page.goto(`${srv.base}${other.base}/integrations`)
    await page.getByRole('alert').filter({ hasText: /Could not load/ }).waitFor()
    assert.equal(await page.getByText(other.botKey).count(), 0, "the other bot's key is not shown")
    await inspect(page, 'forbidden')
    // Through the API with the same cookie: reads and writes are refused.
    const answers = await page.evaluate(
      async ({ cid, botKey }) => {
        const s = await (await fetch('/admin/v1/session')).json()
        const csrf = s.responseObject.csrf_token
        const bot = `/admin/v1/customers/${cid}/bots/${botKey}`
        const calls = [
          ['GET', `/admin/v1/customers/${cid}`],
          ['GET', `/admin/v1/customers/${cid}/bots`],
          ['GET', `${bot}/keys`],
          ['GET', `${bot}/flows`],
          ['GET', `${bot}/channels`],
          ['GET', `${bot}/runs`],
          ['GET', `${bot}/users`],
          ['POST', `${bot}/keys`],
          ['POST', `${bot}/sandbox/messages`, { phone: '919876543210', text: 'hi' }],
          ['GET', '/admin/v1/users'],
        ]
        const out = []
        for (const [method, path, body] of calls) {
          const res = await fetch(path, {
            method,
            credentials: 'same-origin',
            headers: { 'X-CSRF-Token': csrf, 'Content-Type': 'application/json' },
            body: body ? JSON.stringify(body) : undefined,
          })
          out.push({ method, path, status: res.status, text: await res.text() })
        }
        return out
      },
      { cid: other.cid, botKey: other.botKey },
    )
    for (const a of answers) {
      assert.equal(a.status, 403, `${a.method} ${a.path}: ${a.status} ${a.text}`)
      assert.ok(!a.text.includes('responseObject'), `${a.method} ${a.path} answered with data: ${a.text}`)
    }
    b.check()
  })

  it('goes back to sign-in when the session ends', async () => {
    const { page, context } = b
    await page.goto(`${srv.base}/console/`)
    await page.getByRole('link', { name: 'acme support' }).waitFor()
    await context.clearCookies()
    b.allow(401, /^\/admin\/v1\//)
    await page.getByRole('link', { name: 'acme support' }).click()
    await page.getByText('Your session has ended').waitFor()
    // Signing in again lands where the user was going.
    await page.getByLabel('Email').fill(user.email)
    await page.getByLabel('Password').fill(user.password)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('heading', { name: 'Integrations' }).waitFor()
    b.check()
  })
})
