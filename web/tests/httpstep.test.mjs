// The HTTP step page against a local target: Test with sample attributes, map a leaf of
// the response to an attribute (a new flow version), logs with their detail, the
// structure-change flag with Remap, Reset Mail Timeout, and a run's step linked to its log.

import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { openBrowser, inspect, seedBot, signIn, startParley } from './harness.mjs'

describe('HTTP step', () => {
  let srv, b, bot, target, targetUrl
  const seen = []
  let shape = 'v1'

  before(async () => {
    target = createServer((req, res) => {
      seen.push(req.url)
      const body =
        shape === 'v1'
          ? { customer: { tier: 'gold', name: 'Ann' }, items: [{ sku: 'A1', qty: 2 }], ok: true }
          : { customer: 'gold', items: 'none' }
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify(body))
    })
    await new Promise((ok) => target.listen(0, '127.0.0.1', ok))
    targetUrl = `http://127.0.0.1:${target.address().port}`
    srv = await startParley({ httpAllow: '127.0.0.1/32' })
    bot = await seedBot(srv, 'Acme', 'crm bot')
    await srv.admin('POST', `/admin/v1/customers/${bot.cid}/bots/${bot.botKey}/flows`, {
      key: 'crm_flow',
      name: 'CRM',
      start: 'crm',
      nodes: [
        {
          id: 'crm',
          type: 'http',
          name: 'CRM lookup',
          method: 'GET',
          url: `${targetUrl}/orders/{{order_id}}`,
          alert_emails: ['ops@acme.example'],
          next: 'say',
        },
        { id: 'say', type: 'message', text: 'Your tier: {{tier}}', next: 'done' },
        { id: 'done', type: 'end' },
      ],
    })
    b = await openBrowser()
    await signIn(b.page, srv.base, { token: srv.token })
  })
  after(async () => {
    await b?.close()
    await srv?.stop()
    target?.close()
  })

  it('tests the step, maps a response leaf and shows the log', async () => {
    const { page } = b
    await page.goto(`${srv.base}${bot.base}/flows/crm_flow`)
    await page.getByRole('link', { name: 'CRM lookup' }).click()
    await page.getByRole('heading', { name: 'CRM lookup' }).waitFor()
    await page.getByText('No calls yet').waitFor()
    await page.getByText('Nothing mapped yet').waitFor()
    assert.equal(await page.getByLabel('Sample attributes 1 name').inputValue(), 'order_id')
    await page.getByLabel('Sample attributes 1 value').fill('42')
    await page.getByRole('button', { name: 'Test', exact: true }).click()
    const result = page.getByTestId('test-result')
    await result.getByText('200 OK').first().waitFor()
    assert.deepEqual(seen, ['/orders/42'])

    await result.getByRole('button', { name: /^Map customer\.tier / }).click()
    assert.equal(await page.getByLabel('Attribute name').inputValue(), 'tier')
    await page.getByRole('button', { name: 'Map', exact: true }).click()
    await page.getByText('Mapped customer.tier to tier: the flow is now at version 2.').waitFor()
    await page.getByTestId('mapping').getByRole('cell', { name: 'customer.tier' }).waitFor()
    const doc = await (
      await fetch(`${srv.base}/admin/v1/customers/${bot.cid}/bots/${bot.botKey}/flows/crm_flow`, {
        headers: { Authorization: `Bearer ${srv.token}` },
      })
    ).json()
    assert.deepEqual(doc.nodes[0].save, { tier: 'customer.tier' })
    assert.deepEqual(doc.nodes[0].alert_emails, ['ops@acme.example'], 'the rest of the document is kept')

    await page.getByTestId('log-row').first().waitFor()
    await page.getByTestId('log-row').first().getByRole('button', { name: 'View' }).click()
    const detail = page.getByTestId('log-detail')
    await detail.getByText(`GET ${targetUrl}/orders/42`).waitFor()
    await inspect(page, 'http-step')
    b.check()
  })

  it('flags a structure change until Remap, and resets the mail timeout', async () => {
    const { page } = b
    shape = 'v2'
    await page.getByLabel('Sample attributes 1 value').fill('43')
    await page.getByRole('button', { name: 'Test', exact: true }).click()
    await page.getByTestId('test-result').getByText('JSON Structure Change Detected').waitFor()
    const flag = page.getByTestId('structure-changed')
    await flag.waitFor()
    await inspect(page, 'http-step-changed')
    await flag.getByRole('button', { name: 'Remap' }).click()
    await page.getByText('Remapped.').waitFor()
    assert.equal(await page.getByTestId('structure-changed').count(), 0)
    await page.getByRole('button', { name: 'Reset Mail Timeout' }).click()
    await page.getByText('Mail timeout reset').waitFor()
    b.check()
  })

  it("links a run's HTTP step to its log", async () => {
    const { page } = b
    shape = 'v1'
    await page.goto(`${srv.base}${bot.base}/flows/crm_flow`)
    await page.getByLabel('Phone number (with country code)').fill('919800000001')
    await page.getByLabel('Attributes 1 name').fill('order_id')
    await page.getByLabel('Attributes 1 value').fill('77')
    await page.getByRole('button', { name: 'Trigger', exact: true }).click()
    const trace = page.getByTestId('trace')
    await trace.getByText('completed').waitFor()
    await trace.getByRole('link', { name: /^log \d+$/ }).click()
    const detail = page.getByTestId('log-detail')
    await detail.getByText(`GET ${targetUrl}/orders/77`).waitFor()
    assert.ok(seen.includes('/orders/77'))
    b.check()
  })
})
