import { useState, type FormEvent } from 'react'
import type { FlowSummary, HttpLogSummary, HttpNode, HttpRequest, HttpResponse, HttpStepState, HttpTestResult } from '../api'
import type { BotCtx } from '../bot'
import { JsonTree } from '../components/JsonTree'
import { Link, navigate, useLocation } from '../router'
import {
  Badge,
  ConfirmButton,
  Empty,
  ErrorNote,
  Loaded,
  PairsEditor,
  Time,
  pairsObject,
  useAction,
  useLoad,
} from '../ui'
import { parseFlow } from './FlowPage'

const attributePattern = /^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$/

/** The {{names}} a node's request uses, for the Test form. */
export function templateNames(n: HttpNode): string[] {
  const texts = [n.url, ...Object.values(n.headers ?? {}), n.body?.content ?? '', ...Object.values(n.body?.fields ?? {})]
  const names = new Set<string>()
  for (const t of texts) for (const m of t.matchAll(/\{\{\s*([^{}\s]+)\s*\}\}/g)) if (m[1]) names.add(m[1])
  return [...names]
}

/**
 * Writes a change of the node's save map as a new version of the flow: the document is
 * edited as stored, everything else kept, and imported like any other.
 */
async function changeSave(
  bot: BotCtx,
  flowKey: string,
  text: string,
  nodeId: string,
  change: (save: Record<string, string>) => Record<string, string>,
): Promise<FlowSummary> {
  const doc = parseFlow(text)
  const node = doc.nodes.find((n): n is HttpNode => n.id === nodeId && n.type === 'http')
  if (!node) throw new Error(`the flow has no http node ${nodeId}`)
  const save = change({ ...(node.save ?? {}) })
  if (Object.keys(save).length > 0) node.save = save
  else delete node.save
  doc.key = flowKey
  return bot.api.importFlow(JSON.stringify(doc, null, 2))
}

/** An HTTP step: Test, response mapping, logs, structure flag and alert mail. */
export function HttpStepPage({ bot, flowKey, nodeId }: { bot: BotCtx; flowKey: string; nodeId: string }) {
  const flow = useLoad(async () => {
    const { text, version } = await bot.api.exportFlow(flowKey)
    const node = parseFlow(text).nodes.find((n): n is HttpNode => n.id === nodeId && n.type === 'http')
    return { text, version, node }
  }, [bot, flowKey, nodeId])
  const state = useLoad(() => bot.api.httpStep(flowKey, nodeId), [bot, flowKey, nodeId])
  const logs = useLoad(() => bot.api.httpLogs(flowKey, nodeId), [bot, flowKey, nodeId])
  const refresh = () => {
    state.reload(true)
    logs.reload(true)
  }

  return (
    <section>
      <nav aria-label="Flow" className="crumbs">
        <Link to={`${bot.base}/flows/${encodeURIComponent(flowKey)}`}>Flow {flowKey}</Link> › HTTP step
      </nav>
      <Loaded state={flow.state} what="the flow" retry={flow.reload}>
        {({ text, version, node }) =>
          !node ? (
            <p className="alert error" role="alert">
              Version {version} of this flow has no http node <code>{nodeId}</code>.
            </p>
          ) : (
            <>
              <h1>{node.name || node.id}</h1>
              <p>
                <code>
                  {node.method} {node.url}
                </code>{' '}
                <span className="muted">flow version {version}</span>
              </p>
              <Loaded state={state.state} what="the step's state" retry={state.reload}>
                {(st) => <StepState bot={bot} flowKey={flowKey} nodeId={nodeId} state={st} onChange={state.set} />}
              </Loaded>
              <Mapping
                node={node}
                onRemove={(attr) =>
                  changeSave(bot, flowKey, text, nodeId, (s) => {
                    delete s[attr]
                    return s
                  }).then(() => flow.reload(true))
                }
              />
              <TestStep
                bot={bot}
                flowKey={flowKey}
                node={node}
                onTested={refresh}
                onMap={(attr, path) =>
                  changeSave(bot, flowKey, text, nodeId, (s) => ({ ...s, [attr]: path })).then((f) => {
                    flow.reload(true)
                    return `Mapped ${path} to ${attr}: the flow is now at version ${f.version}.`
                  })
                }
              />
            </>
          )
        }
      </Loaded>
      <h2>Logs</h2>
      <Loaded state={logs.state} what="logs" retry={logs.reload}>
        {(l) => <Logs bot={bot} flowKey={flowKey} nodeId={nodeId} logs={l.logs} />}
      </Loaded>
    </section>
  )
}

export function StepState({
  bot,
  flowKey,
  nodeId,
  state,
  onChange,
}: {
  bot: BotCtx
  flowKey: string
  nodeId: string
  state: HttpStepState
  onChange: (s: HttpStepState) => void
}) {
  const act = useAction()
  const [said, setSaid] = useState('')
  const apply = (fn: () => Promise<HttpStepState>, done: string) =>
    act.run(async () => {
      onChange(await fn())
      setSaid(done)
    })
  return (
    <div className="card">
      <p>
        {state.calls} call{state.calls === 1 ? '' : 's'}
        {state.last_call_at && (
          <>
            , the last <Time at={state.last_call_at} />
          </>
        )}
        .
      </p>
      {state.structure_changed ? (
        <div className="alert warn" role="alert" data-testid="structure-changed">
          <p>
            <strong>{state.message || 'JSON Structure Change Detected'}</strong>: the latest response has another structure
            than the one mapped. Remap to accept it.
          </p>
          <details>
            <summary>Structures</summary>
            <div className="shapes">
              <div>
                <h4>Mapped</h4>
                <pre className="code">{state.shape.join('\n')}</pre>
              </div>
              <div>
                <h4>Latest</h4>
                <pre className="code">{(state.changed_shape ?? []).join('\n')}</pre>
              </div>
            </div>
          </details>
          <button type="button" disabled={act.busy} onClick={() => void apply(() => bot.api.remap(flowKey, nodeId), 'Remapped.')}>
            Remap
          </button>
        </div>
      ) : (
        state.shape.length > 0 && <p className="muted">Response structure recorded; no change detected.</p>
      )}
      <p>
        Alert mail to {state.alert_emails.length > 0 ? state.alert_emails.join(', ') : <span className="muted">nobody</span>}
        {state.last_alert_at && (
          <>
            ; last sent <Time at={state.last_alert_at} />
          </>
        )}
        {state.next_alert_at && (
          <>
            ; no other before <Time at={state.next_alert_at} />
          </>
        )}
        .{' '}
        <button
          type="button"
          className="small"
          disabled={act.busy}
          onClick={() => void apply(() => bot.api.resetMailTimeout(flowKey, nodeId), 'Mail timeout reset: the next failure sends a mail.')}
        >
          Reset Mail Timeout
        </button>
      </p>
      {said && <p role="status">{said}</p>}
      <ErrorNote error={act.error} />
    </div>
  )
}

export function Mapping({ node, onRemove, note = 'This makes a new flow version.' }: { node: HttpNode; onRemove: (attr: string) => Promise<void>; note?: string }) {
  const act = useAction()
  const entries = Object.entries(node.save ?? {})
  return (
    <>
      <h2>Response mapping</h2>
      {entries.length === 0 ? (
        <Empty>Nothing mapped yet: run a Test and click a value of the response.</Empty>
      ) : (
        <div className="table-wrap">
          <table data-testid="mapping">
            <thead>
              <tr>
                <th scope="col">Attribute</th>
                <th scope="col">Response path</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {entries.map(([attr, path]) => (
                <tr key={attr}>
                  <td>
                    <code>{attr}</code>
                  </td>
                  <td>
                    <code>{path}</code>
                  </td>
                  <td>
                    <ConfirmButton
                      label="Remove"
                      question={`Stop saving ${attr}? ${note}`}
                      disabled={act.busy}
                      onConfirm={() => void act.run(() => onRemove(attr))}
                    />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <ErrorNote error={act.error} />
    </>
  )
}

/** The Test form: a call of the published node, or, with draft, of node as the builder has it. */
export function TestStep({
  bot,
  flowKey,
  node,
  draft = false,
  onTested,
  onMap,
  initial = {},
}: {
  bot: BotCtx
  flowKey: string
  node: HttpNode
  draft?: boolean
  initial?: Record<string, string>
  onTested?: () => void
  onMap: (attr: string, path: string) => Promise<string>
}) {
  const [attrs, setAttrs] = useState<[string, string][]>(() => {
    const names = templateNames(node)
    return names.length > 0 ? names.map((n) => [n, initial[n] ?? '']) : [['', '']]
  })
  const [result, setResult] = useState<HttpTestResult | null>(null)
  const [pick, setPick] = useState<{ path: string; value: string; attr: string } | null>(null)
  const [mapped, setMapped] = useState('')
  const act = useAction()
  const mapAct = useAction()

  const submit = (e: FormEvent) => {
    e.preventDefault()
    setPick(null)
    void act.run(async () => {
      setResult(await bot.api.testHttpStep(flowKey, node.id, pairsObject(attrs), draft ? node : undefined))
      onTested?.()
    })
  }

  const choose = (path: string, value: string) => {
    const last = path.split('.').filter((s) => !/^\d+$/.test(s)).pop() ?? path
    setMapped('')
    setPick({ path, value, attr: last.replace(/[^A-Za-z0-9_.-]/g, '_') })
  }

  const map = (e: FormEvent) => {
    e.preventDefault()
    if (!pick) return
    void mapAct.run(async () => {
      setMapped(await onMap(pick.attr, pick.path))
      setPick(null)
    })
  }

  let json: unknown = undefined
  if (result?.leaves && result.response.body) {
    try {
      json = JSON.parse(result.response.body)
    } catch {
      json = undefined
    }
  }

  return (
    <>
      <form className="inline-form wide" onSubmit={submit} aria-labelledby="test-title">
        <h2 id="test-title">Test</h2>
        <p className="muted">
          {draft
            ? 'One real call of the node as it is here, with these attributes. It counts against the rate limit and is not logged.'
            : 'One real call with these attributes. It counts against the rate limit and is logged.'}
        </p>
        <PairsEditor legend="Sample attributes" pairs={attrs} onChange={setAttrs} />
        <button type="submit" className="primary" disabled={act.busy}>
          {act.busy ? 'Calling…' : 'Test'}
        </button>
        <ErrorNote error={act.error} />
      </form>
      {mapped && (
        <p className="alert success" role="status">
          {mapped}
        </p>
      )}
      {result && (
        <div className="card" data-testid="test-result">
          <p>
            <Badge value={result.failed ? 'failed' : 'ok'} /> {result.response.status_text || 'no response'} in{' '}
            {result.duration_ms.toFixed(1)} ms
            {result.error && <span className="error-text"> · {result.error}</span>}
          </p>
          {result.message && (
            <p className="alert warn" role="alert">
              {result.message}
            </p>
          )}
          <Exchange request={result.request} response={result.response} open={json === undefined} />
          {Object.keys(result.attributes).length > 0 && (
            <p>
              Save would set:{' '}
              {Object.entries(result.attributes).map(([k, v]) => (
                <span key={k} className="pill">
                  {k} = {v}
                </span>
              ))}
            </p>
          )}
          {json !== undefined && (
            <>
              <h3>Response: click a value to map it to an attribute</h3>
              <JsonTree value={json} pickable={new Set(Object.keys(result.leaves ?? {}))} onPick={choose} />
            </>
          )}
          {pick && (
            <form className="inline-form" onSubmit={map} aria-label="Map a response value">
              <p>
                Save <code>{pick.path}</code> (now <code>{pick.value}</code>) as the attribute
              </p>
              <label>
                Attribute name
                <input
                  autoFocus
                  required
                  pattern={attributePattern.source}
                  value={pick.attr}
                  onChange={(e) => setPick({ ...pick, attr: e.target.value })}
                />
              </label>
              <button type="submit" className="primary" disabled={mapAct.busy}>
                Map
              </button>
              <button type="button" onClick={() => setPick(null)}>
                Cancel
              </button>
              <ErrorNote error={mapAct.error} />
            </form>
          )}
        </div>
      )}
    </>
  )
}

function Headers({ h }: { h?: Record<string, string[]> }) {
  const lines = Object.entries(h ?? {}).flatMap(([k, vs]) => vs.map((v) => `${k}: ${v}`))
  return lines.length > 0 ? <pre className="code">{lines.join('\n')}</pre> : null
}

/** Body text, pretty-printed when it is JSON. */
function BodyText({ body }: { body?: string }) {
  if (!body) return <p className="muted">(no body)</p>
  let text = body
  try {
    text = JSON.stringify(JSON.parse(body), null, 2)
  } catch {
    // not JSON: as it came
  }
  return <pre className="code">{text}</pre>
}

/** A call's request and response in full; the response body open unless shown elsewhere. */
function Exchange({ request, response, open = true }: { request: HttpRequest; response: HttpResponse; open?: boolean }) {
  return (
    <div className="exchange">
      <details>
        <summary>
          Request: {request.method} {request.url}
        </summary>
        <Headers h={request.headers} />
        <BodyText body={request.body} />
      </details>
      <details open={open}>
        <summary>
          Response: {response.status_text || 'none'}
          {response.truncated && ' (truncated)'}
        </summary>
        <Headers h={response.headers} />
        <BodyText body={response.body} />
      </details>
    </div>
  )
}

export function Logs({ bot, flowKey, nodeId, logs }: { bot: BotCtx; flowKey: string; nodeId: string; logs: HttpLogSummary[] }) {
  const { query } = useLocation()
  const open = Number(query.get('log')) || null
  const here = `${bot.base}/flows/${encodeURIComponent(flowKey)}/nodes/${encodeURIComponent(nodeId)}`
  return (
    <>
      {logs.length === 0 ? (
        <Empty>No calls yet: run a Test or trigger the flow.</Empty>
      ) : (
        <div className="table-wrap">
          <table data-testid="logs">
            <caption>The last 20 calls, newest first; secrets redacted.</caption>
            <thead>
              <tr>
                <th scope="col">Log</th>
                <th scope="col">At</th>
                <th scope="col">From</th>
                <th scope="col">Status</th>
                <th scope="col">Time</th>
                <th scope="col">Outcome</th>
                <th scope="col">Detail</th>
              </tr>
            </thead>
            <tbody>
              {logs.map((l) => (
                <tr key={l.id} data-testid="log-row" aria-current={open === l.id ? 'true' : undefined}>
                  <td>{l.id}</td>
                  <td>
                    <Time at={l.at} />
                  </td>
                  <td>
                    {l.run_id ? (
                      <Link to={`${bot.base}/runs/${encodeURIComponent(l.run_id)}`}>run</Link>
                    ) : (
                      'test'
                    )}
                  </td>
                  <td>{l.status ?? '—'}</td>
                  <td>{l.duration_ms.toFixed(1)} ms</td>
                  <td className={l.failed ? 'error-text' : ''}>
                    {l.failed ? l.error || 'failed' : 'ok'}
                    {l.message && <div className="muted">{l.message}</div>}
                  </td>
                  <td>
                    <button type="button" className="small" onClick={() => navigate(`${here}?log=${l.id}`, true)}>
                      View
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {open && <LogDetail key={open} bot={bot} flowKey={flowKey} nodeId={nodeId} logId={open} onClose={() => navigate(here, true)} />}
    </>
  )
}

function LogDetail({
  bot,
  flowKey,
  nodeId,
  logId,
  onClose,
}: {
  bot: BotCtx
  flowKey: string
  nodeId: string
  logId: number
  onClose: () => void
}) {
  const { state, reload } = useLoad(() => bot.api.httpLog(flowKey, nodeId, logId), [bot, flowKey, nodeId, logId])
  return (
    <div className="card" data-testid="log-detail" aria-labelledby="log-title">
      <div className="title-row">
        <h3 id="log-title">Log {logId}</h3>
        <button type="button" className="small" onClick={onClose}>
          Close
        </button>
      </div>
      <Loaded state={state} what={`log ${logId}`} retry={reload}>
        {(l) => (
          <>
            <p>
              <Time at={l.at} /> · {l.run_id ? `run ${l.run_id}` : 'test'} · {l.duration_ms.toFixed(1)} ms
              {l.error && <span className="error-text"> · {l.error}</span>}
              {l.message && <span> · {l.message}</span>}
            </p>
            <Exchange request={l.request} response={l.response} />
          </>
        )}
      </Loaded>
    </div>
  )
}
