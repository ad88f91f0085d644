import { useEffect, useRef, useState, type ReactNode } from 'react'
import type { Principal } from './api'
import { BotSection, botPages } from './pages/BotSection'
import { Accounts } from './pages/Accounts'
import { CustomerPage } from './pages/CustomerPage'
import { Customers } from './pages/Customers'
import { SignIn } from './pages/SignIn'
import { Link, match, navigate, useLocation } from './router'
import { useSession } from './session'

export function App() {
  const { state } = useSession()
  if (state.kind === 'checking') {
    return (
      <p className="muted center" role="status" aria-busy="true">
        Loading…
      </p>
    )
  }
  if (state.kind === 'signed-out') return <SignIn expired={state.expired} error={state.error} />
  return <Shell user={state.user} />
}

/** Where a principal starts: operators at the customers, customer users at their bots. */
function home(user: Principal): string {
  return user.role === 'operator' || user.customer_id === null ? '/customers' : `/customers/${user.customer_id}`
}

function Shell({ user }: { user: Principal }) {
  const { path } = useLocation()
  const { signOut } = useSession()
  const [signOutError, setSignOutError] = useState('')
  const operator = user.role === 'operator'

  useEffect(() => {
    if (path === '/') navigate(home(user), true)
  }, [path, user])

  // A new page takes the focus to its content, as a page load would for a screen reader
  // or the Tab key; the first page keeps the browser's own start.
  const mainRef = useRef<HTMLElement>(null)
  const shown = useRef(false)
  useEffect(() => {
    if (shown.current) mainRef.current?.focus({ preventScroll: true })
    shown.current = true
  }, [path])

  const page = route(path, operator)
  const bot = botMatch(path)

  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <Link to={home(user)} className="brand">
          Parley console
        </Link>
        <div className="who">
          <span data-testid="whoami">
            {user.email || 'admin token'} · {operator ? 'operator' : `customer ${user.customer_id}`}
          </span>
          <button
            type="button"
            className="small"
            onClick={() => signOut().catch(() => setSignOutError('Signing out failed; try again.'))}
          >
            Sign out
          </button>
          {signOutError && <span role="alert">{signOutError}</span>}
        </div>
      </header>
      <div className="body">
        <nav className="side" aria-label="Console">
          <ul>
            {operator ? (
              <>
                <NavItem to="/customers" path={path} exact>
                  Customers
                </NavItem>
                <NavItem to="/accounts" path={path}>
                  Accounts
                </NavItem>
              </>
            ) : (
              <NavItem to={home(user)} path={path} exact>
                Bots
              </NavItem>
            )}
          </ul>
          {bot && (
            <ul aria-label="Bot">
              {botPages.map((p) => (
                  <NavItem key={p.slug} to={`/customers/${bot.cid}/bots/${encodeURIComponent(bot.bot ?? '')}/${p.slug}`} path={path}>
                    {p.title}
                  </NavItem>
                ))}
            </ul>
          )}
        </nav>
        <main id="main" tabIndex={-1} ref={mainRef}>
          {page}
        </main>
      </div>
    </div>
  )
}

/** The customer and bot of a path inside a bot's section. */
function botMatch(path: string): Record<string, string> | null {
  const m = /^\/customers\/(\d+)\/bots\/([^/]+)(\/|$)/.exec(path)
  if (!m) return null
  return { cid: m[1] ?? '', bot: decodeURIComponent(m[2] ?? '') }
}

function NavItem({ to, path, exact, children }: { to: string; path: string; exact?: boolean; children: ReactNode }) {
  const current = exact ? path === to : path === to || path.startsWith(to + '/')
  return (
    <li>
      <Link to={to} aria-current={current ? 'page' : undefined}>
        {children}
      </Link>
    </li>
  )
}

function route(path: string, operator: boolean): ReactNode {
  if (path === '/') return null
  if (path === '/customers' || path === '/accounts') {
    if (!operator) return <NotFound message="Only operators can open this page." />
    return path === '/customers' ? <Customers /> : <Accounts />
  }
  const c = match('/customers/:cid', path)
  if (c) return <CustomerPage cid={Number(c.cid)} />
  const b = botMatch(path)
  if (b) {
    const rest = path.replace(/^\/customers\/\d+\/bots\/[^/]+/, '') || '/'
    return <BotSection cid={Number(b.cid)} botKey={b.bot ?? ''} rest={rest} />
  }
  return <NotFound message="There is no page here." />
}

function NotFound({ message }: { message: string }) {
  return (
    <section>
      <h1>Not found</h1>
      <p>{message}</p>
    </section>
  )
}
