import type { Run } from '../api'
import type { BotCtx } from '../bot'
import { Link } from '../router'
import { Badge, Empty, Time } from '../ui'
import { Transcript } from './Transcript'

/** Milliseconds between two instants, for a step's offset from the run's start. */
function offset(start: number, at: number): string {
  const d = at - start
  return d < 1000 ? `+${d} ms` : `+${(d / 1000).toFixed(2)} s`
}

/** A run's step-by-step trace, the HTTP calls linked to their logs, and what it sent. */
export function Trace({ bot, run }: { bot: BotCtx; run: Run }) {
  const start = run.steps[0]?.at_ms ?? new Date(run.created_at).getTime()
  const flow = `${bot.base}/flows/${encodeURIComponent(run.flow_key)}`
  return (
    <div className="trace" data-testid="trace">
      <dl className="facts">
        <dt>Run</dt>
        <dd>
          <Link to={`${bot.base}/runs/${encodeURIComponent(run.run_id)}`}>
            <code>{run.run_id}</code>
          </Link>
        </dd>
        <dt>Status</dt>
        <dd>
          <Badge value={run.status} />
          {run.waiting_for && <span className="muted"> for {run.waiting_for}</span>}
          {run.current_node && <span className="muted"> at {run.current_node}</span>}
        </dd>
        <dt>Flow</dt>
        <dd>
          <Link to={flow}>{run.flow_key}</Link> version {run.flow_version}
        </dd>
        <dt>User</dt>
        <dd>
          <Link to={`${bot.base}/users/${encodeURIComponent(run.channel_user_id)}`}>{run.channel_user_id}</Link> on{' '}
          {run.channel}
        </dd>
        <dt>Started</dt>
        <dd>
          <Time at={run.created_at} />
        </dd>
        {run.error && (
          <>
            <dt>Error</dt>
            <dd className="error-text">{run.error}</dd>
          </>
        )}
      </dl>
      {run.steps.length === 0 ? (
        <Empty>The run has taken no steps yet.</Empty>
      ) : (
        <div className="table-wrap">
          <table>
            <caption>Steps</caption>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Node</th>
                <th scope="col">Type</th>
                <th scope="col">Outcome</th>
                <th scope="col">Time</th>
                <th scope="col">Error</th>
                <th scope="col">HTTP call</th>
              </tr>
            </thead>
            <tbody>
              {run.steps.map((s, i) => (
                <tr key={i} data-testid="step">
                  <td>{i + 1}</td>
                  <td>
                    <code>{s.node}</code>
                  </td>
                  <td>{s.type}</td>
                  <td>{s.outcome}</td>
                  <td title={new Date(s.at_ms).toISOString()}>{offset(start, s.at_ms)}</td>
                  <td className="error-text">{s.error}</td>
                  <td>
                    {s.http_log_id ? (
                      <Link to={`${flow}/nodes/${encodeURIComponent(s.node)}?log=${s.http_log_id}`}>log {s.http_log_id}</Link>
                    ) : s.type === 'http' ? (
                      <Link to={`${flow}/nodes/${encodeURIComponent(s.node)}`}>step</Link>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {run.messages && (
        <>
          <h3>Messages sent</h3>
          {run.messages.length === 0 ? <Empty>The run sent no messages.</Empty> : <Transcript messages={run.messages} />}
        </>
      )}
    </div>
  )
}
