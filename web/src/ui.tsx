// Small building blocks shared by the pages: loading state, copy buttons, errors, times.

import { useCallback, useEffect, useId, useRef, useState, type ReactNode } from 'react'
import { ApiError } from './api'

export type Load<T> =
  | { kind: 'loading' }
  | { kind: 'error'; error: ApiError }
  | { kind: 'ok'; data: T }

export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e
  return new ApiError(0, { code: 0, desc: 'ERROR', details: e instanceof Error ? e.message : String(e) })
}

/**
 * Loads data when deps change, dropping answers to superseded requests. reload loads
 * again; set replaces the data (after a change the page made itself).
 */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[]) {
  const [state, setState] = useState<Load<T>>({ kind: 'loading' })
  const seq = useRef(0)
  // fn is rebuilt each render; deps say when it means something new.
  const run = useCallback(fn, deps)
  const reload = useCallback(
    (quiet = false) => {
      const n = ++seq.current
      if (!quiet) setState({ kind: 'loading' })
      run().then(
        (data) => n === seq.current && setState({ kind: 'ok', data }),
        (e: unknown) => n === seq.current && setState({ kind: 'error', error: toApiError(e) }),
      )
    },
    [run],
  )
  useEffect(() => {
    reload()
    return () => {
      seq.current++
    }
  }, [reload])
  const set = useCallback((data: T) => setState({ kind: 'ok', data }), [])
  return { state, reload, set }
}

/** Shows a load's loading and error states, else its content. */
export function Loaded<T>({
  state,
  what,
  retry,
  children,
}: {
  state: Load<T>
  what: string
  retry: () => void
  children: (data: T) => ReactNode
}) {
  if (state.kind === 'loading') {
    return (
      <p className="muted" role="status" aria-busy="true">
        Loading {what}…
      </p>
    )
  }
  if (state.kind === 'error') {
    return (
      <div className="alert error" role="alert">
        <p>
          Could not load {what}: {describe(state.error)}
        </p>
        {/* Asking again does not change a refusal or an absence. */}
        {state.error.status !== 403 && state.error.status !== 404 && (
          <button type="button" onClick={() => retry()}>
            Retry
          </button>
        )}
      </div>
    )
  }
  return <>{children(state.data)}</>
}

/** Calls fn every ms while active and the page is visible (live views poll this way). */
export function useInterval(fn: () => void, ms: number, active: boolean): void {
  const latest = useRef(fn)
  useEffect(() => {
    latest.current = fn
  })
  useEffect(() => {
    if (!active) return
    const t = window.setInterval(() => {
      if (!document.hidden) latest.current()
    }, ms)
    return () => window.clearInterval(t)
  }, [ms, active])
}

/** Names the page in the window title (and so in tabs, history and screen readers). */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · Parley console` : 'Parley console'
  }, [title])
}

/** A list's empty state. */
export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>
}

/** An error as a sentence for people. */
function describe(e: ApiError): string {
  if (e.status === 429 && e.retryAfter) return `${e.message} Try again in ${e.retryAfter} s.`
  return e.message
}

export function ErrorNote({ error }: { error: ApiError | null }) {
  if (!error) return null
  return (
    <div className="alert error" role="alert">
      {describe(error)}
      {error.problems.length > 0 && (
        <ul>
          {error.problems.map((p, i) => (
            <li key={i}>
              <code>{p.node || '(flow)'}</code>: {p.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  )
}

/** Runs an action, tracking whether it is busy and how it failed. */
export function useAction() {
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<ApiError | null>(null)
  const run = useCallback(async (fn: () => Promise<void>) => {
    setBusy(true)
    setError(null)
    try {
      await fn()
    } catch (e) {
      setError(toApiError(e))
    } finally {
      setBusy(false)
    }
  }, [])
  return { busy, error, run, setError }
}

async function copyText(text: string): Promise<void> {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text)
    return
  }
  // Plain http on another host: the Clipboard API is not available there.
  const ta = document.createElement('textarea')
  ta.value = text
  ta.setAttribute('readonly', '')
  ta.className = 'offscreen'
  document.body.appendChild(ta)
  ta.select()
  const ok = document.execCommand('copy')
  ta.remove()
  if (!ok) throw new Error('copy refused')
}

/** A button that copies text, saying "Copied" for a moment. */
export function CopyButton({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState<'' | 'Copied' | 'Copy failed'>('')
  useEffect(() => {
    if (!done) return
    const t = window.setTimeout(() => setDone(''), 1500)
    return () => window.clearTimeout(t)
  }, [done])
  return (
    <button
      type="button"
      className="small"
      aria-label={`Copy ${label}`}
      onClick={() =>
        copyText(text).then(
          () => setDone('Copied'),
          () => setDone('Copy failed'),
        )
      }
    >
      {done || 'Copy'}
    </button>
  )
}

/** A value shown in full with a copy button. */
export function CopyField({ label, value }: { label: string; value: string }) {
  const id = useId()
  return (
    <div className="copy-field">
      <span className="label" id={id}>
        {label}
      </span>
      <code aria-labelledby={id} data-testid={`copy-${label}`}>
        {value}
      </code>
      <CopyButton text={value} label={label} />
    </div>
  )
}

const timeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' })
const clockFmt = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' })
const shortFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'short' })

/** An instant in the browser's time zone; short: the time of day alone when it is today. */
export function Time({ at, short }: { at: string | number | undefined | null; short?: boolean }) {
  if (at === undefined || at === null || at === '') return <span className="muted">—</span>
  const d = new Date(at)
  if (Number.isNaN(d.getTime())) return <span>{String(at)}</span>
  const text = !short ? timeFmt.format(d) : d.toDateString() === new Date().toDateString() ? clockFmt.format(d) : shortFmt.format(d)
  return (
    <time dateTime={d.toISOString()} title={short ? timeFmt.format(d) : undefined}>
      {text}
    </time>
  )
}

/** A run or message status as a coloured badge. */
export function Badge({ value }: { value: string }) {
  return <span className={`badge b-${value.toLowerCase()}`}>{value}</span>
}

/** Offers text as a file download. */
export function download(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }))
  const a = document.createElement('a')
  a.href = url
  a.download = name
  document.body.appendChild(a)
  a.click()
  a.remove()
  window.setTimeout(() => URL.revokeObjectURL(url), 1000)
}

/** A datetime-local input's value ("2024-03-10T12:34") as an instant, or undefined. */
export function localToDate(v: string): Date | undefined {
  if (!v) return undefined
  const d = new Date(v)
  return Number.isNaN(d.getTime()) ? undefined : d
}

/** Key/value rows (attributes) with add and remove. */
export function PairsEditor({
  pairs,
  onChange,
  legend,
}: {
  pairs: [string, string][]
  onChange: (p: [string, string][]) => void
  legend: string
}) {
  const set = (i: number, j: 0 | 1, v: string) =>
    onChange(pairs.map((p, k) => (k === i ? ((j === 0 ? [v, p[1]] : [p[0], v]) as [string, string]) : p)))
  return (
    <fieldset className="pairs">
      <legend>{legend}</legend>
      {pairs.map(([k, v], i) => (
        <div className="pair" key={i}>
          <input aria-label={`${legend} ${i + 1} name`} placeholder="name" value={k} onChange={(e) => set(i, 0, e.target.value)} />
          <input aria-label={`${legend} ${i + 1} value`} placeholder="value" value={v} onChange={(e) => set(i, 1, e.target.value)} />
          <button type="button" className="small" aria-label={`Remove ${legend.toLowerCase()} ${i + 1}`} onClick={() => onChange(pairs.filter((_, k) => k !== i))}>
            Remove
          </button>
        </div>
      ))}
      <button type="button" className="small" onClick={() => onChange([...pairs, ['', '']])}>
        Add {legend.toLowerCase().replace(/s$/, '')}
      </button>
    </fieldset>
  )
}

/** Non-empty pairs as an object. */
export function pairsObject(pairs: [string, string][]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of pairs) if (k.trim()) out[k.trim()] = v
  return out
}

/**
 * A button for an action that cannot be undone: the first press asks, in place, for a
 * second one.
 */
export function ConfirmButton({
  label,
  question,
  onConfirm,
  disabled,
}: {
  label: string
  question: string
  onConfirm: () => void
  disabled?: boolean
}) {
  const [asking, setAsking] = useState(false)
  if (!asking) {
    return (
      <button type="button" className="small danger" disabled={disabled} onClick={() => setAsking(true)}>
        {label}
      </button>
    )
  }
  return (
    <span className="confirm" role="group" aria-label={question}>
      <span>{question}</span>
      <button
        type="button"
        className="small danger"
        autoFocus
        onClick={() => {
          setAsking(false)
          onConfirm()
        }}
      >
        Yes, {label.toLowerCase()}
      </button>
      <button type="button" className="small" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  )
}
