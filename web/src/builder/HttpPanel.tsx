// The HTTP node's tools in the builder: the HTTP step page's Test, mapping, logs and
// remap. Tests, logs and the recorded structure belong to the published node (runs call
// that one); mapping a response value writes the draft node's save, to be published.

import type { HttpNode } from '../api'
import type { BotCtx } from '../bot'
import { Link } from '../router'
import { Loaded, useLoad } from '../ui'
import { Logs, Mapping, StepState, TestStep } from '../pages/HttpStepPage'

type Props = {
  bot: BotCtx
  flowKey: string
  node: HttpNode
  published: HttpNode | undefined
  samples: Record<string, string>
  readOnly: boolean
  onSave: (save: Record<string, string>) => void
}

export function HttpPanel(props: Props) {
  if (!props.published) {
    return (
      <div className="card http-tools">
        <h3>Test, logs and remap</h3>
        <p className="muted">Publish the flow with this HTTP node to test it, map its response, and see its calls.</p>
      </div>
    )
  }
  return <Tools {...props} published={props.published} />
}

function Tools({ bot, flowKey, node, published, samples, readOnly, onSave }: Props & { published: HttpNode }) {
  const state = useLoad(() => bot.api.httpStep(flowKey, node.id), [bot, flowKey, node.id])
  const logs = useLoad(() => bot.api.httpLogs(flowKey, node.id), [bot, flowKey, node.id])
  const refresh = () => {
    state.reload(true)
    logs.reload(true)
  }
  const changed = published.url !== node.url || published.method !== node.method
  // The Test form starts from the node's {{names}}, filled from the run panel's samples.
  const withSamples: HttpNode = { ...published }
  return (
    <div className="http-tools" data-testid="http-tools">
      <p className="muted">
        Test calls the published node ({published.method} {published.url})
        {changed && ': publish to test your changes'}.{' '}
        <Link to={`${bot.base}/flows/${encodeURIComponent(flowKey)}/nodes/${encodeURIComponent(node.id)}`}>Open the HTTP step page</Link>
      </p>
      <Loaded state={state.state} what="the step's state" retry={state.reload}>
        {(st) => <StepState bot={bot} flowKey={flowKey} nodeId={node.id} state={st} onChange={state.set} />}
      </Loaded>
      <Mapping
        node={node}
        note="Publish the draft to apply it."
        onRemove={async (attr) => {
          const s = { ...(node.save ?? {}) }
          delete s[attr]
          onSave(s)
        }}
      />
      <TestStep
        key={JSON.stringify(samples)}
        bot={bot}
        flowKey={flowKey}
        node={withSamples}
        initial={samples}
        onTested={refresh}
        onMap={async (attr, path) => {
          if (readOnly) throw new Error('This version is read-only.')
          onSave({ ...(node.save ?? {}), [attr]: path })
          return `Mapped ${path} to ${attr} in the draft: save or publish to keep it.`
        }}
      />
      <h3>Logs</h3>
      <Loaded state={logs.state} what="logs" retry={logs.reload}>
        {(l) => <Logs bot={bot} flowKey={flowKey} nodeId={node.id} logs={l.logs} />}
      </Loaded>
    </div>
  )
}
