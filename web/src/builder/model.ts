// The flow builder's model: a flow document's nodes kept exactly as the document has
// them (so that import, export and publishing lose nothing), the canvas positions beside
// them, and the edges derived from the nodes' own routing fields. Connecting two nodes
// writes a routing field; deleting an edge clears it.

import type { NodeType } from '../api'

/** A node of the document as it is: every member kept. */
export type DocNode = { id: string; type: NodeType } & Record<string, unknown>

export interface Position {
  x: number
  y: number
}

export interface Viewport {
  x: number
  y: number
  zoom: number
}

export interface Layout {
  nodes?: Record<string, Position>
  viewport?: Viewport
}

/** What the builder edits: the document and where its nodes are drawn. */
export interface Model {
  key: string
  name: string
  start: string
  nodes: DocNode[]
  positions: Record<string, Position>
  /** Members of the document the builder does not know, kept for export. */
  extra: Record<string, unknown>
}

export const nodeTypes: { type: NodeType; label: string; does: string }[] = [
  { type: 'message', label: 'Message', does: 'sends text, buttons, media, a card or a template' },
  { type: 'decision', label: 'Decision', does: 'branches on conditions' },
  { type: 'set', label: 'Set', does: 'sets and clears attributes' },
  { type: 'input', label: 'Input', does: "waits for the user's reply" },
  { type: 'http', label: 'HTTP', does: 'calls an external API' },
  { type: 'jump', label: 'Jump', does: 'continues in another flow' },
  { type: 'end', label: 'End', does: 'ends the run' },
]

/** A way out of a node: the handle's id and what it is called. */
export interface Exit {
  handle: string
  label: string
  target: string
}

export interface Branch {
  when?: Condition
  next?: string
}

export interface Condition {
  all?: Condition[]
  any?: Condition[]
  attribute?: string
  op?: string
  value?: unknown
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : ''
}

/** A condition in words: `user_type eq "vip"`, groups joined with and/or. */
export function describeCondition(c: Condition | undefined): string {
  if (!c) return '(no condition)'
  if (c.all && c.all.length > 0) return c.all.map(describeCondition).join(' and ')
  if (c.any && c.any.length > 0) return '(' + c.any.map(describeCondition).join(' or ') + ')'
  const v = c.value === undefined ? '' : ' ' + JSON.stringify(c.value)
  return `${c.attribute ?? '?'} ${c.op ?? '?'}${v}`
}

/** Every way out of a node, one handle each, in the order the node draws them. */
export function exits(n: DocNode): Exit[] {
  switch (n.type) {
    case 'decision': {
      const bs = Array.isArray(n.branches) ? (n.branches as Branch[]) : []
      return [
        ...bs.map((b, i) => ({ handle: `b${i}`, label: describeCondition(b.when), target: str(b.next) })),
        { handle: 'else', label: 'else', target: str(n.else) },
      ]
    }
    case 'input':
      return [
        { handle: 'next', label: 'reply', target: str(n.next) },
        { handle: 'on_timeout', label: 'timeout', target: str(n.on_timeout) },
      ]
    case 'http':
      if (n.on_failure === 'stop') return [{ handle: 'next', label: 'success (a failure stops the run)', target: str(n.next) }]
      return [
        { handle: 'next', label: n.on_failure_next ? 'success' : 'success (and failure, without its own route)', target: str(n.next) },
        { handle: 'on_failure_next', label: 'failure', target: str(n.on_failure_next) },
      ]
    case 'message':
    case 'set':
      return [{ handle: 'next', label: 'next', target: str(n.next) }]
    default:
      return []
  }
}

/** The node with one routing field changed (target "" clears it). */
export function route(n: DocNode, handle: string, target: string): DocNode {
  const out: DocNode = { ...n }
  const m = /^b(\d+)$/.exec(handle)
  if (m && n.type === 'decision') {
    const bs = [...((n.branches as Branch[] | undefined) ?? [])]
    const i = Number(m[1])
    const b = { ...(bs[i] ?? {}) }
    if (target) b.next = target
    else delete b.next
    bs[i] = b
    out.branches = bs
    return out
  }
  if (target) out[handle] = target
  else delete out[handle]
  return out
}

/** Every node with references to the ids in from renamed (to[id]) or cleared (to[id] === ""). */
export function rewriteRefs(nodes: DocNode[], to: Record<string, string>): DocNode[] {
  return nodes.map((n) => {
    let out = n
    for (const e of exits(n)) {
      if (e.target && e.target in to) out = route(out, e.handle, to[e.target] ?? '')
    }
    return out
  })
}

/** A node id not yet used: "ask", "ask_2", ... */
export function freshId(base: string, used: Set<string>): string {
  const b = base.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 90) || 'node'
  if (!used.has(b)) return b
  for (let i = 2; ; i++) {
    const id = `${b}_${i}`
    if (!used.has(id)) return id
  }
}

/** A new node of a type with the fields it needs to be valid, but no routes. */
export function newNode(type: NodeType, id: string): DocNode {
  switch (type) {
    case 'message':
      return { id, type }
    case 'decision':
      return { id, type, branches: [{ when: { all: [{ attribute: '', op: 'eq', value: '' }] } }] }
    case 'set':
      return { id, type }
    case 'input':
      return { id, type }
    case 'http':
      return { id, type, method: 'GET', url: '' }
    case 'jump':
      return { id, type, flow: '' }
    case 'end':
      return { id, type }
  }
}

/** Reads a flow document (parsed JSON) into a model; positions come from its layout. */
export function fromDoc(doc: unknown, fallbackKey: string): { model: Model; viewport: Viewport | null; laidOut: boolean } {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('a flow document is a JSON object')
  const { key, name, start, nodes, layout, ...extra } = doc as Record<string, unknown>
  if (nodes !== undefined && !Array.isArray(nodes)) throw new Error('"nodes" must be a list')
  const ns: DocNode[] = []
  for (const [i, raw] of ((nodes as unknown[] | undefined) ?? []).entries()) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`nodes[${i}] is not an object`)
    const n = raw as DocNode
    if (typeof n.id !== 'string' || !n.id) throw new Error(`nodes[${i}] has no id`)
    if (!nodeTypes.some((t) => t.type === n.type)) throw new Error(`node ${n.id}: unknown type ${JSON.stringify(n.type)}`)
    ns.push({ ...n })
  }
  const lay = (layout ?? {}) as Layout
  const positions: Record<string, Position> = {}
  let laidOut = ns.length > 0
  for (const n of ns) {
    const p = lay.nodes?.[n.id]
    if (p && Number.isFinite(p.x) && Number.isFinite(p.y)) positions[n.id] = { x: p.x, y: p.y }
    else laidOut = false
  }
  return {
    model: { key: str(key) || fallbackKey, name: str(name), start: str(start), nodes: ns, positions, extra },
    viewport: lay.viewport ?? null,
    laidOut: laidOut || ns.length === 0,
  }
}

/** The model as a flow document, with its layout (the viewport when given). */
export function toDoc(m: Model, viewport: Viewport | null): Record<string, unknown> {
  const layout: Layout = { nodes: {} }
  for (const n of m.nodes) {
    const p = m.positions[n.id]
    if (p && layout.nodes) layout.nodes[n.id] = { x: Math.round(p.x), y: Math.round(p.y) }
  }
  if (viewport) layout.viewport = { x: Math.round(viewport.x), y: Math.round(viewport.y), zoom: Number(viewport.zoom.toFixed(3)) }
  const doc: Record<string, unknown> = { ...m.extra, key: m.key }
  if (m.name) doc.name = m.name
  doc.start = m.start
  doc.nodes = m.nodes
  doc.layout = layout
  return doc
}

/** A short account of what a node does, one line each, for drawing it. */
export function summary(n: DocNode): string[] {
  const out: string[] = []
  const text = str(n.text)
  switch (n.type) {
    case 'message':
    case 'input': {
      if (text) out.push(text)
      const media = n.media as { type?: string; url?: string } | undefined
      if (media) out.push(`${media.type ?? 'media'}: ${media.url ?? ''}`)
      const card = n.card as { title?: string } | undefined
      if (card) out.push(`card: ${card.title ?? ''}`)
      const tpl = n.template as { name?: string } | undefined
      if (tpl) out.push(`template: ${tpl.name ?? ''}`)
      const buttons = (n.buttons as { title?: string }[] | undefined) ?? []
      if (buttons.length > 0) out.push('buttons: ' + buttons.map((b) => `[${b.title ?? ''}]`).join(' '))
      if (n.type === 'input') {
        if (n.save_as) out.push(`saves reply as ${str(n.save_as)}`)
        if (n.timeout_seconds) out.push(`timeout ${String(n.timeout_seconds)} s`)
      }
      break
    }
    case 'set': {
      for (const [k, v] of Object.entries((n.set as Record<string, string> | undefined) ?? {})) out.push(`${k} = ${v}`)
      const clear = (n.clear as string[] | undefined) ?? []
      if (clear.length > 0) out.push(`clear ${clear.join(', ')}`)
      break
    }
    case 'http': {
      if (n.name) out.push(str(n.name))
      out.push(`${str(n.method) || 'GET'} ${str(n.url)}`)
      const save = Object.entries((n.save as Record<string, string> | undefined) ?? {})
      if (save.length > 0) out.push('saves ' + save.map(([a, p]) => `${a} ← ${p}`).join(', '))
      break
    }
    case 'jump':
      out.push(`to flow ${str(n.flow) || '?'}`)
      break
    case 'end':
      out.push('ends the run')
      break
  }
  return out
}

/** The size a node is drawn at, near enough for laying out before it is measured. */
export function estimateSize(n: DocNode): { width: number; height: number } {
  const lines = summary(n).reduce((a, l) => a + Math.max(1, Math.ceil(l.length / 30)), 0)
  return { width: 240, height: 44 + Math.min(lines, 6) * 18 + exits(n).length * 24 }
}

/**
 * The attributes {{...}} can name in this flow: those its nodes set, save and ask for,
 * the HTTP steps' mapped leaves and outcomes, the sample attributes given, and the
 * system attributes.
 */
export function attributeNames(nodes: DocNode[], samples: string[]): string[] {
  const names = new Set<string>(['user.phone_no', 'user.user_name', 'user.channel'])
  for (const s of samples) if (s) names.add(s)
  for (const n of nodes) {
    if (n.type === 'set') for (const k of Object.keys((n.set as Record<string, string> | undefined) ?? {})) names.add(k)
    if (n.type === 'input' && n.save_as) names.add(str(n.save_as))
    if (n.type === 'http') {
      for (const [attr, path] of Object.entries((n.save as Record<string, string> | undefined) ?? {})) {
        names.add(attr)
        names.add(`${n.id}.${path}`)
      }
      names.add(`${n.id}.status`)
      names.add(`${n.id}.error`)
    }
    // Attributes a decision tests come from somewhere too (a trigger, usually).
    if (n.type === 'decision') {
      const walk = (c: Condition | undefined) => {
        if (!c) return
        if (c.attribute) names.add(c.attribute)
        c.all?.forEach(walk)
        c.any?.forEach(walk)
      }
      for (const b of (n.branches as Branch[] | undefined) ?? []) walk(b.when)
    }
  }
  names.delete('')
  return [...names].sort()
}
