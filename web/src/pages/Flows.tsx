import { useState, type ChangeEvent, type FormEvent } from 'react'
import { ApiError, type FlowSummary } from '../api'
import type { BotCtx } from '../bot'
import { Link, navigate } from '../router'
import { useApi } from '../session'
import { Empty, ErrorNote, Loaded, Time, useAction, useLoad } from '../ui'

/** The bot's flows, and importing a flow document. */
export function Flows({ bot }: { bot: BotCtx }) {
  const { state, reload } = useLoad(() => bot.api.flows(), [bot])
  return (
    <section>
      <h1>Flows</h1>
      <Loaded state={state} what="flows" retry={reload}>
        {(fs) =>
          fs.length === 0 ? (
            <Empty>This bot has no flows yet. Import a flow document below.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Flow key</th>
                    <th scope="col">Version</th>
                    <th scope="col">Updated</th>
                  </tr>
                </thead>
                <tbody>
                  {fs.map((f) => (
                    <tr key={f.flow_key}>
                      <td>
                        <Link to={`${bot.base}/flows/${encodeURIComponent(f.flow_key)}`}>{f.name || f.flow_key}</Link>
                      </td>
                      <td>
                        <code>{f.flow_key}</code>
                      </td>
                      <td>{f.version}</td>
                      <td>
                        <Time at={f.updated_at} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
      <Drafts bot={bot} />
      <NewFlow bot={bot} />
      <ImportFlow bot={bot} onImported={() => reload(true)} />
    </section>
  )
}

/**
 * Imports a flow document, pasted or from a file. The server's validator checks it
 * first, so that each problem is listed with its node.
 */
function ImportFlow({ bot, onImported }: { bot: BotCtx; onImported: (f: FlowSummary) => void }) {
  const api = useApi()
  const [doc, setDoc] = useState('')
  const [done, setDone] = useState<FlowSummary | null>(null)
  const act = useAction()

  const pick = (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0]
    if (!file) return
    file.text().then(setDoc, () => act.setError(new ApiError(0, { code: 0, desc: 'FILE', details: `Could not read ${file.name}.` })))
  }

  const submit = (e: FormEvent) => {
    e.preventDefault()
    setDone(null)
    void act.run(async () => {
      const problems = await api.validateFlow(doc)
      if (problems.length > 0) {
        throw new ApiError(400, { code: 1001, desc: 'INVALID_FLOW', details: 'The flow is not valid:' }, problems)
      }
      const f = await bot.api.importFlow(doc)
      setDone(f)
      setDoc('')
      onImported(f)
    })
  }

  return (
    <form className="inline-form wide" onSubmit={submit}>
      <h2>Import a flow</h2>
      <p className="muted">
        A document with the key of an existing flow becomes its next version; runs keep the version they started on.
      </p>
      <label>
        Flow document file
        <input type="file" accept=".json,application/json" onChange={pick} />
      </label>
      <label>
        Flow document (JSON)
        <textarea rows={10} spellCheck={false} required value={doc} onChange={(e) => setDoc(e.target.value)} />
      </label>
      <button type="submit" className="primary" disabled={act.busy || !doc.trim()}>
        Import
      </button>
      {done && (
        <p className="alert success" role="status">
          Imported <Link to={`${bot.base}/flows/${encodeURIComponent(done.flow_key)}`}>{done.name || done.flow_key}</Link>{' '}
          as version {done.version}.
        </p>
      )}
      <ErrorNote error={act.error} />
    </form>
  )
}

/** The builder's drafts, published or not yet. */
function Drafts({ bot }: { bot: BotCtx }) {
  const { state, reload } = useLoad(() => bot.api.drafts(), [bot])
  return (
    <Loaded state={state} what="drafts" retry={reload}>
      {(ds) =>
        ds.length === 0 ? null : (
          <>
            <h2>Drafts</h2>
            <ul className="plain">
              {ds.map((d) => (
                <li key={d.flow_key}>
                  <Link to={`${bot.base}/flows/${encodeURIComponent(d.flow_key)}/builder`}>{d.name || d.flow_key}</Link>{' '}
                  <span className="muted">
                    saved <Time at={d.updated_at} short /> by {d.updated_by}
                  </span>
                </li>
              ))}
            </ul>
          </>
        )
      }
    </Loaded>
  )
}

/** Opens the builder on a new flow key: an empty canvas. */
function NewFlow({ bot }: { bot: BotCtx }) {
  const [key, setKey] = useState('')
  const submit = (e: FormEvent) => {
    e.preventDefault()
    navigate(`${bot.base}/flows/${encodeURIComponent(key.trim())}/builder`)
  }
  return (
    <form className="inline-form" onSubmit={submit}>
      <h2>New flow</h2>
      <label>
        New flow key
        <input required pattern="[A-Za-z0-9_\-]{1,100}" value={key} onChange={(e) => setKey(e.target.value)} placeholder="order_update" />
      </label>
      <button type="submit" className="primary">
        Open the builder
      </button>
    </form>
  )
}
