// How a node is drawn on the canvas: its type and id, what it does, one output handle
// per way out (each labelled), and the validator's problems with it.

import { Handle, Position, type Node, type NodeProps } from '@xyflow/react'
import { memo } from 'react'
import { exits, summary, type DocNode } from './model'

export interface StepData extends Record<string, unknown> {
  node: DocNode
  start: boolean
  problems: string[]
  lit: 'current' | 'passed' | ''
  readOnly: boolean
}

export type StepNodeType = Node<StepData, 'step'>

function StepNodeView({ data }: NodeProps<StepNodeType>) {
  const { node, start, problems, lit } = data
  const outs = exits(node)
  return (
    <div
      className={`fnode t-${node.type}${problems.length > 0 ? ' has-problems' : ''}${lit ? ` lit lit-${lit}` : ''}`}
      data-testid={`node-${node.id}`}
      data-lit={lit || undefined}
    >
      <Handle type="target" position={Position.Left} className="in" aria-label={`Into ${node.id}`} />
      <div className="fnode-head">
        <span className="ntype">{node.type}</span> <strong className="nid">{node.id}</strong>
        {start && <span className="start-badge">start</span>}
      </div>
      <div className="fnode-body">
        {summary(node).map((l, i) => (
          <div key={i} className="line">
            {l}
          </div>
        ))}
      </div>
      {outs.map((e) => (
        <div key={e.handle} className="exit" data-handle={e.handle}>
          <span className="exit-label">{e.label}</span>
          <Handle type="source" id={e.handle} position={Position.Right} className="out" aria-label={`${node.id}: ${e.label}`} />
        </div>
      ))}
      {problems.length > 0 && (
        <ul className="node-problems" data-testid={`problems-${node.id}`}>
          {problems.map((p, i) => (
            <li key={i}>{p}</li>
          ))}
        </ul>
      )}
    </div>
  )
}

export const StepNode = memo(StepNodeView)
