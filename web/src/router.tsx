// A small router over the History API: the console lives under /console/, and every
// page has its own URL so that it can be linked, reloaded and opened in a new tab.

import { useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent } from 'react'

const BASE = '/console'

const listeners = new Set<() => void>()

function subscribe(fn: () => void): () => void {
  listeners.add(fn)
  window.addEventListener('popstate', fn)
  return () => {
    listeners.delete(fn)
    window.removeEventListener('popstate', fn)
  }
}

function snapshot(): string {
  return window.location.pathname + window.location.search
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
  if (url === snapshot()) return
  if (replace) window.history.replaceState(null, '', url)
  else window.history.pushState(null, '', url)
  window.scrollTo(0, 0)
  for (const fn of listeners) fn()
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
