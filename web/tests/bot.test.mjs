// A bot from creation to conversation: keys shown once and revoked (the curl then answers
// 401), channel settings, flow import and export, "Try it" with its trace, runs, the
// sandbox chat and the user's transcript.

import assert from 'node:assert/strict'
import { createHmac, generateKeyPairSync } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { openBrowser, inspect, seedBot, signIn, startParley } from './harness.mjs'

const orderFlow = {
  key: 'order_update',
  name: 'Order update',
  start: 'hello',
  nodes: [
    { id: 'hello', type: 'message', text: 'Hi, order {{order_id}} is on its way', next: 'ask' },
    {
      id: 'ask',
      type: 'input',
      text: 'Rate us?',
      buttons: [{ id: 'great', title: 'Great' }, { title: 'Meh' }],
      save_as: 'rating',
      next: 'thanks',
    },
    { id: 'thanks', type: 'message', text: 'Thanks, you said {{rating}}', next: 'done' },
    { id: 'done', type: 'end' },
  ],
}

/** Reads the console's curl command: URL, headers and body. */
function parseCurl(text) {
  const words = []
  const re = /'((?:[^']|'\\'')*)'|(\S+)/g
  for (const m of text.replace(/\\\n/g, ' ').matchAll(re)) words.push(m[1] !== undefined ? m[1].replaceAll(`'\\''`, `'`) : m[2])
  const out = { method: 'GET', url: '', headers: {}, body: undefined }
  for (let i = 1; i < words.length; i++) {
    const w = words[i]
    if (w === '-X') out.method = words[++i]
    else if (w === '-H') {
      const [k, ...v] = words[++i].split(':')
      out.headers[k.trim()] = v.join(':').trim()
    } else if (w === '-d') out.body = words[++i]
    else out.url = w
  }
  return out
}

async function runCurl(text) {
  const c = parseCurl(text)
  const res = await fetch(c.url, { method: c.method, headers: c.headers, body: c.body })
  return { status: res.status, body: await res.json() }
}

describe('a bot', () => {
  let srv, b, bot, waBot
  const phone = '919876543210'

  before(async () => {
    srv = await startParley()
    b = await openBrowser()
    bot = await seedBot(srv, 'Acme', 'support')
    await signIn(b.page, srv.base, { token: srv.token })
  })
  after(async () => {
    await b?.close()
    await srv?.stop()
  })

  it('imports a flow from pasted JSON and from a file, and exports it', async () => {
    const { page } = b
    await page.goto(`${srv.base}${bot.base}/flows`)
    await page.getByText('This bot has no flows yet').waitFor()
    await page.getByLabel('Flow document (JSON)').fill('{"start": "a", "nodes": [{"id": "a", "type": "message", "next": "nowhere"}]}')
    b.allow(400, /^\/admin\/v1\/flows\/validate$/)
    await page.getByRole('button', { name: 'Import' }).click()
    await page.getByRole('alert').filter({ hasText: 'nowhere' }).waitFor()

    await page.getByLabel('Flow document (JSON)').fill(JSON.stringify(orderFlow))
    await page.getByRole('button', { name: 'Import' }).click()
    await page.getByRole('status').filter({ hasText: 'as version 1' }).waitFor()
    await page.getByRole('cell', { name: 'order_update' }).waitFor()
    await inspect(page, 'flows')

    const v2 = { ...orderFlow, name: 'Order update v2' }
    await page.getByLabel('Flow document file').setInputFiles({
      name: 'order.json',
      mimeType: 'application/json',
      buffer: Buffer.from(JSON.stringify(v2)),
    })
    await page.waitForFunction(() => document.querySelector('textarea')?.value.includes('Order update v2'))
    await page.getByRole('button', { name: 'Import' }).click()
    await page.getByRole('status').filter({ hasText: 'as version 2' }).waitFor()

    await page.getByRole('link', { name: 'Order update v2' }).first().click()
    await page.getByRole('heading', { name: 'Order update v2' }).waitFor()
    await page.getByRole('button', { name: 'Flow key and trigger URLs' }).click()
    assert.equal(await page.getByTestId('copy-Flow key').innerText(), 'order_update')
    assert.equal(
      await page.getByTestId('copy-Trigger URL v2').innerText(),
      `${srv.base}/bot-api/v2.0/customer/${bot.cid}/bot/${bot.botKey}/flow/order_update`,
    )
    await page.getByRole('button', { name: 'Copy Flow key' }).click()
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), 'order_update')
    await page.getByRole('cell', { name: '2', exact: true }).waitFor()
    await page.getByRole('cell', { name: '1', exact: true }).waitFor()

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export JSON' }).click()])
    const exported = JSON.parse(await readFile(await download.path(), 'utf8'))
    assert.equal(exported.key, 'order_update')
    assert.equal(exported.name, 'Order update v2')
    assert.deepEqual(
      exported.nodes.map((n) => n.id),
      orderFlow.nodes.map((n) => n.id),
    )
    await inspect(page, 'flow')
    b.check()
  })

  it('triggers the flow from "Try it" and shows the trace', async () => {
    const { page } = b
    await page.getByLabel('Phone number (with country code)').fill(`+${phone}`)
    await page.getByLabel('Attributes 1 name').fill('order_id')
    await page.getByLabel('Attributes 1 value').fill('42')
    await page.getByRole('button', { name: 'Trigger', exact: true }).click()
    const trace = page.getByTestId('trace')
    await trace.waitFor()
    await trace.getByText('waiting').first().waitFor()
    const steps = await trace.getByTestId('step').allInnerTexts()
    assert.ok(steps.length >= 1, `steps: ${steps.join(' | ')}`)
    assert.match(steps[0], /hello\s+message\s+sent/)
    await trace.getByText('at ask').waitFor()
    await inspect(page, 'try-it')

    // The run's own page adds the messages it sent.
    await trace.getByRole('link', { name: /^[0-9a-f-]{8,}/i }).first().click()
    await page.getByRole('heading', { name: 'Run' }).waitFor()
    await page.getByText('Hi, order 42 is on its way').waitFor()
    await page.getByText('Rate us?').waitFor()
    await inspect(page, 'run')
    b.check()
  })

  it('lists runs filtered by flow, status and time', async () => {
    const { page } = b
    await page.getByRole('link', { name: 'Runs', exact: true }).click()
    await page.getByTestId('run-row').first().waitFor()
    assert.equal(await page.title(), 'Runs · support · Parley console')
    await page.getByLabel('Flow').selectOption('order_update')
    await page.getByLabel('Status').selectOption('waiting')
    await page.getByRole('button', { name: 'Filter' }).click()
    await page.waitForURL(/status=waiting/)
    await page.getByTestId('run-row').first().waitFor()
    assert.equal(await page.getByTestId('run-row').count(), 1)
    await inspect(page, 'runs')
    await page.getByLabel('Status').selectOption('completed')
    await page.getByRole('button', { name: 'Filter' }).click()
    await page.getByText('No runs match').waitFor()
    await page.getByLabel('Status').selectOption('')
    await page.getByLabel('From').fill('2099-01-01T00:00')
    await page.getByRole('button', { name: 'Filter' }).click()
    await page.getByText('No runs match').waitFor()
    b.check()
  })

  it('chats in the sandbox and shows the transcript on the Users page', async () => {
    const { page } = b
    await page.getByRole('link', { name: 'Sandbox' }).click()
    // A phone that never wrote: no conversation until its first message.
    b.allow(404, /^\/admin\/v1\/customers\/\d+\/bots\/[0-9a-f]+\/users\/919800000002$/)
    await page.getByLabel('Phone number (with country code)').fill('+91 98000 00002')
    await page.getByRole('button', { name: 'Open chat' }).click()
    await page.getByText('No messages yet').waitFor()
    await page.getByLabel('Message', { exact: true }).fill('first words')
    await page.getByRole('button', { name: 'Send' }).click()
    await page.getByRole('region', { name: 'Chat as +919800000002' }).getByText('first words').waitFor()

    await page.getByLabel('Phone number (with country code)').fill(phone)
    await page.getByRole('button', { name: 'Open chat' }).click()
    const screen = page.getByRole('region', { name: `Chat as +${phone}` })
    await screen.getByText('Rate us?').waitFor()
    await screen.getByRole('button', { name: 'Great' }).click()
    await screen.getByText('Thanks, you said great').waitFor()
    await page.getByLabel('Message', { exact: true }).fill('hello there')
    await page.getByRole('button', { name: 'Send' }).click()
    await screen.getByText('hello there').waitFor()
    // Start the flow again from the panel: its first message arrives by polling.
    await page.getByRole('button', { name: 'Start', exact: true }).click()
    await screen.getByText('Rate us?').nth(1).waitFor()
    await inspect(page, 'sandbox')

    await page.getByRole('link', { name: 'Users' }).click()
    await page.getByLabel('Id or name starts with').fill('9198')
    await page.getByRole('button', { name: 'Search' }).click()
    await page.getByRole('link', { name: phone }).click()
    await page.getByRole('heading', { name: `User ${phone}` }).waitFor()
    const attrs = await page.getByTestId('attributes').innerText()
    assert.match(attrs, /order_id\s+42/)
    assert.match(attrs, /rating\s+great/)
    const transcript = page.getByRole('list', { name: 'Conversation' })
    await transcript.getByText('Hi, order 42 is on its way').first().waitFor()
    await transcript.getByText('hello there').waitFor()
    assert.ok((await transcript.locator('[data-status]').count()) > 0, 'bot messages show their delivery status')
    await inspect(page, 'user')
    await page.getByRole('link', { name: 'Users' }).click()
    await page.getByLabel('Attribute').fill('rating')
    await page.getByLabel('equals').fill('great')
    await page.getByRole('button', { name: 'Search' }).click()
    await page.getByRole('link', { name: phone }).waitFor()
    await inspect(page, 'users')
    await page.getByLabel('equals').fill('awful')
    await page.getByRole('button', { name: 'Search' }).click()
    await page.getByText('No user matches.').waitFor()
    b.check()
  })

  it('creates a key, shows it once, revokes it, and its curl then answers 401', async () => {
    const { page } = b
    await page.getByRole('link', { name: 'Integrations' }).click()
    assert.equal(await page.getByTestId('copy-Customer id').innerText(), String(bot.cid))
    assert.equal(await page.getByTestId('copy-Bot key').innerText(), bot.botKey)
    assert.equal(await page.getByTestId('copy-Base URL').innerText(), srv.base)
    await page.getByRole('button', { name: 'Create API key' }).click()
    const key = await page.getByTestId('copy-New API key').innerText()
    assert.match(key, /^[0-9a-f-]{36}-[a-z]+$/)
    const keyId = Number(/Key (\d+) is shown/.exec(await page.getByTestId('new-key').innerText())?.[1])

    const curl = await page.getByTestId('curl').innerText()
    assert.ok(curl.includes(key), curl)
    const ok = await runCurl(curl)
    assert.equal(ok.status, 200, JSON.stringify(ok.body))
    await page.getByLabel('Call').selectOption('v1')
    const v1 = await runCurl(await page.getByTestId('curl').innerText())
    assert.equal(v1.status, 200, JSON.stringify(v1.body))
    await page.getByLabel('Call').selectOption('template')
    assert.match(await page.getByTestId('curl').innerText(), /\/whatsapp-api\/v1\.0\/customer\/\d+\/bot\/[0-9a-f]+\/template/)
    await page.getByLabel('Call').selectOption('v2')
    await inspect(page, 'integrations')

    const row = page.getByTestId(`key-${keyId}`)
    await row.getByRole('button', { name: 'Revoke' }).click()
    await row.getByRole('button', { name: 'Yes, revoke' }).click()
    await row.getByText('revoked').waitFor()
    await new Promise((r) => setTimeout(r, 1000)) // verified keys are cached 0.9 s
    const refused = await runCurl(await page.getByTestId('curl').innerText())
    assert.equal(refused.status, 401, JSON.stringify(refused.body))

    // Shown once: after a reload the key is gone from the page.
    await page.reload()
    await page.getByTestId(`key-${keyId}`).waitFor()
    assert.equal(await page.getByText(key).count(), 0)
    // Regenerating the first key shows its replacement once.
    const first = page.getByTestId('key-1')
    await first.getByRole('button', { name: 'Regenerate' }).click()
    await first.getByRole('button', { name: 'Yes, regenerate' }).click()
    const fresh = await page.getByTestId('copy-New API key').innerText()
    assert.notEqual(fresh, key)
    b.check()
  })

  it('follows a broadcast sent with the curl, live, and cancels a scheduled one', async () => {
    const { page } = b
    // The regenerated key of the previous test is still shown, and used by the examples.
    await page.getByLabel('Call').selectOption('broadcast')
    const curl = await page.getByTestId('curl').innerText()
    const sent = await runCurl(curl)
    assert.equal(sent.status, 200, JSON.stringify(sent.body))
    const id = sent.body.responseObject.broadcastId

    await page.getByRole('link', { name: 'Broadcasts' }).click()
    await page.getByRole('link', { name: 'Hello' }).first().click()
    await page.getByRole('heading', { name: 'Hello' }).waitFor()
    await page.getByText(/PUBLISHED|FAILED/).first().waitFor()
    await page.getByRole('link', { name: phone }).waitFor()
    assert.equal(await page.getByTestId('recipient-row').count(), 1)
    await inspect(page, 'broadcast')

    // One scheduled for tomorrow, cancelled from its page before it starts.
    const c = parseCurl(curl)
    const body = JSON.parse(c.body)
    body.broadcastTitle = 'Tomorrow'
    body.publishedOn = new Date(Date.now() + 86_400_000).toISOString()
    const later = await fetch(c.url, { method: 'POST', headers: c.headers, body: JSON.stringify(body) })
    assert.equal(later.status, 200)
    await page.getByRole('link', { name: 'Broadcasts' }).click()
    await page.getByTestId('broadcast-row').filter({ hasText: 'SCHEDULED' }).waitFor()
    await inspect(page, 'broadcasts')
    await page.getByRole('link', { name: 'Tomorrow' }).click()
    await page.getByRole('button', { name: 'Cancel broadcast' }).click()
    await page.getByRole('button', { name: 'Yes, cancel broadcast' }).click()
    // The status badge, not the totals' "0 cancelled", which is there from the start.
    await page.getByText('CANCELLED', { exact: true }).first().waitFor()
    assert.equal(await page.getByRole('button', { name: 'Cancel broadcast' }).count(), 0)
    const first = await srv.admin('GET', `/admin/v1/customers/${bot.cid}/bots/${bot.botKey}/broadcasts/${id}`)
    assert.notEqual(first.status, 'CANCELLED')
    b.check()
  })

  it('sends a text broadcast by keyboard and a WhatsApp template from its form', async () => {
    const { page } = b
    await page.getByRole('link', { name: 'Broadcasts' }).click()
    // The form opens from its summary, by keyboard.
    await page.getByText('New broadcast', { exact: true }).focus()
    await page.keyboard.press('Enter')
    const form = page.getByRole('form', { name: 'New broadcast' })
    await form.getByLabel('Title').fill('From the console')
    // No channel: nothing to send.
    await form.getByLabel('whatsapp', { exact: true }).uncheck()
    assert.equal(await form.getByRole('button', { name: 'Send broadcast' }).isDisabled(), true)
    await form.getByLabel('whatsapp', { exact: true }).focus()
    await page.keyboard.press('Space')
    // A phone number as people write it is its user's channel user id.
    const written = `+${phone.slice(0, 2)} ${phone.slice(2, 7)} ${phone.slice(7)}`
    await form.getByLabel('Recipients (phone numbers or channel user ids, one a line)').fill(`${written}\n919000000009`)
    await form.getByLabel('Message', { exact: true }).fill('Sale starts now')
    // Publish at is left empty (now); Enter in a field sends the form.
    await form.getByLabel('Title').focus()
    await page.keyboard.press('Enter')
    const said = page.getByRole('status').filter({ hasText: 'accepted for 2 recipients' })
    await said.waitFor()
    await said.getByRole('link', { name: 'From the console' }).click()
    await page.getByRole('heading', { name: 'From the console' }).waitFor()
    await page.getByText('PUBLISHED', { exact: true }).first().waitFor()
    assert.equal(await page.getByTestId('recipient-row').count(), 2)
    assert.equal(await page.getByRole('list', { name: 'Messages' }).innerText(), 'Sale starts now')
    await page.getByTestId('recipient-row').filter({ hasText: 'unknown user' }).waitFor()
    await page.getByTestId('recipient-row').filter({ hasText: phone }).filter({ hasText: /sent|delivered|read/ }).waitFor()
    await inspect(page, 'broadcast-new')

    // A WhatsApp template to a phone number: the v2 broadcast.
    await page.getByRole('link', { name: 'Broadcasts' }).click()
    await page.getByText('New broadcast', { exact: true }).click()
    await form.getByLabel('WhatsApp template').check()
    await form.getByLabel('Title').fill('Template from the console')
    await form.getByLabel('Phone numbers (with country code, one a line)').fill(`+${phone}`)
    await form.getByLabel('Template name').fill('order_update')
    await form.getByLabel(/^Body parameters/).fill('42')
    await inspect(page, 'broadcast-template-form')
    await form.getByRole('button', { name: 'Send broadcast' }).click()
    const sent = page.getByRole('status').filter({ hasText: 'accepted for 1 recipient:' })
    await sent.waitFor()
    await sent.getByRole('link', { name: 'Template from the console' }).click()
    await page.getByText('PUBLISHED', { exact: true }).first().waitFor()
    assert.equal(await page.getByRole('list', { name: 'Messages' }).innerText(), 'template order_update (en)')
    await page.getByTestId('recipient-row').filter({ hasText: phone }).filter({ hasText: /sent|delivered|read/ }).waitFor()
    b.check()
  })

  it('shows media and cards in the transcript', async () => {
    const { page } = b
    const api = `/admin/v1/customers/${bot.cid}/bots/${bot.botKey}`
    await srv.admin('POST', `${api}/flows`, {
      key: 'showcase',
      start: 'photo',
      nodes: [
        { id: 'photo', type: 'message', media: { type: 'image', url: 'https://cdn.example.com/p.png', caption: 'A photo' }, next: 'card' },
        { id: 'card', type: 'message', card: { title: 'Blue shoes', description: 'Size 42', buttons: [{ title: 'Buy' }] }, next: 'done' },
        { id: 'done', type: 'end' },
      ],
    })
    await srv.admin('POST', `${api}/flows/showcase/trigger?wait=true`, { 'user.phone_no': '919811111111' })
    await page.goto(`${srv.base}${bot.base}/users/919811111111`)
    const transcript = page.getByRole('list', { name: 'Conversation' })
    await transcript.getByRole('link', { name: 'image: A photo' }).waitFor()
    await transcript.getByText('Blue shoes').waitFor()
    await transcript.getByText('Buy').waitFor()
    b.check()
  })

  it('sets WhatsApp settings with write-only secrets and shows what to paste into Meta', async () => {
    const { page } = b
    const other = await srv.admin('POST', `/admin/v1/customers/${bot.cid}/bots`, { name: 'whatsapp bot' })
    waBot = other.bot_key
    await page.goto(`${srv.base}/console/customers/${bot.cid}/bots/${other.bot_key}/channels`)
    const wa = page.getByRole('form', { name: 'WhatsApp' })
    await wa.getByLabel('Adapter').selectOption('whatsapp')
    await wa.getByLabel('Phone number id').fill('1065551234')
    await wa.getByLabel('Access token').fill('EAAG-secret-token-value')
    await wa.getByLabel('App secret').fill('app-secret-value-123')
    await wa.getByRole('button', { name: 'Generate' }).click()
    const verify = await wa.getByLabel('Verify token').inputValue()
    assert.match(verify, /^[0-9a-f]{36}$/)
    await wa.getByRole('button', { name: 'Save WhatsApp settings' }).click()
    await wa.getByText('Saved.').waitFor()
    assert.equal(await wa.getByTestId('copy-WhatsApp webhook URL').innerText(), `${srv.base}/webhooks/whatsapp/${other.bot_key}`)
    assert.equal(await wa.getByTestId('copy-Verify token').innerText(), verify)
    assert.equal(await wa.getByLabel('Access token').inputValue(), '', 'secrets are not put back in the form')
    await inspect(page, 'channels')

    // The token shown is the one Meta's handshake needs.
    const hs = await fetch(
      `${srv.base}/webhooks/whatsapp/${other.bot_key}?hub.mode=subscribe&hub.verify_token=${verify}&hub.challenge=ch4ll`,
    )
    assert.equal(await hs.text(), 'ch4ll')

    // An empty secret keeps the stored one: change only the phone number id.
    await page.reload()
    await wa.getByLabel('Phone number id').fill('1065559999')
    await wa.getByRole('button', { name: 'Save WhatsApp settings' }).click()
    await wa.getByText('Saved.').waitFor()
    const view = await srv.admin('GET', `/admin/v1/customers/${bot.cid}/bots/${other.bot_key}/channels/whatsapp`)
    assert.equal(view.config.phone_number_id, '1065559999')
    assert.match(view.config.token, /^\*+alue$/)
    assert.ok(view.config.verify_token, 'verify token kept')

    // RCS with a service-account key: shown afterwards by its account only.
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const key = {
      type: 'service_account',
      client_email: 'rbm-agent@acme.iam.gserviceaccount.com',
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    }
    const rcs = page.getByRole('form', { name: 'RCS' })
    await rcs.getByLabel('Adapter').selectOption('rcs')
    await rcs.getByLabel('Agent id').fill('acme-agent')
    await rcs.getByLabel(/^Service-account key/).fill(JSON.stringify(key, null, 2))
    await rcs.getByRole('button', { name: 'Save RCS settings' }).click()
    await rcs.getByText('Saved.').waitFor()
    assert.match(await rcs.getByLabel(/^Service-account key/).getAttribute('placeholder'), /rbm-agent@acme\.iam\.gserviceaccount\.com/)
    assert.equal(await rcs.getByTestId('copy-RCS webhook URL').innerText(), `${srv.base}/webhooks/rcs/${other.bot_key}`)
    b.check()
  })

  it('shows delivery ticks and a failed message from the WhatsApp provider', async () => {
    const { page } = b
    // A stand-in for the Graph API: the first message is accepted, the next refused.
    let sends = 0
    const graph = createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        sends++
        res.writeHead(sends === 1 ? 200 : 400, { 'Content-Type': 'application/json' })
        res.end(
          JSON.stringify(
            sends === 1
              ? { messages: [{ id: 'wamid.first' }] }
              : { error: { message: 'Recipient phone number not in allowed list', code: 131030, type: 'OAuthException' } },
          ),
        )
      })
    })
    await new Promise((ok) => graph.listen(0, '127.0.0.1', ok))
    try {
      await page.goto(`${srv.base}/console/customers/${bot.cid}/bots/${waBot}/channels`)
      const wa = page.getByRole('form', { name: 'WhatsApp' })
      await wa.getByLabel('Base URL').fill(`http://127.0.0.1:${graph.address().port}`)
      await wa.getByRole('button', { name: 'Save WhatsApp settings' }).click()
      await wa.getByText('Saved.').waitFor()

      const api = `/admin/v1/customers/${bot.cid}/bots/${waBot}`
      const template = { name: 'order_update', language: { code: 'en' } }
      await srv.admin('POST', `${api}/flows`, {
        key: 'notify',
        start: 'one',
        nodes: [
          { id: 'one', type: 'message', template, next: 'two' },
          { id: 'two', type: 'message', template, next: 'done' },
          { id: 'done', type: 'end' },
        ],
      })
      const run = await srv.admin('POST', `${api}/flows/notify/trigger?wait=true`, { 'user.phone_no': phone })
      assert.equal(run.status, 'failed', JSON.stringify(run))

      // Meta reports the first message read.
      const body = JSON.stringify({
        object: 'whatsapp_business_account',
        entry: [
          {
            id: 'waba',
            changes: [
              {
                field: 'messages',
                value: {
                  messaging_product: 'whatsapp',
                  metadata: { display_phone_number: '15550001234', phone_number_id: '1065559999' },
                  statuses: [{ id: 'wamid.first', status: 'read', timestamp: String(Math.floor(Date.now() / 1000)), recipient_id: phone }],
                },
              },
            ],
          },
        ],
      })
      const sig = createHmac('sha256', 'app-secret-value-123').update(body).digest('hex')
      const hook = await fetch(`${srv.base}/webhooks/whatsapp/${waBot}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Hub-Signature-256': `sha256=${sig}` },
        body,
      })
      assert.equal(hook.status, 200, await hook.text())

      await page.goto(`${srv.base}/console/customers/${bot.cid}/bots/${waBot}/users/${phone}`)
      const transcript = page.getByRole('list', { name: 'Conversation' })
      await transcript.locator('[data-status="read"]').waitFor()
      await transcript.locator('[data-status="failed"]').getByText(/allowed list/).waitFor()
      await inspect(page, 'user-whatsapp')
    } finally {
      graph.close()
    }
    b.check()
  })
})
