import { useState, type FormEvent } from 'react'
import type { FlowDoc, HttpNode, Run } from '../api'
import type { BotCtx } from '../bot'
import { FlowInfoButton, FlowInfoCard } from '../components/FlowInfo'
import { TriggerFields } from '../components/TriggerFields'
import { Trace } from '../components/Trace'
import { Link } from '../router'
import { Empty, ErrorNote, Loaded, PairsEditor, Time, download, pairsObject, useAction, useLoad } from '../ui'

/** Parses a stored flow document (the server validated it on import). */
export function parseFlow(text: string): FlowDoc {
  return JSON.parse(text) as FlowDoc
}

function httpNodes(doc: FlowDoc): HttpNode[] {
  return doc.nodes.filter((n): n is HttpNode => n.type === 'http')
}

/** One flow: its key and trigger URLs, versions, HTTP steps and "Try it". */
export function FlowPage({ bot, flowKey }: { bot: BotCtx; flowKey: string }) {
  const current = useLoad(async () => {
    const { text, version } = await bot.api.exportFlow(flowKey)
    return { text, version, doc: parseFlow(text) }
  }, [bot, flowKey])
  const [info, setInfo] = useState(false)

  return (
    <section>
      <Loaded state={current.state} what="the flow" retry={current.reload}>
        {({ text, version, doc }) => (
          <>
            <div className="title-row">
              <h1>{doc.name || flowKey}</h1>
              <FlowInfoButton open={info} controls="flow-info" onToggle={() => setInfo(!info)} />
            </div>
            {info && <FlowInfoCard id="flow-info" bot={bot} flowKey={flowKey} />}
            <p>
              Version {version} ·{' '}
              <button type="button" onClick={() => download(`${flowKey}.json`, text)}>
                Export JSON
              </button>{' '}
              · <Link to={`${bot.base}/runs?flow=${encodeURIComponent(flowKey)}`}>Runs of this flow</Link> ·{' '}
              <Link to={`${bot.base}/flows/${encodeURIComponent(flowKey)}/builder`}>Open in the builder</Link>
            </p>
            <HttpSteps bot={bot} flowKey={flowKey} doc={doc} />
          </>
        )}
      </Loaded>
      <TryIt bot={bot} flowKey={flowKey} />
      <Versions bot={bot} flowKey={flowKey} />
    </section>
  )
}

function HttpSteps({ bot, flowKey, doc }: { bot: BotCtx; flowKey: string; doc: FlowDoc }) {
  const nodes = httpNodes(doc)
  return (
    <>
      <h2>HTTP steps</h2>
      {nodes.length === 0 ? (
        <Empty>This flow calls no external API.</Empty>
      ) : (
        <ul className="plain">
          {nodes.map((n) => (
            <li key={n.id}>
              <Link to={`${bot.base}/flows/${encodeURIComponent(flowKey)}/nodes/${encodeURIComponent(n.id)}`}>
                {n.name || n.id}
              </Link>{' '}
              <code>
                {n.method} {n.url}
              </code>
            </li>
          ))}
        </ul>
      )}
    </>
  )
}

function Versions({ bot, flowKey }: { bot: BotCtx; flowKey: string }) {
  const { state, reload } = useLoad(() => bot.api.versions(flowKey), [bot, flowKey])
  const act = useAction()
  return (
    <>
      <h2>Versions</h2>
      <Loaded state={state} what="versions" retry={reload}>
        {(vs) =>
          vs.length === 0 ? (
            <Empty>No versions.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Version</th>
                    <th scope="col">Published</th>
                    <th scope="col">By</th>
                    <th scope="col">Document</th>
                  </tr>
                </thead>
                <tbody>
                  {vs.map((v) => (
                    <tr key={v.version}>
                      <td>{v.version}</td>
                      <td>
                        <Time at={v.created_at} />
                      </td>
                      <td>{v.published_by || '—'}</td>
                      <td>
                        <button
                          type="button"
                          className="small"
                          disabled={act.busy}
                          onClick={() =>
                            void act.run(async () =>
                              download(`${flowKey}.v${v.version}.json`, await bot.api.versionDoc(flowKey, v.version)),
                            )
                          }
                        >
                          Export v{v.version}
                        </button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
      <ErrorNote error={act.error} />
    </>
  )
}

/** "Try it": triggers the flow for a phone number and shows the run's trace. */
function TryIt({ bot, flowKey }: { bot: BotCtx; flowKey: string }) {
  const [phone, setPhone] = useState('')
  const [channel, setChannel] = useState('whatsapp')
  const [attrs, setAttrs] = useState<[string, string][]>([['', '']])
  const [run, setRun] = useState<Run | null>(null)
  const act = useAction()

  const submit = (e: FormEvent) => {
    e.preventDefault()
    setRun(null)
    void act.run(async () => {
      const r = await bot.api.trigger(flowKey, { ...pairsObject(attrs), 'user.channel': channel, 'user.phone_no': phone.trim() })
      // The trigger answers with the run as it settled; the run's page adds what it sent.
      setRun(await bot.api.run(r.run_id).catch(() => r))
    })
  }

  return (
    <form className="inline-form wide" onSubmit={submit} aria-labelledby="try-it">
      <h2 id="try-it">Try it</h2>
      <div className="form-row">
        <TriggerFields phoneLabel="Phone number (with country code)" phone={phone} onPhone={setPhone} channel={channel} onChannel={setChannel} />
      </div>
      <PairsEditor legend="Attributes" pairs={attrs} onChange={setAttrs} />
      <button type="submit" className="primary" disabled={act.busy}>
        {act.busy ? 'Running…' : 'Trigger'}
      </button>
      <ErrorNote error={act.error} />
      {run && <Trace bot={bot} run={run} />}
    </form>
  )
}
