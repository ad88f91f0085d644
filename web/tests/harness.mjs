// Test harness: builds parley once, starts it on a loopback port with a fresh database,
// and drives Debian's Chromium through playwright-core. Every page error, console error
// and unexpected HTTP error answer fails the test that caused it.

import { spawn, execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { chromium } from 'playwright-core'

export const repo = resolve(import.meta.dirname, '../..')
export const artifacts = join(repo, '.ci', 'artifacts', 'console')

const work = mkdtempSync(join(tmpdir(), 'parley-console-'))
let binary = ''
const running = new Set()
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL')
  rmSync(work, { recursive: true, force: true })
})

/** The parley binary: PARLEY_BIN, or cmd/parley built once per test process. */
function build() {
  if (!binary && process.env.PARLEY_BIN) binary = process.env.PARLEY_BIN
  if (!binary) {
    binary = join(work, 'parley')
    execFileSync('go', ['build', '-o', binary, './cmd/parley'], { cwd: repo, stdio: 'inherit' })
  }
  return binary
}

/**
 * Starts `parley serve` on 127.0.0.1 with a new SQLite database. Returns its base URL,
 * the admin token, an admin-API helper and stop().
 */
export async function startParley({ httpAllow } = {}) {
  const bin = build()
  const dir = mkdtempSync(join(work, 'srv-'))
  const token = randomBytes(18).toString('hex')
  const args = ['serve', '--db', join(dir, 'p.db'), '--addr', '127.0.0.1:0', '--admin-token', token]
  if (httpAllow) args.push('--http-allow', httpAllow)
  const proc = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  running.add(proc)
  proc.on('exit', () => running.delete(proc))
  const lines = []
  const addr = await new Promise((ok, fail) => {
    const rl = createInterface({ input: proc.stderr })
    const timer = setTimeout(() => fail(new Error(`parley did not start:\n${lines.join('\n')}`)), 30_000)
    rl.on('line', (line) => {
      if (lines.length < 200) lines.push(line)
      try {
        const j = JSON.parse(line)
        if (j.msg === 'listening') {
          clearTimeout(timer)
          ok(j.addr)
        }
      } catch {
        // not JSON
      }
    })
    proc.on('exit', (code) => {
      clearTimeout(timer)
      fail(new Error(`parley exited with ${code}:\n${lines.join('\n')}`))
    })
  })
  const base = `http://${addr}`

  /** Calls the admin API with the admin token; returns responseObject, throws on failure. */
  async function admin(method, path, body) {
    const res = await fetch(base + path, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    })
    const text = await res.text()
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`)
    return JSON.parse(text).responseObject
  }

  return {
    base,
    token,
    admin,
    async stop() {
      proc.kill('SIGTERM')
      await new Promise((ok) => (proc.exitCode !== null ? ok() : proc.on('exit', ok)))
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
]

export const desktop = { width: 1280, height: 800 }
export const phone = { width: 390, height: 844 }

/**
 * Opens Chromium with a fresh profile. allow(status, pathRegExp) declares an HTTP error
 * answer the test expects; check() throws on anything else that went wrong in the page.
 */
export async function openBrowser() {
  const profile = mkdtempSync(join(work, 'profile-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    args: chromiumArgs,
    headless: true,
    viewport: desktop,
    acceptDownloads: true,
    permissions: ['clipboard-read', 'clipboard-write'],
  })
  context.setDefaultTimeout(15_000)
  const page = context.pages()[0] ?? (await context.newPage())
  const problems = []
  // The app asks for the session on load; signed out, that is a 401.
  const allowed = [{ status: 401, path: /^\/admin\/v1\/session$/ }]
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
  page.on('console', (m) => {
    // A failed load is reported again as a response, judged below.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource: the server responded with a status of')) {
      problems.push(`console error: ${m.text()}`)
    }
  })
  page.on('response', (r) => {
    const status = r.status()
    if (status < 400) return
    const path = new URL(r.url()).pathname
    if (status < 500 && allowed.some((a) => a.status === status && a.path.test(path))) return
    problems.push(`HTTP ${status} for ${r.request().method()} ${path}`)
  })
  return {
    context,
    page,
    allow(status, path) {
      allowed.push({ status, path })
    },
    check() {
      if (problems.length > 0) {
        const all = problems.splice(0)
        throw new Error(`problems in the page:\n${all.join('\n')}`)
      }
    },
    async close() {
      await context.close()
      rmSync(profile, { recursive: true, force: true })
    },
  }
}

/**
 * Screenshots the current page at desktop and phone size into .ci/artifacts/console/,
 * and checks what every page must do: nothing overflows sideways at phone width, and
 * every control has a name (a label, aria-label or text).
 */
export async function inspect(page, name) {
  mkdirSync(artifacts, { recursive: true })
  await page.setViewportSize(desktop)
  await page.screenshot({ path: join(artifacts, `${name}-1280.png`), fullPage: true })
  await page.setViewportSize(phone)
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
  await page.screenshot({ path: join(artifacts, `${name}-390.png`), fullPage: true })
  await page.setViewportSize(desktop)
  if (overflow > 1) throw new Error(`${name}: the page is ${overflow}px wider than a 390px screen`)
  const unnamed = await page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea, button, a[href]')]
      .filter((el) => {
        if (el.type === 'hidden') return false
        const labelled = el.labels?.length > 0 || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
        return !labelled && !(el.textContent ?? '').trim()
      })
      .map((el) => el.outerHTML.slice(0, 120)),
  )
  if (unnamed.length > 0) throw new Error(`${name}: controls without a name:\n${unnamed.join('\n')}`)
}

/** Signs in through the sign-in form. */
export async function signIn(page, base, creds) {
  await page.goto(`${base}/console/`)
  if (creds.token) {
    await page.getByLabel('Admin token').check()
    await page.getByLabel('Token', { exact: true }).fill(creds.token)
  } else {
    await page.getByLabel('Account').check()
    await page.getByLabel('Email').fill(creds.email)
    await page.getByLabel('Password').fill(creds.password)
  }
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByTestId('whoami').waitFor()
}

/** Creates a customer and a bot through the admin API; returns their ids and first key. */
export async function seedBot(srv, customer, bot) {
  const c = await srv.admin('POST', '/admin/v1/customers', { name: customer })
  const b = await srv.admin('POST', `/admin/v1/customers/${c.customer_id}/bots`, { name: bot })
  return { cid: c.customer_id, botKey: b.bot_key, apiKey: b.api_key, base: `/console/customers/${c.customer_id}/bots/${b.bot_key}` }
}
