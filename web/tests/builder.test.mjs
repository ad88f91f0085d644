// The flow builder: the README's order flow built from an empty canvas by drag and drop,
// an HTTP node mapped from a local target, published, triggered through the platform API
// and lit up on the canvas; exported and compared with the document written by hand;
// an error shown on its node and refusing publication; undo; version 1 restored as 3.

import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { inspect, openBrowser, seedBot, signIn, startParley } from './harness.mjs'

describe('flow builder', () => {
  let srv, b, bot, target, targetUrl
  const calls = []
  const wide = { width: 1600, height: 1000 }

  before(async () => {
    target = createServer((req, res) => {
      let body = ''
      req.on('data', (c) => (body += c))
      req.on('end', () => {
        calls.push({ method: req.method, url: req.url, body })
        res.writeHead(200, { 'Content-Type': 'application/json' })
        res.end(JSON.stringify({ customer: { tier: 'gold' }, ok: true }))
      })
    })
    await new Promise((ok) => target.listen(0, '127.0.0.1', ok))
    targetUrl = `http://127.0.0.1:${target.address().port}`
    srv = await startParley({ httpAllow: '127.0.0.1/32' })
    bot = await seedBot(srv, 'Acme', 'orders bot')
    b = await openBrowser()
    // The builder asks the validator as one edits; an unfinished flow is a 400 there,
    // and publishing an invalid flow is refused with a 400: both expected here.
    b.allow(400, /^\/admin\/v1\/flows\/validate$/)
    b.allow(400, /\/flows\/order_update\/publish$/)
    await signIn(b.page, srv.base, { token: srv.token })
  })
  after(async () => {
    await b?.close()
    await srv?.stop()
    target?.close()
  })

  const node = (id) => b.page.locator(`.react-flow__node[data-id="${id}"]`)

  /** Drags a palette entry onto the canvas at (x, y) and names the new node. */
  async function drop(type, x, y, id) {
    const { page } = b
    await page.locator(`[data-palette="${type}"]`).dragTo(page.getByTestId('canvas'), { targetPosition: { x, y } })
    const panel = page.getByTestId('node-panel')
    await panel.getByRole('heading', { name: new RegExp(`^${type} `) }).waitFor()
    await panel.getByLabel('Node id').fill(id)
    await panel.getByRole('button', { name: 'Rename' }).click()
    await node(id).waitFor()
  }

  /** Drags from a node's way out to another node's way in. */
  async function connect(from, handle, to) {
    const { page } = b
    await page
      .locator(`.react-flow__handle[data-nodeid="${from}"][data-handleid="${handle}"]`)
      .dragTo(page.locator(`.react-flow__node[data-id="${to}"] .react-flow__handle.target`))
    await page.locator(`.react-flow__edge[data-id="${from}:${handle}"]`).waitFor({ state: 'attached' })
  }

  async function select(id) {
    await node(id).locator('.fnode-head').click()
    await b.page.getByTestId('node-panel').getByRole('heading', { name: new RegExp(` ${id}$`) }).waitFor()
  }

  it('builds the order flow from an empty canvas by drag and drop', async () => {
    const { page } = b
    await page.setViewportSize(wide)
    await page.goto(`${srv.base}${bot.base}/flows`)
    await page.getByLabel('New flow key').fill('order_update')
    await page.getByRole('button', { name: 'Open the builder' }).click()
    await page.getByText('Drag a node here').waitFor()
    await inspect(page, 'builder-empty')
    await page.setViewportSize(wide)
    // Smaller, so that the whole flow fits the canvas.
    for (let i = 0; i < 3; i++) await page.getByRole('button', { name: /zoom out/i }).click()

    await drop('decision', 30, 60, 'tier')
    await drop('message', 260, 20, 'vip')
    await drop('message', 260, 260, 'std')
    await drop('input', 480, 120, 'ask')
    await drop('http', 700, 40, 'crm')
    await drop('end', 700, 320, 'done')

    const panel = page.getByTestId('node-panel')
    await select('tier')
    await panel.getByLabel('Branch 1 test 1 attribute').fill('user_type')
    await panel.getByLabel('Branch 1 test 1 value').fill('vip')
    await node('tier').getByText('user_type eq "vip"').waitFor()

    await select('vip')
    // {{ completes the attributes the flow knows.
    const text = panel.getByLabel('Text', { exact: true })
    await text.click()
    await text.pressSequentially('Hi {{user.us')
    await panel.getByRole('option', { name: 'user.user_name' }).waitFor()
    // Keys typed right after Enter, before the page paints again, land after the name.
    await text.evaluate((el) => {
      el.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true, cancelable: true }))
      document.execCommand('insertText', false, ', VIP')
    })
    assert.equal(await text.inputValue(), 'Hi {{user.user_name}}, VIP')
    await text.pressSequentially(' order {{order_id}} is on its way')
    await select('std')
    await panel.getByLabel('Text', { exact: true }).fill('Order {{order_id}} is on its way')

    await select('ask')
    await panel.getByLabel('Prompt text').fill('Rate us?')
    await panel.getByRole('button', { name: 'Add a button' }).click()
    await panel.getByLabel('Button 1 title').fill('Great')
    await panel.getByRole('button', { name: 'Add a button' }).click()
    await panel.getByLabel('Button 2 title').fill('Meh')
    await panel.getByLabel('Save the reply as').fill('rating')
    await panel.getByLabel('Timeout (seconds)').fill('3600')

    await select('crm')
    await panel.getByLabel('Method').selectOption('POST')
    await panel.getByLabel('URL').fill(`${targetUrl}/orders/{{order_id}}`)
    await panel.getByRole('button', { name: 'Add to headers' }).click()
    await panel.getByLabel('Header 1', { exact: true }).fill('X-Token')
    await panel.getByLabel('Header value 1').fill('{{crm_token}}')
    await panel.getByLabel('Body mode').selectOption('json')
    await panel.getByLabel('Body content').fill('{"rating": "{{rating}}"}')
    await panel.getByLabel('When a call fails').selectOption('continue')
    await node('crm').getByText(`POST ${targetUrl}/orders/{{order_id}}`).waitFor()
    await node('crm').getByText('failure', { exact: true }).waitFor()
    // Before anything is published, Test calls the node as drafted, and logs nothing.
    const tools = page.getByTestId('http-tools')
    await tools.getByText('before it is published').waitFor()
    await tools.getByLabel('Sample attributes 1 value').fill('41')
    await tools.getByRole('button', { name: 'Test', exact: true }).click()
    await tools.getByTestId('test-result').getByText('200 OK').first().waitFor()
    assert.deepEqual(calls.at(-1), { method: 'POST', url: '/orders/41', body: '{"rating": ""}' })
    assert.equal(await tools.getByRole('heading', { name: 'Logs' }).count(), 0)

    await connect('tier', 'b0', 'vip')
    await connect('tier', 'else', 'std')
    await connect('vip', 'next', 'ask')
    await connect('std', 'next', 'ask')
    await connect('ask', 'next', 'crm')
    await connect('ask', 'on_timeout', 'done')
    await connect('crm', 'next', 'done')
    await page.getByText('No problems: the flow can be published.').waitFor({ state: 'attached' }).catch(() => undefined)

    // Duplicate, delete and undo/redo by keyboard.
    await select('done')
    await page.keyboard.press('Control+d')
    await node('done_2').waitFor()
    await page.keyboard.press('Delete')
    await node('done_2').waitFor({ state: 'detached' })
    await page.keyboard.press('Control+z')
    await node('done_2').waitFor()
    await page.keyboard.press('Control+Shift+z')
    await node('done_2').waitFor({ state: 'detached' })

    await page.getByRole('button', { name: 'Shortcuts' }).click()
    await page.getByRole('dialog', { name: 'Keyboard shortcuts' }).getByText('Ctrl+Shift+Z or Ctrl+Y').waitFor()
    await page.getByRole('button', { name: 'Close' }).click()

    await page.getByRole('tab', { name: /^Problems/ }).click()
    await page.getByText('No problems: the flow can be published.').waitFor()
    await page.getByRole('button', { name: 'Save draft' }).click()
    await page.getByText('Draft saved. It is valid and can be published.').waitFor()
    await page.getByRole('button', { name: 'Publish' }).click()
    await page.getByText('Published version 1.').waitFor()

    // Published, the panel tests the node as it is here and maps a leaf of its answer.
    await select('crm')
    await tools.getByRole('heading', { name: 'Logs' }).waitFor()
    await tools.getByLabel('Sample attributes 1 value').fill('42')
    await tools.getByRole('button', { name: 'Test', exact: true }).click()
    const result = tools.getByTestId('test-result')
    await result.getByText('200 OK').first().waitFor()
    await result.getByRole('button', { name: /^Map customer\.tier / }).click()
    assert.equal(await tools.getByLabel('Attribute name').inputValue(), 'tier')
    await tools.getByRole('button', { name: 'Map', exact: true }).click()
    await tools.getByText('Mapped customer.tier to tier in the draft').waitFor()
    await node('crm').getByText('saves tier ← customer.tier').waitFor()
    assert.deepEqual(calls.at(-1), { method: 'POST', url: '/orders/42', body: '{"rating": ""}' })
    await page.getByRole('button', { name: 'Publish' }).click()
    await page.getByText('Published version 2.').waitFor()
    await page.setViewportSize({ width: 1280, height: 800 })
    await inspect(page, 'builder-built')
    b.check()
  })

  it('lights up a run triggered through the platform API', async () => {
    const { page } = b
    await page.setViewportSize(wide)
    await page.getByRole('button', { name: 'Flow key and trigger URLs' }).click()
    const v2 = await page.getByTestId('copy-Trigger URL v2').textContent()
    assert.equal(v2, `${srv.base}/bot-api/v2.0/customer/${bot.cid}/bot/${bot.botKey}/flow/order_update`)
    assert.equal(
      await page.getByTestId('copy-Trigger URL v1').textContent(),
      `${srv.base}/bot-api/v1.0/customer/${bot.cid}/bot/${bot.botKey}/flow/order_update`,
    )

    await page.getByRole('tab', { name: 'Run' }).click()
    await page.getByLabel('Sandbox phone (with country code)').fill('919800000001')
    await page.getByLabel("Follow this phone's runs").check()
    const res = await fetch(v2, {
      method: 'POST',
      headers: { Authorization: `Basic ${bot.apiKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ 'user.phone_no': '919800000001', user_type: 'vip', order_id: '77', crm_token: 't-1' }),
    })
    assert.equal(res.status, 200, await res.clone().text())
    await page.locator('[data-testid="node-ask"][data-lit="current"]').waitFor()
    assert.equal(await page.locator('[data-testid="node-tier"][data-lit="passed"]').count(), 1)
    assert.equal(await page.locator('[data-testid="node-vip"][data-lit="passed"]').count(), 1)
    assert.equal(await page.locator('[data-testid="node-std"][data-lit]').count(), 0)
    await page.locator('.react-flow__edge.lit[data-id="tier:b0"]').waitFor({ state: 'attached' })
    await page.getByTestId('run-light').getByText('waiting for input').waitFor()

    // The user's reply carries the run on through the HTTP node to the end.
    await srv.admin('POST', `/admin/v1/customers/${bot.cid}/bots/${bot.botKey}/sandbox/messages`, {
      phone: '919800000001',
      text: 'Great',
    })
    await page.locator('[data-testid="node-done"][data-lit="current"]').waitFor()
    assert.equal(await page.locator('[data-testid="node-crm"][data-lit="passed"]').count(), 1)
    await page.getByTestId('run-light').getByText('completed', { exact: true }).waitFor()
    assert.deepEqual(calls.at(-1), { method: 'POST', url: '/orders/77', body: '{"rating": "Great"}' })
    await inspect(page, 'builder-run')
    b.check()
  })

  it('exports the document as written by hand, layout aside, and imports it back', async () => {
    const { page } = b
    await page.setViewportSize(wide)
    await page.getByRole('tab', { name: 'Import / export' }).click()
    const [dl] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export JSON file' }).click()])
    const doc = JSON.parse(await readFile(await dl.path(), 'utf8'))
    const { layout, ...rest } = doc
    assert.deepEqual(rest, {
      key: 'order_update',
      start: 'tier',
      nodes: [
        {
          id: 'tier',
          type: 'decision',
          branches: [{ when: { all: [{ attribute: 'user_type', op: 'eq', value: 'vip' }] }, next: 'vip' }],
          else: 'std',
        },
        { id: 'vip', type: 'message', text: 'Hi {{user.user_name}}, VIP order {{order_id}} is on its way', next: 'ask' },
        { id: 'std', type: 'message', text: 'Order {{order_id}} is on its way', next: 'ask' },
        {
          id: 'ask',
          type: 'input',
          text: 'Rate us?',
          buttons: [{ title: 'Great' }, { title: 'Meh' }],
          save_as: 'rating',
          timeout_seconds: 3600,
          on_timeout: 'done',
          next: 'crm',
        },
        {
          id: 'crm',
          type: 'http',
          method: 'POST',
          url: `${targetUrl}/orders/{{order_id}}`,
          headers: { 'X-Token': '{{crm_token}}' },
          body: { mode: 'json', content: '{"rating": "{{rating}}"}' },
          save: { tier: 'customer.tier' },
          on_failure: 'continue',
          next: 'done',
        },
        { id: 'done', type: 'end' },
      ],
    })
    assert.deepEqual(Object.keys(layout.nodes).sort(), ['ask', 'crm', 'done', 'std', 'tier', 'vip'])
    // What was published is the same document.
    const published = await (
      await fetch(`${srv.base}/admin/v1/customers/${bot.cid}/bots/${bot.botKey}/flows/order_update`, {
        headers: { Authorization: `Bearer ${srv.token}` },
      })
    ).json()
    assert.deepEqual(published.nodes, rest.nodes)
    assert.deepEqual(published.layout.nodes, layout.nodes)

    // Import: the exported text, loaded into the canvas, exports unchanged.
    await page.getByTestId('json-text').fill(JSON.stringify(doc))
    await page.getByRole('button', { name: 'Load into the canvas' }).click()
    await page.getByText('Loaded into the canvas').waitFor()
    const [dl2] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export JSON file' }).click()])
    const again = JSON.parse(await readFile(await dl2.path(), 'utf8'))
    assert.deepEqual({ ...again, layout: { nodes: again.layout.nodes } }, { ...doc, layout: { nodes: layout.nodes } })
    b.check()
  })

  it('shows an error on its node, refuses to publish it, undoes it and restores version 1 as 3', async () => {
    const { page } = b
    await page.setViewportSize(wide)
    await select('tier')
    await page.getByTestId('node-panel').getByLabel('Branch 1 test 1 attribute').fill('user type')
    const problems = page.getByTestId('problems-tier')
    await problems.getByText('not a valid attribute name').waitFor()
    await page.getByRole('tab', { name: /^Problems/ }).click()
    await page.getByTestId('problem-list').getByRole('button', { name: 'tier' }).click()
    await page.getByTestId('node-panel').getByRole('heading', { name: / tier$/ }).waitFor()
    await page.getByRole('button', { name: 'Publish' }).click()
    await page.getByText(/^Publishing was refused: the flow has 1 problem/).waitFor()
    await inspect(page, 'builder-refused')
    await page.setViewportSize(wide)

    await page.getByRole('button', { name: 'Undo' }).click()
    await problems.waitFor({ state: 'detached' })
    assert.equal(await node('tier').getByText('user_type eq "vip"').count(), 1)

    await page.getByRole('tab', { name: 'Versions' }).click()
    const versions = page.getByTestId('versions')
    await versions.getByRole('row', { name: /^2 \(current\)/ }).waitFor()
    await versions.getByRole('row', { name: /^1 / }).getByText('by admin').waitFor()
    await versions.getByRole('button', { name: 'Open v1' }).click()
    await page.getByTestId('viewing').getByText('Version 1, read-only.').waitFor()
    assert.equal(await node('crm').getByText('saves tier').count(), 0, 'version 1 maps nothing')
    await page.getByRole('button', { name: 'Restore version 1 as a new version' }).click()
    await page.getByText('Version 1 restored as version 3.').waitFor()
    await page.getByTestId('builder-state').getByText('version 3').waitFor()
    await versions.getByRole('row', { name: /^3 \(current\)/ }).waitFor()
    const flows = await srv.admin('GET', `/admin/v1/customers/${bot.cid}/bots/${bot.botKey}/flows`)
    assert.equal(flows.flows.find((f) => f.flow_key === 'order_update').version, 3)
    b.check()
  })
  it('is usable by keyboard alone', async () => {
    const { page } = b
    await page.setViewportSize({ width: 1280, height: 800 })
    await page.getByRole('button', { name: 'Add a Set node' }).press('Enter')
    const panel = page.getByTestId('node-panel')
    await panel.getByRole('heading', { name: /^set set$/ }).waitFor()
    await panel.getByRole('button', { name: 'Add to set' }).press('Enter')
    await panel.getByLabel('Attribute 1').fill('greeted')
    await panel.getByLabel('Value 1').fill('yes')
    await panel.getByLabel('Next').selectOption('done')
    await page.locator('.react-flow__edge[data-id="set:next"]').waitFor({ state: 'attached' })
    await node('set').getByText('greeted = yes').waitFor()
    // A node takes the focus with Tab; Delete removes it with its edges, Ctrl+Z brings it back.
    await node('set').focus()
    await page.keyboard.press('Delete')
    await node('set').waitFor({ state: 'detached' })
    assert.equal(await page.locator('.react-flow__edge[data-id="set:next"]').count(), 0)
    await page.keyboard.press('Control+z')
    await node('set').waitFor()
    await page.locator('.react-flow__edge[data-id="set:next"]').waitFor({ state: 'attached' })
    b.check()
  })
  it('asks before unsaved changes are left behind', async () => {
    const { page } = b
    // The test before left a Set node that is not saved.
    const state = page.getByTestId('builder-state')
    await state.getByText('unsaved changes').waitFor()
    const builderUrl = page.url()
    const crumb = page.getByRole('navigation', { name: 'Flow' }).getByRole('link', { name: 'Flows' })
    const asked = []
    const answer = (accept) => page.once('dialog', (d) => {
      asked.push({ type: d.type(), message: d.message() })
      void (accept ? d.accept() : d.dismiss())
    })

    answer(false)
    await crumb.click()
    await node('set').waitFor()
    assert.equal(page.url(), builderUrl, 'a link refused stays on the builder')
    assert.deepEqual(asked.at(-1), { type: 'confirm', message: 'This flow has changes that are not saved. Leave without saving them?' })

    answer(true)
    await crumb.click()
    await page.waitForURL(/\/flows$/)
    assert.equal(asked.length, 2)

    // Back to the builder: the flow as stored, nothing to ask about until it is edited.
    await page.goBack()
    await page.waitForURL(builderUrl)
    await state.waitFor()
    assert.equal(await state.getByText('unsaved changes').count(), 0)
    await page.getByRole('button', { name: 'Add a Set node' }).click()
    await state.getByText('unsaved changes').waitFor()
    answer(false)
    await page.goBack()
    await node('set').waitFor()
    assert.equal(page.url(), builderUrl, 'Back refused stays on the builder')
    assert.equal(asked.at(-1).type, 'confirm')

    // Closing or reloading the tab asks through the browser's own question.
    answer(true)
    await page.reload()
    await state.waitFor()
    assert.equal(asked.at(-1).type, 'beforeunload')
    assert.equal(asked.length, 4)
    b.check()
  })
})
