// A small router over the History API: the console lives under /console/, and every
// page has its own URL so that it can be linked, reloaded and opened in a new tab.

import { useEffect, useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent } from 'react'

const BASE = '/console'

const listeners = new Set<() => void>()

function subscribe(fn: () => void): () => void {
  listeners.add(fn)
  return () => {
    listeners.delete(fn)
  }
}

function snapshot(): string {
  return window.location.pathname + window.location.search
}

function notify(): void {
  for (const fn of listeners) fn()
}

/** Checks asked before the page changes; one that answers false keeps the user here. */
const leaveChecks = new Set<() => boolean>()

function mayLeave(): boolean {
  for (const check of leaveChecks) if (!check()) return false
  return true
}

// The location the page shows: Back or Forward that a leave check refused puts it back.
let shown = snapshot()
window.addEventListener('popstate', () => {
  if (snapshot() !== shown && !mayLeave()) {
    window.history.pushState(null, '', shown)
    return
  }
  shown = snapshot()
  notify()
})

/**
 * While active, leaving the page asks first: a link or Back with message, closing or
 * reloading the tab with the browser's own question. For work the page has not saved.
 */
export function useLeaveGuard(active: boolean, message: string): void {
  useEffect(() => {
    if (!active) return
    const check = () => window.confirm(message)
    const onBeforeUnload = (e: BeforeUnloadEvent) => e.preventDefault()
    leaveChecks.add(check)
    window.addEventListener('beforeunload', onBeforeUnload)
    return () => {
      leaveChecks.delete(check)
      window.removeEventListener('beforeunload', onBeforeUnload)
    }
  }, [active, message])
}

/** The current location inside the console: path without the base, and the query. */
export function useLocation(): { path: string; query: URLSearchParams } {
  const loc = useSyncExternalStore(subscribe, snapshot)
  const [p = '', q = ''] = loc.split('?')
  const path = p.startsWith(BASE) ? p.slice(BASE.length) || '/' : p
  return { path, query: new URLSearchParams(q) }
}

/** Goes to a console path ("/customers"), adding a history entry unless replace. */
export function navigate(to: string, replace = false): void {
  const url = BASE + to
  if (url === snapshot() || !mayLeave()) return
  if (replace) window.history.replaceState(null, '', url)
  else window.history.pushState(null, '', url)
  shown = snapshot()
  window.scrollTo(0, 0)
  notify()
}

/**
 * Matches a path against a pattern such as "/customers/:cid/bots/:bot"; the parameters
 * come back decoded, or null when the path does not match.
 */
export function match(pattern: string, path: string): Record<string, string> | null {
  const ps = pattern.split('/').filter(Boolean)
  const xs = path.split('/').filter(Boolean)
  if (ps.length !== xs.length) return null
  const out: Record<string, string> = {}
  for (let i = 0; i < ps.length; i++) {
    const p = ps[i] as string
    const x = xs[i] as string
    if (p.startsWith(':')) {
      try {
        out[p.slice(1)] = decodeURIComponent(x)
      } catch {
        return null
      }
    } else if (p !== x) {
      return null
    }
  }
  return out
}

type LinkProps = Omit<AnchorHTMLAttributes<HTMLAnchorElement>, 'href'> & { to: string }

/** A link to a console path that navigates without reloading the page. */
export function Link({ to, onClick, ...rest }: LinkProps) {
  const go = (e: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(e)
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return
    e.preventDefault()
    navigate(to)
  }
  return <a href={BASE + to} onClick={go} {...rest} />
}
