// The HTTP node's tools in the builder. Test calls the node as it is here, published or
// not, and logs nothing; mapping a response value writes the draft node's save, to be
// published. The published node's state (structure changes, alert mail) and its logs,
// which belong to the calls runs make, show once the node is published.

import type { HttpNode } from '../api'
import type { BotCtx } from '../bot'
import { Link } from '../router'
import { Loaded, useLoad } from '../ui'
import { Logs, Mapping, StepState, TestStep, templateNames } from '../pages/HttpStepPage'

type Props = {
  bot: BotCtx
  flowKey: string
  node: HttpNode
  published: HttpNode | undefined
  samples: Record<string, string>
  readOnly: boolean
  onSave: (save: Record<string, string>) => void
}

export function HttpPanel({ bot, flowKey, node, published, samples, readOnly, onSave }: Props) {
  return (
    <div className="http-tools" data-testid="http-tools">
      <p className="muted">
        Test calls this node as it is here{published ? '' : ', before it is published'}; its calls from runs are in the logs
        {published ? (
          <>
            {' '}
            (<Link to={`${bot.base}/flows/${encodeURIComponent(flowKey)}/nodes/${encodeURIComponent(node.id)}`}>the HTTP step page</Link>).
          </>
        ) : (
          ' once it is published.'
        )}
      </p>
      {published && <PublishedState bot={bot} flowKey={flowKey} nodeId={node.id} />}
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
        // A new form when the node's {{names}} or the samples change; not when a value is mapped.
        key={JSON.stringify([samples, templateNames(node)])}
        bot={bot}
        flowKey={flowKey}
        node={node}
        draft
        initial={samples}
        onMap={async (attr, path) => {
          if (readOnly) throw new Error('This version is read-only.')
          onSave({ ...(node.save ?? {}), [attr]: path })
          return `Mapped ${path} to ${attr} in the draft: save or publish to keep it.`
        }}
      />
      {published && <PublishedLogs bot={bot} flowKey={flowKey} nodeId={node.id} />}
    </div>
  )
}

type NodeRef = { bot: BotCtx; flowKey: string; nodeId: string }

function PublishedState({ bot, flowKey, nodeId }: NodeRef) {
  const state = useLoad(() => bot.api.httpStep(flowKey, nodeId), [bot, flowKey, nodeId])
  return (
    <Loaded state={state.state} what="the step's state" retry={state.reload}>
      {(st) => <StepState bot={bot} flowKey={flowKey} nodeId={nodeId} state={st} onChange={state.set} />}
    </Loaded>
  )
}

function PublishedLogs({ bot, flowKey, nodeId }: NodeRef) {
  const logs = useLoad(() => bot.api.httpLogs(flowKey, nodeId), [bot, flowKey, nodeId])
  return (
    <>
      <h3>Logs</h3>
      <Loaded state={logs.state} what="logs" retry={logs.reload}>
        {(l) => <Logs bot={bot} flowKey={flowKey} nodeId={nodeId} logs={l.logs} />}
      </Loaded>
    </>
  )
}
