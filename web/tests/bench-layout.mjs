// Benchmark: opens the flow builder on a 300-node flow that has no layout, so that it is
// laid out automatically (elkjs) in headless Chromium, and prints how long that took.
//
//   cd web && PARLEY_BIN=/path/to/parley node tests/bench-layout.mjs [nodes] [rounds]
//
// "layout" is elkjs alone, measured in the page; "open" is from navigating to the
// builder's URL until the laid-out canvas shows its nodes (the page's code, the API
// calls, the layout and the first render).

import { openBrowser, seedBot, signIn, startParley } from './harness.mjs'

const count = Number(process.argv[2] ?? 300)
const rounds = Number(process.argv[3] ?? 5)

/** A valid flow of n nodes: a binary tree of decisions, messages on single children, ends at the leaves. */
function bigFlow(n) {
  const nodes = []
  for (let i = 0; i < n; i++) {
    const kids = [2 * i + 1, 2 * i + 2].filter((k) => k < n)
    if (kids.length === 2) {
      nodes.push({
        id: `n${i}`,
        type: 'decision',
        branches: [{ when: { attribute: 'x', op: 'eq', value: String(i) }, next: `n${kids[0]}` }],
        else: `n${kids[1]}`,
      })
    } else if (kids.length === 1) {
      nodes.push({ id: `n${i}`, type: 'message', text: `Step ${i}: {{x}}`, next: `n${kids[0]}` })
    } else if (i % 2 === 0) {
      nodes.push({ id: `n${i}`, type: 'end' })
    } else {
      nodes.push({ id: `n${i}`, type: 'message', text: `Leaf ${i}` })
    }
  }
  return { key: 'big', name: `Big flow (${n} nodes)`, start: 'n0', nodes }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const srv = await startParley()
let b
try {
  const bot = await seedBot(srv, 'Bench', 'bench bot')
  await srv.admin('POST', `/admin/v1/customers/${bot.cid}/bots/${bot.botKey}/flows`, bigFlow(count))
  b = await openBrowser()
  b.allow(400, /^\/admin\/v1\/flows\/validate$/)
  await signIn(b.page, srv.base, { token: srv.token })
  const url = `${srv.base}${bot.base}/flows/big/builder`
  const layout = []
  const open = []
  for (let r = 0; r < rounds + 1; r++) {
    await b.page.goto(`${srv.base}${bot.base}/flows`)
    await b.page.getByRole('heading', { name: 'Flows' }).waitFor()
    const t0 = Date.now()
    await b.page.goto(url)
    const canvas = b.page.locator('[data-testid="canvas"][data-layout-ms]')
    await canvas.waitFor({ timeout: 60_000 })
    await b.page.locator('.react-flow__node[data-id="n0"]').waitFor({ timeout: 60_000 })
    await b.page.locator(`.react-flow__node[data-id="n${count - 1}"]`).waitFor({ timeout: 60_000 })
    const t1 = Date.now()
    const ms = Number(await canvas.getAttribute('data-layout-ms'))
    if (r === 0) continue // the first round warms the browser's caches
    layout.push(ms)
    open.push(t1 - t0)
  }
  b.check()
  if (process.env.BENCH_SCREENSHOT) await b.page.screenshot({ path: process.env.BENCH_SCREENSHOT })
  console.log(`flow builder, ${count} nodes without layout, ${rounds} rounds (median / max):`)
  console.log(`  elkjs auto-layout: ${median(layout)} ms / ${Math.max(...layout)} ms`)
  console.log(`  open (navigate until laid out and drawn): ${median(open)} ms / ${Math.max(...open)} ms`)
} finally {
  await b?.close()
  await srv.stop()
}
