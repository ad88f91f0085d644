import { useState, type FormEvent } from 'react'
import { runStatuses, type RunFilter, type RunSummary } from '../api'
import type { BotCtx } from '../bot'
import { Link, navigate, useLocation } from '../router'
import { Badge, Empty, ErrorNote, Loaded, Time, localToDate, useAction, useLoad } from '../ui'

/** datetime-local value of an RFC 3339 instant, in the browser's time zone. */
function toLocal(iso: string | null): string {
  if (!iso) return ''
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return ''
  const local = new Date(d.getTime() - d.getTimezoneOffset() * 60_000)
  return local.toISOString().slice(0, 16)
}

/** The bot's runs, newest first, filtered by flow, status and time (kept in the URL). */
export function Runs({ bot }: { bot: BotCtx }) {
  const { query } = useLocation()
  const filter: RunFilter = {
    flow: query.get('flow') ?? undefined,
    status: query.get('status') ?? undefined,
    since: query.get('since') ?? undefined,
    until: query.get('until') ?? undefined,
  }
  const key = JSON.stringify(filter)
  const flows = useLoad(() => bot.api.flows(), [bot])
  const first = useLoad(() => bot.api.runs(filter), [bot, key])
  const [more, setMore] = useState<{ key: string; runs: RunSummary[]; cursor: string | null } | null>(null)
  const act = useAction()

  const apply = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault()
    const f = new FormData(e.currentTarget)
    const q = new URLSearchParams()
    for (const name of ['flow', 'status']) {
      const v = String(f.get(name) ?? '')
      if (v) q.set(name, v)
    }
    for (const name of ['since', 'until']) {
      const d = localToDate(String(f.get(name) ?? ''))
      if (d) q.set(name, d.toISOString())
    }
    const s = q.toString()
    navigate(`${bot.base}/runs${s ? `?${s}` : ''}`)
  }

  return (
    <section>
      <h1>Runs</h1>
      <form className="filters" onSubmit={apply} key={key}>
        <label>
          Flow
          <select name="flow" defaultValue={filter.flow ?? ''}>
            <option value="">Any flow</option>
            {flows.state.kind === 'ok' &&
              flows.state.data.map((f) => (
                <option key={f.flow_key} value={f.flow_key}>
                  {f.name || f.flow_key}
                </option>
              ))}
            {filter.flow && flows.state.kind !== 'ok' && <option value={filter.flow}>{filter.flow}</option>}
          </select>
        </label>
        <label>
          Status
          <select name="status" defaultValue={filter.status ?? ''}>
            <option value="">Any status</option>
            {runStatuses.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          From
          <input type="datetime-local" name="since" defaultValue={toLocal(filter.since ?? null)} />
        </label>
        <label>
          To
          <input type="datetime-local" name="until" defaultValue={toLocal(filter.until ?? null)} />
        </label>
        <button type="submit">Filter</button>
      </form>
      <Loaded state={first.state} what="runs" retry={first.reload}>
        {(page) => {
          const extra = more && more.key === key ? more : null
          const runs = extra ? [...page.items, ...extra.runs] : page.items
          const cursor = extra ? extra.cursor : page.next_cursor
          const loadMore = () =>
            act.run(async () => {
              if (!cursor) return
              const next = await bot.api.runs({ ...filter, cursor })
              setMore({ key, runs: [...(extra?.runs ?? []), ...next.items], cursor: next.next_cursor })
            })
          return runs.length === 0 ? (
            <Empty>No runs match. Trigger a flow, or widen the filter.</Empty>
          ) : (
            <>
              <RunTable bot={bot} runs={runs} />
              {cursor && (
                <button type="button" onClick={() => void loadMore()} disabled={act.busy}>
                  Load more
                </button>
              )}
              <ErrorNote error={act.error} />
            </>
          )
        }}
      </Loaded>
    </section>
  )
}

function RunTable({ bot, runs }: { bot: BotCtx; runs: RunSummary[] }) {
  return (
    <div className="table-wrap">
      <table>
        <thead>
          <tr>
            <th scope="col">Run</th>
            <th scope="col">Flow</th>
            <th scope="col">Status</th>
            <th scope="col">User</th>
            <th scope="col">Started</th>
            <th scope="col">Error</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((r) => (
            <tr key={r.run_id} data-testid="run-row">
              <td>
                <Link to={`${bot.base}/runs/${encodeURIComponent(r.run_id)}`}>
                  <code>{r.run_id.slice(0, 12)}</code>
                </Link>
              </td>
              <td>
                {r.flow_key} <span className="muted">v{r.flow_version}</span>
              </td>
              <td>
                <Badge value={r.status} />
              </td>
              <td>{r.channel_user_id}</td>
              <td>
                <Time at={r.created_at} />
              </td>
              <td className="error-text">{r.error}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}
