// The visual flow builder: a canvas editor of one flow's document (drafts, publishing,
// versions, validation and a run lit up on the canvas). Loaded on demand, so the rest of
// the console does not carry the canvas library.

import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  useReactFlow,
  type Connection,
  type Edge,
  type EdgeChange,
  type NodeChange,
  type Viewport as RFViewport,
} from '@xyflow/react'
import '@xyflow/react/dist/style.css'
import './builder.css'
import { useCallback, useEffect, useMemo, useRef, useState, type DragEvent, type FormEvent } from 'react'
import { ApiError, type FlowProblem, type FlowVersion, type HttpNode, type NodeType, type Run } from '../api'
import type { BotCtx } from '../bot'
import { FlowInfoButton, FlowInfoCard } from '../components/FlowInfo'
import { TriggerFields } from '../components/TriggerFields'
import { Link, useLeaveGuard } from '../router'
import { useApi } from '../session'
import { Badge, ErrorNote, Loaded, PairsEditor, Time, download, pairsObject, toApiError, useAction, useInterval, useLoad, useTitle } from '../ui'
import { HttpPanel } from './HttpPanel'
import { autoLayout } from './layout'
import {
  attributeNames,
  exits,
  freshId,
  fromDoc,
  newNode,
  nodeTypes,
  rewriteRefs,
  route,
  toDoc,
  type DocNode,
  type Model,
  type Position,
  type Viewport,
} from './model'
import { NodeForm } from './NodeForm'
import { StepNode, type StepData, type StepNodeType } from './StepNode'

const rfNodeTypes = { step: StepNode }
const dragType = 'application/x-parley-node'

interface Loaded0 {
  first: { model: Model; viewport: Viewport | null; laidOut: boolean }
  layoutMs: number
  source: 'draft' | 'published' | 'new'
  version: number
  publishedDoc: DocNode[] | null
  flows: string[]
}

/** The builder page of one flow of a bot. */
export default function FlowBuilder({ bot, flowKey }: { bot: BotCtx; flowKey: string }) {
  useTitle(`Builder · ${flowKey}`)
  const load = useLoad(async (): Promise<Loaded0> => {
    // The lists say what exists, so that opening a new flow asks for nothing that is not there.
    const [flows, drafts] = await Promise.all([bot.api.flows(), bot.api.drafts()])
    const flow = flows.find((f) => f.flow_key.toLowerCase() === flowKey.toLowerCase())
    const draft = drafts.find((d) => d.flow_key.toLowerCase() === flowKey.toLowerCase())
    let publishedDoc: DocNode[] | null = null
    let publishedText: string | null = null
    if (flow) {
      publishedText = (await bot.api.exportFlow(flowKey)).text
      publishedDoc = ((JSON.parse(publishedText) as { nodes?: DocNode[] }).nodes ?? []) as DocNode[]
    }
    const text = draft ? await bot.api.draft(flowKey) : publishedText
    // A document without a layout is laid out before it is first drawn.
    const first = parseModel(text, flowKey)
    let layoutMs = 0
    if (!first.laidOut) {
      const t0 = performance.now()
      first.model = { ...first.model, positions: await autoLayout(first.model.nodes) }
      layoutMs = Math.max(1, Math.round(performance.now() - t0))
    }
    return {
      first,
      layoutMs,
      source: draft ? 'draft' : flow ? 'published' : 'new',
      version: flow?.version ?? 0,
      publishedDoc,
      flows: flows.map((f) => f.flow_key),
    }
  }, [bot, flowKey])

  return (
    <section className="builder-page">
      <nav aria-label="Flow" className="crumbs">
        <Link to={`${bot.base}/flows`}>Flows</Link> › <Link to={`${bot.base}/flows/${encodeURIComponent(flowKey)}`}>{flowKey}</Link> › Builder
      </nav>
      <Loaded state={load.state} what="the flow" retry={load.reload}>
        {(d) => (
          <ReactFlowProvider>
            <Editor bot={bot} flowKey={flowKey} initial={d} reload={() => load.reload(true)} />
          </ReactFlowProvider>
        )}
      </Loaded>
    </section>
  )
}

type Tab = 'node' | 'problems' | 'versions' | 'run' | 'json'

interface Lit {
  run: Run
  shown: number
}

/**
 * The nodes of a run lit so far, in order: its steps shown yet, then the node it waits
 * at (a step is recorded once a node is done with, so an input waiting for the reply is
 * not one yet).
 */
function litPath(lit: Lit | null): string[] {
  if (!lit) return []
  const path = lit.run.steps.slice(0, lit.shown).map((s) => s.node)
  const cur = lit.run.current_node
  if (lit.shown >= lit.run.steps.length && cur && !ended(lit.run) && path[path.length - 1] !== cur) path.push(cur)
  return path
}

function emptyModel(key: string): Model {
  return { key, name: '', start: '', nodes: [], positions: {}, extra: {} }
}

function parseModel(text: string | null, key: string) {
  if (text === null) return { model: emptyModel(key), viewport: null, laidOut: true }
  const r = fromDoc(JSON.parse(text), key)
  r.model.key = key
  return r
}

function Editor({ bot, flowKey, initial, reload }: { bot: BotCtx; flowKey: string; initial: Loaded0; reload: () => void }) {
  const api = useApi()
  const rf = useReactFlow()
  const first = initial.first
  const [model, setModelState] = useState<Model>(first.model)
  const modelRef = useRef(model)
  const setModel = useCallback((m: Model) => {
    modelRef.current = m
    setModelState(m)
  }, [])
  const past = useRef<Model[]>([])
  const future = useRef<Model[]>([])
  const lastTag = useRef<{ tag: string; at: number }>({ tag: '', at: 0 })
  const [, setHistoryTick] = useState(0)
  const [dirty, setDirty] = useState(false)
  useLeaveGuard(dirty, 'This flow has changes that are not saved. Leave without saving them?')
  const [measured, setMeasured] = useState<Record<string, { width: number; height: number }>>({})
  const [selected, setSelected] = useState<Set<string>>(new Set())
  const [selEdges, setSelEdges] = useState<Set<string>>(new Set())
  const viewport = useRef<Viewport | null>(first.viewport)
  const [problems, setProblems] = useState<FlowProblem[]>([])
  const [checking, setChecking] = useState(false)
  const [tab, setTab] = useState<Tab>('node')
  const [viewing, setViewing] = useState<{ version: number; model: Model } | null>(null)
  const [lit, setLit] = useState<Lit | null>(null)
  const [layoutMs, setLayoutMs] = useState<number>(initial.layoutMs)
  const [source, setSource] = useState(initial.source)
  const [version, setVersion] = useState(initial.version)
  const [publishedDoc, setPublishedDoc] = useState(initial.publishedDoc)
  const [said, setSaid] = useState<{ text: string; kind: 'success' | 'error' } | null>(null)
  const [info, setInfo] = useState(false)
  const [help, setHelp] = useState(false)
  const [samples, setSamples] = useState<[string, string][]>([['', '']])
  const clip = useRef<{ nodes: DocNode[]; positions: Record<string, Position> } | null>(null)
  const dragTag = useRef('')
  const act = useAction()
  const versions = useLoad(() => (version > 0 ? bot.api.versions(flowKey) : Promise.resolve([] as FlowVersion[])), [bot, flowKey, version])

  const shown = viewing?.model ?? model
  const shownRef = useRef(shown)
  shownRef.current = shown
  const readOnly = viewing !== null

  // ---- history ----

  const commit = useCallback(
    (next: Model, tag = '') => {
      const now = Date.now()
      const l = lastTag.current
      const same = tag !== '' && l.tag === tag && (tag.startsWith('drag') || now - l.at < 1500)
      if (!same) {
        past.current.push(modelRef.current)
        if (past.current.length > 200) past.current.shift()
        future.current = []
      }
      lastTag.current = { tag, at: now }
      setModel(next)
      setDirty(true)
      setHistoryTick((t) => t + 1)
    },
    [setModel],
  )

  const undo = useCallback(() => {
    const prev = past.current.pop()
    if (!prev) return
    future.current.push(modelRef.current)
    lastTag.current = { tag: '', at: 0 }
    setModel(prev)
    setDirty(true)
    setHistoryTick((t) => t + 1)
  }, [setModel])

  const redo = useCallback(() => {
    const next = future.current.pop()
    if (!next) return
    past.current.push(modelRef.current)
    lastTag.current = { tag: '', at: 0 }
    setModel(next)
    setDirty(true)
    setHistoryTick((t) => t + 1)
  }, [setModel])

  /** Replaces the whole model (a load, not an edit): history starts again. */
  const reset = useCallback(
    (m: Model) => {
      past.current = []
      future.current = []
      lastTag.current = { tag: '', at: 0 }
      setModel(m)
      setDirty(false)
      setSelected(new Set())
      setHistoryTick((t) => t + 1)
    },
    [setModel],
  )

  // ---- layout ----

  const layOut = useCallback(
    async (m: Model, record: boolean): Promise<Model> => {
      const t0 = performance.now()
      const positions = await autoLayout(m.nodes, measured)
      if (record) setLayoutMs(Math.round(performance.now() - t0))
      return { ...m, positions }
    },
    [measured],
  )

  // Fitting waits for the nodes' sizes: the canvas measures them once drawn.
  const pendingFit = useRef(false)
  const fit = useCallback(() => {
    pendingFit.current = true
    setFitTick((t) => t + 1)
  }, [])
  const [fitTick, setFitTick] = useState(0)
  useEffect(() => {
    if (!pendingFit.current) return
    const all = shownRef.current.nodes.every((n) => measured[n.id])
    const go = () => {
      pendingFit.current = false
      void rf.fitView({ padding: 0.15, maxZoom: 1.2 })
    }
    if (all) {
      window.requestAnimationFrame(go)
      return
    }
    const t = window.setTimeout(go, 500)
    return () => window.clearTimeout(t)
  }, [measured, fitTick, rf])

  useEffect(() => {
    if (!first.viewport && first.model.nodes.length > 0) fit()
  }, [first, fit])

  // ---- validation (the server's validator, as publishing will use it) ----

  useEffect(() => {
    if (readOnly) return
    const t = window.setTimeout(() => {
      setChecking(true)
      api
        .validateFlow(JSON.stringify(toDoc(model, null)))
        .then(setProblems, (e: unknown) => setProblems([{ node: '', message: toApiError(e).message }]))
        .finally(() => setChecking(false))
    }, 400)
    return () => window.clearTimeout(t)
  }, [api, model, readOnly])

  const problemsByNode = useMemo(() => {
    const m = new Map<string, string[]>()
    for (const p of problems) {
      if (!p.node) continue
      const l = m.get(p.node) ?? []
      l.push(p.field ? `${p.field}: ${p.message}` : p.message)
      m.set(p.node, l)
    }
    return m
  }, [problems])

  // ---- the run lit up ----

  const litNodes = useMemo(() => {
    const out = new Map<string, 'current' | 'passed'>()
    const path = litPath(lit)
    path.forEach((id, i) => out.set(id, i === path.length - 1 ? 'current' : 'passed'))
    return out
  }, [lit])

  const litEdges = useMemo(() => {
    const out = new Set<string>()
    if (!lit) return out
    const path = litPath(lit)
    for (let i = 0; i + 1 < path.length; i++) {
      const a = path[i]
      const b = path[i + 1]
      const n = shown.nodes.find((x) => x.id === a)
      const e = n && exits(n).find((x) => x.target === b)
      if (e && a) out.add(`${a}:${e.handle}`)
    }
    return out
  }, [lit, shown])

  // ---- canvas ----

  // A node's data object is kept while what it draws is unchanged, so that the memoised
  // node component skips it (moving, measuring and selecting do not redraw every node).
  const dataCache = useRef(new Map<string, StepData>())
  const rfNodes: StepNodeType[] = useMemo(() => {
    const cache = dataCache.current
    const next = new Map<string, StepData>()
    const out = shown.nodes.map((n) => {
      const problems = readOnly ? [] : (problemsByNode.get(n.id) ?? [])
      const lit: StepData['lit'] = litNodes.get(n.id) ?? ''
      const start = shown.start === n.id
      const old = cache.get(n.id)
      const data =
        old && old.node === n && old.start === start && old.lit === lit && old.readOnly === readOnly && old.problems.join('\n') === problems.join('\n')
          ? old
          : ({ node: n, start, problems, lit, readOnly } satisfies StepData)
      next.set(n.id, data)
      return {
        id: n.id,
        type: 'step' as const,
        position: shown.positions[n.id] ?? { x: 0, y: 0 },
        selected: selected.has(n.id),
        measured: measured[n.id],
        className: lit ? 'lit' : undefined,
        data,
      }
    })
    dataCache.current = next
    return out
  }, [shown, selected, measured, litNodes, problemsByNode, readOnly])

  const rfEdges: Edge[] = useMemo(() => {
    const ids = new Set(shown.nodes.map((n) => n.id))
    const out: Edge[] = []
    for (const n of shown.nodes) {
      for (const e of exits(n)) {
        if (!e.target || !ids.has(e.target)) continue
        const id = `${n.id}:${e.handle}`
        out.push({
          id,
          source: n.id,
          sourceHandle: e.handle,
          target: e.target,
          selected: selEdges.has(id),
          animated: litEdges.has(id),
          className: litEdges.has(id) ? 'lit' : undefined,
          ariaLabel: `${n.id} ${e.label} to ${e.target}`,
        })
      }
    }
    return out
  }, [shown, selEdges, litEdges])

  const onNodesChange = useCallback(
    (changes: NodeChange<StepNodeType>[]) => {
      let positions: Record<string, Position> | null = null
      let dims: Record<string, { width: number; height: number }> | null = null
      let sel: Set<string> | null = null
      for (const c of changes) {
        if (c.type === 'position' && c.position && !readOnly) {
          positions ??= { ...modelRef.current.positions }
          positions[c.id] = c.position
        } else if (c.type === 'dimensions' && c.dimensions) {
          dims ??= {}
          dims[c.id] = c.dimensions
        } else if (c.type === 'select') {
          sel ??= new Set(selectedRef.current)
          if (c.selected) sel.add(c.id)
          else sel.delete(c.id)
        }
      }
      // One undo step per drag; moves by arrow keys join within a moment.
      if (positions) commit({ ...modelRef.current, positions }, dragTag.current || 'move')
      if (dims) {
        const d = dims
        setMeasured((m) => ({ ...m, ...d }))
      }
      if (sel) {
        selectedRef.current = sel
        setSelected(sel)
        if (sel.size > 0) setTab('node')
      }
    },
    [commit, readOnly],
  )
  const selectedRef = useRef(selected)
  selectedRef.current = selected

  const onEdgesChange = useCallback((changes: EdgeChange[]) => {
    setSelEdges((cur) => {
      let out: Set<string> | null = null
      for (const c of changes) {
        if (c.type !== 'select') continue
        out ??= new Set(cur)
        if (c.selected) out.add(c.id)
        else out.delete(c.id)
      }
      return out ?? cur
    })
  }, [])

  const onConnect = useCallback(
    (c: Connection) => {
      if (readOnly || !c.source || !c.target || !c.sourceHandle || c.source === c.target) return
      const m = modelRef.current
      commit({ ...m, nodes: m.nodes.map((n) => (n.id === c.source ? route(n, c.sourceHandle ?? '', c.target) : n)) })
    },
    [commit, readOnly],
  )

  // ---- node operations ----

  const selectOnly = (ids: string[]) => {
    const s = new Set(ids)
    selectedRef.current = s
    setSelected(s)
    setSelEdges(new Set())
  }

  const addNode = (type: NodeType, at?: Position) => {
    if (readOnly) return
    const m = modelRef.current
    const id = freshId(type, new Set(m.nodes.map((n) => n.id)))
    let pos = at
    if (!pos) {
      const el = document.querySelector('.builder-canvas')?.getBoundingClientRect()
      const c = el ? rf.screenToFlowPosition({ x: el.left + el.width / 2, y: el.top + el.height / 2 }) : { x: 0, y: 0 }
      const k = m.nodes.length % 6
      pos = { x: c.x - 120 + k * 24, y: c.y - 40 + k * 24 }
    }
    commit({ ...m, start: m.start || id, nodes: [...m.nodes, newNode(type, id)], positions: { ...m.positions, [id]: pos } })
    selectOnly([id])
    setTab('node')
  }

  const deleteSelection = useCallback(() => {
    if (readOnly) return
    const m = modelRef.current
    const gone = selectedRef.current
    let nodes = m.nodes
    for (const eid of selEdges) {
      const i = eid.lastIndexOf(':')
      const src = eid.slice(0, i)
      const handle = eid.slice(i + 1)
      if (gone.has(src)) continue
      nodes = nodes.map((n) => (n.id === src ? route(n, handle, '') : n))
    }
    if (gone.size > 0) {
      nodes = rewriteRefs(
        nodes.filter((n) => !gone.has(n.id)),
        Object.fromEntries([...gone].map((id) => [id, ''])),
      )
    }
    if (nodes === m.nodes) return
    const positions = { ...m.positions }
    for (const id of gone) delete positions[id]
    commit({ ...m, nodes, positions, start: gone.has(m.start) ? '' : m.start })
    selectOnly([])
  }, [commit, readOnly, selEdges])

  const copy = useCallback(() => {
    const m = shown
    const nodes = m.nodes.filter((n) => selectedRef.current.has(n.id))
    if (nodes.length === 0) return
    clip.current = { nodes, positions: Object.fromEntries(nodes.map((n) => [n.id, m.positions[n.id] ?? { x: 0, y: 0 }])) }
    navigator.clipboard?.writeText(JSON.stringify(nodes, null, 2)).catch(() => undefined)
    setSaid({ text: `Copied ${nodes.length} node${nodes.length === 1 ? '' : 's'}.`, kind: 'success' })
  }, [shown])

  const paste = useCallback(() => {
    const c = clip.current
    if (readOnly || !c) return
    const m = modelRef.current
    const used = new Set(m.nodes.map((n) => n.id))
    const rename: Record<string, string> = {}
    for (const n of c.nodes) {
      const id = freshId(n.id, used)
      used.add(id)
      rename[n.id] = id
    }
    // Routes between the copied nodes follow the copies; routes out of the copy stay.
    const copies = rewriteRefs(
      c.nodes.map((n) => ({ ...n, id: rename[n.id] ?? n.id })),
      rename,
    )
    const positions = { ...m.positions }
    for (const n of c.nodes) {
      const p = c.positions[n.id] ?? { x: 0, y: 0 }
      positions[rename[n.id] ?? n.id] = { x: p.x + 40, y: p.y + 40 }
    }
    commit({ ...m, start: m.start || (copies[0]?.id ?? ''), nodes: [...m.nodes, ...copies], positions })
    selectOnly(copies.map((n) => n.id))
    clip.current = { nodes: copies, positions: Object.fromEntries(copies.map((n) => [n.id, positions[n.id] ?? { x: 0, y: 0 }])) }
  }, [commit, readOnly])

  const duplicate = useCallback(() => {
    copy()
    paste()
  }, [copy, paste])

  const changeNode = useCallback(
    (id: string, n: DocNode, tag: string) => {
      const m = modelRef.current
      commit({ ...m, nodes: m.nodes.map((x) => (x.id === id ? n : x)) }, `${id}:${tag}`)
    },
    [commit],
  )

  const renameNode = (from: string, to: string): string => {
    const m = modelRef.current
    if (!/^[A-Za-z0-9_-]{1,100}$/.test(to)) return 'An id is 1 to 100 letters, digits, _ and -.'
    if (to !== from && m.nodes.some((n) => n.id === to)) return `There is a node ${to} already.`
    if (to === from) return ''
    const nodes = rewriteRefs(
      m.nodes.map((n) => (n.id === from ? { ...n, id: to } : n)),
      { [from]: to },
    )
    const positions = { ...m.positions, [to]: m.positions[from] ?? { x: 0, y: 0 } }
    delete positions[from]
    commit({ ...m, nodes, positions, start: m.start === from ? to : m.start })
    selectOnly([to])
    return ''
  }

  const focusNode = (id: string) => {
    const p = shown.positions[id]
    selectOnly([id])
    setTab('node')
    if (p) void rf.setCenter(p.x + 120, p.y + 50, { zoom: Math.max(rf.getZoom(), 0.9), duration: 250 })
    window.setTimeout(() => (document.querySelector(`.react-flow__node[data-id="${CSS.escape(id)}"]`) as HTMLElement | null)?.focus(), 300)
  }

  const runLayout = async () => {
    const m = await layOut(modelRef.current, true)
    commit(m)
    fit()
  }

  // ---- keyboard ----

  const rootRef = useRef<HTMLDivElement>(null)
  const onKeyDown = (e: globalThis.KeyboardEvent) => {
    const t = e.target as HTMLElement
    // Shortcuts act on the canvas: from inside the builder, or with the focus nowhere
    // (as after deleting the focused node); never while typing in a field.
    if (t !== document.body && !rootRef.current?.contains(t)) return
    if (t.closest('input, textarea, select, [contenteditable="true"]')) return
    const mod = e.ctrlKey || e.metaKey
    const k = e.key.toLowerCase()
    if (mod && k === 'z' && !e.shiftKey) {
      e.preventDefault()
      if (!readOnly) undo()
    } else if (mod && ((k === 'z' && e.shiftKey) || k === 'y')) {
      e.preventDefault()
      if (!readOnly) redo()
    } else if (mod && k === 'c') {
      // With no node selected, Ctrl+C copies the page's selected text as usual.
      if (selectedRef.current.size === 0) return
      e.preventDefault()
      copy()
    } else if (mod && k === 'v') {
      if (!clip.current) return
      e.preventDefault()
      paste()
    } else if (mod && k === 'd') {
      e.preventDefault()
      duplicate()
    } else if (e.key === 'Delete' || e.key === 'Backspace') {
      e.preventDefault()
      deleteSelection()
    } else if (e.key === 'Escape') {
      setHelp(false)
    }
  }

  const keys = useRef(onKeyDown)
  keys.current = onKeyDown
  useEffect(() => {
    const h = (e: globalThis.KeyboardEvent) => keys.current(e)
    document.addEventListener('keydown', h)
    return () => document.removeEventListener('keydown', h)
  }, [])

  // ---- drag from the palette ----

  const onDragOver = (e: DragEvent) => {
    if (e.dataTransfer.types.includes(dragType)) {
      e.preventDefault()
      e.dataTransfer.dropEffect = 'copy'
    }
  }
  const onDrop = (e: DragEvent) => {
    const type = e.dataTransfer.getData(dragType) as NodeType
    if (!type || !nodeTypes.some((t) => t.type === type)) return
    e.preventDefault()
    const p = rf.screenToFlowPosition({ x: e.clientX, y: e.clientY })
    addNode(type, { x: p.x - 20, y: p.y - 20 })
  }

  // ---- drafts, publishing, versions ----

  const docText = () => JSON.stringify(toDoc(modelRef.current, viewport.current), null, 2)

  const saveDraft = () =>
    act.run(async () => {
      const d = await bot.api.saveDraft(flowKey, docText())
      setProblems(d.errors)
      setDirty(false)
      setSource('draft')
      setSaid({
        text: d.valid ? 'Draft saved. It is valid and can be published.' : `Draft saved with ${d.errors.length} problem${d.errors.length === 1 ? '' : 's'}: fix them to publish.`,
        kind: 'success',
      })
    })

  const publish = () =>
    act.run(async () => {
      await bot.api.saveDraft(flowKey, docText())
      setDirty(false)
      setSource('draft')
      try {
        const f = await bot.api.publish(flowKey)
        setVersion(f.version)
        setSource('published')
        setPublishedDoc(modelRef.current.nodes)
        setProblems([])
        setSaid({ text: `Published version ${f.version}.`, kind: 'success' })
      } catch (e) {
        if (e instanceof ApiError && e.problems.length > 0) {
          setProblems(e.problems)
          setTab('problems')
          setSaid({ text: `Publishing was refused: the flow has ${e.problems.length} problem${e.problems.length === 1 ? '' : 's'} (saved as a draft).`, kind: 'error' })
          return
        }
        throw e
      }
    })

  const discardDraft = () =>
    act.run(async () => {
      await bot.api.deleteDraft(flowKey)
      setSaid({ text: 'Draft discarded.', kind: 'success' })
      reload()
    })

  const openVersion = (v: number) =>
    act.run(async () => {
      const r = fromDoc(JSON.parse(await bot.api.versionDoc(flowKey, v)), flowKey)
      const m = r.laidOut ? r.model : await layOut(r.model, false)
      setViewing({ version: v, model: m })
      selectOnly([])
      fit()
    })

  const restoreVersion = (v: number) =>
    act.run(async () => {
      const f = await bot.api.restore(flowKey, v)
      const { text } = await bot.api.exportFlow(flowKey)
      const r = fromDoc(JSON.parse(text), flowKey)
      const m = r.laidOut ? r.model : await layOut(r.model, false)
      if (source === 'draft') await bot.api.deleteDraft(flowKey).catch(() => undefined)
      setViewing(null)
      reset(m)
      setVersion(f.version)
      setSource('published')
      setPublishedDoc(m.nodes)
      setSaid({ text: `Version ${v} restored as version ${f.version}.`, kind: 'success' })
      fit()
    })

  const importText = async (text: string) => {
    const r = fromDoc(JSON.parse(text), flowKey)
    r.model.key = flowKey
    const m = r.laidOut ? r.model : await layOut(r.model, false)
    commit(m)
    if (r.viewport) void rf.setViewport(r.viewport)
    else fit()
  }

  // ---- the selected node's panel ----

  const sel = shown.nodes.filter((n) => selected.has(n.id))
  const one = sel.length === 1 ? sel[0] : undefined
  const names = useMemo(() => attributeNames(shown.nodes, samples.map(([k]) => k.trim())), [shown, samples])
  const ids = useMemo(() => shown.nodes.map((n) => n.id), [shown])
  const publishedHttp = one && one.type === 'http' ? publishedDoc?.find((n) => n.id === one.id && n.type === 'http') : undefined

  const canUndo = past.current.length > 0 && !readOnly
  const canRedo = future.current.length > 0 && !readOnly

  return (
    <div className="builder" ref={rootRef}>
      <div className="title-row">
        <h1>{shown.name || flowKey}</h1>
        <FlowInfoButton open={info} controls="builder-info" onToggle={() => setInfo(!info)} />
        <span className="muted" data-testid="builder-state">
          {version > 0 ? `version ${version}` : 'not published yet'}
          {source === 'draft' && ' · draft'}
          {dirty && ' · unsaved changes'}
        </span>
      </div>
      {info && <FlowInfoCard id="builder-info" bot={bot} flowKey={flowKey} />}
      <div className="builder-toolbar" role="toolbar" aria-label="Flow builder">
        <div className="palette" aria-label="Add a node" role="group">
          {nodeTypes.map((t) => (
            <button
              key={t.type}
              type="button"
              draggable={!readOnly}
              disabled={readOnly}
              data-palette={t.type}
              className={`small pal t-${t.type}`}
              title={`${t.label}: ${t.does}. Drag onto the canvas, or press to add.`}
              aria-label={`Add a ${t.label} node`}
              onDragStart={(e) => {
                e.dataTransfer.setData(dragType, t.type)
                e.dataTransfer.effectAllowed = 'copy'
              }}
              onClick={() => addNode(t.type)}
            >
              + {t.label}
            </button>
          ))}
        </div>
        <div className="tools" role="group" aria-label="Edit">
          <button type="button" className="small" disabled={!canUndo} onClick={undo} aria-keyshortcuts="Control+Z">
            Undo
          </button>
          <button type="button" className="small" disabled={!canRedo} onClick={redo} aria-keyshortcuts="Control+Shift+Z">
            Redo
          </button>
          <button type="button" className="small" disabled={selected.size === 0} onClick={copy} aria-keyshortcuts="Control+C">
            Copy
          </button>
          <button type="button" className="small" disabled={readOnly} onClick={paste} aria-keyshortcuts="Control+V">
            Paste
          </button>
          <button type="button" className="small" disabled={readOnly || selected.size === 0} onClick={duplicate} aria-keyshortcuts="Control+D">
            Duplicate
          </button>
          <button type="button" className="small" disabled={readOnly || (selected.size === 0 && selEdges.size === 0)} onClick={deleteSelection} aria-keyshortcuts="Delete">
            Delete
          </button>
          <button type="button" className="small" disabled={readOnly} onClick={() => void runLayout()}>
            Auto-layout
          </button>
          <button type="button" className="small" onClick={fit}>
            Fit view
          </button>
          <span className="help-wrap">
            <button type="button" className="small" aria-expanded={help} aria-controls="builder-help" onClick={() => setHelp(!help)}>
              Shortcuts
            </button>
            {help && <Shortcuts onClose={() => setHelp(false)} />}
          </span>
        </div>
        <div className="tools" role="group" aria-label="Save">
          <button type="button" className="small" disabled={readOnly || act.busy} onClick={() => void saveDraft()}>
            Save draft
          </button>
          <button type="button" className="small primary" disabled={readOnly || act.busy} onClick={() => void publish()}>
            Publish
          </button>
          {source === 'draft' && version > 0 && (
            <button type="button" className="small" disabled={act.busy} onClick={() => void discardDraft()}>
              Discard draft
            </button>
          )}
        </div>
      </div>
      {said && (
        <p className={`alert ${said.kind}`} role={said.kind === 'error' ? 'alert' : 'status'} data-testid="builder-said">
          {said.text}
        </p>
      )}
      <ErrorNote error={act.error} />
      {viewing && (
        <div className="alert warn viewing" role="status" data-testid="viewing">
          Version {viewing.version}, read-only.{' '}
          <button type="button" className="small" onClick={() => setViewing(null)}>
            Back to editing
          </button>{' '}
          <button type="button" className="small" disabled={act.busy} onClick={() => void restoreVersion(viewing.version)}>
            Restore version {viewing.version} as a new version
          </button>
        </div>
      )}
      <div className="builder-main">
        <div
          className={`builder-canvas${readOnly ? ' read-only' : ''}`}
          onDragOver={onDragOver}
          onDrop={onDrop}
          data-testid="canvas"
          data-layout-ms={layoutMs}
          data-nodes={shown.nodes.length}
        >
          {shown.nodes.length === 0 && !readOnly && (
            <p className="canvas-empty muted">Drag a node here from the palette above, or press one of its buttons.</p>
          )}
          <ReactFlow<StepNodeType>
            nodes={rfNodes}
            edges={rfEdges}
            nodeTypes={rfNodeTypes}
            onNodesChange={onNodesChange}
            onEdgesChange={onEdgesChange}
            onConnect={onConnect}
            onNodeDragStart={() => {
              dragTag.current = `drag${Date.now()}`
            }}
            onNodeDragStop={() => {
              dragTag.current = ''
            }}
            onMoveEnd={(_, vp: RFViewport) => {
              viewport.current = vp
            }}
            defaultViewport={first.viewport ?? undefined}
            nodesDraggable={!readOnly}
            nodesConnectable={!readOnly}
            deleteKeyCode={null}
            multiSelectionKeyCode="Shift"
            selectionKeyCode="Shift"
            minZoom={0.05}
          >
            <Background />
            <Controls showInteractive={false} />
            <MiniMap pannable zoomable ariaLabel="Overview of the flow" style={{ width: 150, height: 100 }} />
          </ReactFlow>
        </div>
        <aside className="builder-side" aria-label="Details">
          <div role="tablist" aria-label="Panels" className="tabs">
            {(
              [
                ['node', one ? `Node ${one.id}` : 'Node'],
                ['problems', `Problems (${problems.length})`],
                ['versions', 'Versions'],
                ['run', 'Run'],
                ['json', 'Import / export'],
              ] as [Tab, string][]
            ).map(([t, label]) => (
              <button
                key={t}
                type="button"
                role="tab"
                id={`tab-${t}`}
                aria-selected={tab === t}
                aria-controls={`panel-${t}`}
                className={`small${tab === t ? ' on' : ''}`}
                onClick={() => setTab(t)}
              >
                {label}
              </button>
            ))}
          </div>
          <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`} className="panel">
            {tab === 'node' &&
              (one ? (
                <NodePanel
                  key={one.id}
                  bot={bot}
                  flowKey={flowKey}
                  node={one}
                  start={shown.start === one.id}
                  readOnly={readOnly}
                  names={names}
                  ids={ids}
                  flows={initial.flows}
                  publishedHttp={publishedHttp as HttpNode | undefined}
                  samples={pairsObject(samples)}
                  onChange={(n, tag) => changeNode(one.id, n, tag)}
                  onRename={(to) => renameNode(one.id, to)}
                  onStart={() => commit({ ...modelRef.current, start: one.id })}
                />
              ) : (
                <FlowFields model={shown} readOnly={readOnly} count={sel.length} onName={(name) => commit({ ...modelRef.current, name }, 'flow-name')} />
              ))}
            {tab === 'problems' && <ProblemList problems={problems} checking={checking} onFocus={focusNode} />}
            {tab === 'versions' && (
              <Loaded state={versions.state} what="versions" retry={versions.reload}>
                {(vs) => <VersionList versions={vs} current={version} busy={act.busy} onOpen={(v) => void openVersion(v)} onRestore={(v) => void restoreVersion(v)} />}
              </Loaded>
            )}
            {tab === 'run' && (
              <RunPanel bot={bot} flowKey={flowKey} published={version > 0} samples={samples} setSamples={setSamples} lit={lit} setLit={setLit} />
            )}
            {tab === 'json' && <ImportExport flowKey={flowKey} docText={docText} onImport={importText} readOnly={readOnly} />}
          </div>
        </aside>
      </div>
      <datalist id="builder-attributes">
        {names.map((n) => (
          <option key={n} value={n} />
        ))}
      </datalist>
    </div>
  )
}

function Shortcuts({ onClose }: { onClose: () => void }) {
  const ref = useRef<HTMLDivElement>(null)
  useEffect(() => ref.current?.focus(), [])
  return (
    <div id="builder-help" className="popover" role="dialog" aria-label="Keyboard shortcuts" tabIndex={-1} ref={ref}>
      <table>
        <tbody>
          {[
            ['Ctrl+Z', 'undo'],
            ['Ctrl+Shift+Z or Ctrl+Y', 'redo'],
            ['Ctrl+C', 'copy the selected nodes'],
            ['Ctrl+V', 'paste them'],
            ['Ctrl+D', 'duplicate the selected nodes'],
            ['Delete or Backspace', 'delete the selected nodes (with their edges) and edges'],
            ['Shift+click, Shift+drag', 'select several nodes'],
            ['Tab, Enter', 'go through the nodes; Enter selects one and opens its form'],
            ['Arrow keys', 'move the selected nodes'],
          ].map(([k, what]) => (
            <tr key={k}>
              <th scope="row">
                <kbd>{k}</kbd>
              </th>
              <td>{what}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="muted">On a Mac, Cmd works as Ctrl. Connect nodes by dragging from a way out (right) to a node, or with the node's form.</p>
      <button type="button" className="small" onClick={onClose}>
        Close
      </button>
    </div>
  )
}

function FlowFields({ model, readOnly, count, onName }: { model: Model; readOnly: boolean; count: number; onName: (n: string) => void }) {
  return (
    <fieldset disabled={readOnly} className="form-stack">
      <p className="muted">{count > 1 ? `${count} nodes selected.` : 'Select a node to edit it.'}</p>
      <label>
        Flow name
        <input value={model.name} onChange={(e) => onName(e.target.value)} />
      </label>
      <p>
        Start: <code>{model.start || '(none)'}</code> · {model.nodes.length} node{model.nodes.length === 1 ? '' : 's'}
      </p>
    </fieldset>
  )
}

function NodePanel({
  bot,
  flowKey,
  node,
  start,
  readOnly,
  names,
  ids,
  flows,
  publishedHttp,
  samples,
  onChange,
  onRename,
  onStart,
}: {
  bot: BotCtx
  flowKey: string
  node: DocNode
  start: boolean
  readOnly: boolean
  names: string[]
  ids: string[]
  flows: string[]
  publishedHttp: HttpNode | undefined
  samples: Record<string, string>
  onChange: (n: DocNode, tag: string) => void
  onRename: (to: string) => string
  onStart: () => void
}) {
  const [id, setId] = useState(node.id)
  const [idError, setIdError] = useState('')
  const rename = (e: FormEvent) => {
    e.preventDefault()
    setIdError(onRename(id.trim()))
  }
  return (
    <div className="form-stack" data-testid="node-panel">
      <h2>
        {node.type} <code>{node.id}</code>
      </h2>
      <fieldset disabled={readOnly} className="form-stack">
        <form onSubmit={rename} className="row">
          <label>
            Node id
            <input value={id} onChange={(e) => setId(e.target.value)} onBlur={rename} aria-invalid={idError !== ''} />
          </label>
          <button type="submit" className="small">
            Rename
          </button>
        </form>
        {idError && (
          <p className="error-text" role="alert">
            {idError}
          </p>
        )}
        {start ? (
          <p className="muted">The flow starts here.</p>
        ) : (
          <button type="button" className="small" onClick={onStart}>
            Start the flow here
          </button>
        )}
        <NodeForm node={node} change={onChange} names={names} ids={ids} flows={flows} />
      </fieldset>
      {node.type === 'http' && (
        <HttpPanel
          bot={bot}
          flowKey={flowKey}
          node={node as unknown as HttpNode}
          published={publishedHttp}
          samples={samples}
          readOnly={readOnly}
          onSave={(save) => onChange({ ...node, save } as DocNode, 'save')}
        />
      )}
    </div>
  )
}

function ProblemList({ problems, checking, onFocus }: { problems: FlowProblem[]; checking: boolean; onFocus: (id: string) => void }) {
  return (
    <div data-testid="problem-list">
      <p className="muted" aria-live="polite">
        {checking ? 'Checking…' : problems.length === 0 ? 'No problems: the flow can be published.' : `${problems.length} problem${problems.length === 1 ? '' : 's'} from the validator.`}
      </p>
      <ul className="problems">
        {problems.map((p, i) => (
          <li key={i}>
            {p.node ? (
              <button type="button" className="link" onClick={() => onFocus(p.node)}>
                {p.node}
              </button>
            ) : (
              <strong>flow</strong>
            )}
            : {p.field ? `${p.field}: ` : ''}
            {p.message}
          </li>
        ))}
      </ul>
    </div>
  )
}

function VersionList({
  versions,
  current,
  busy,
  onOpen,
  onRestore,
}: {
  versions: FlowVersion[]
  current: number
  busy: boolean
  onOpen: (v: number) => void
  onRestore: (v: number) => void
}) {
  if (versions.length === 0) return <p className="muted">Not published yet: publishing makes version 1.</p>
  return (
    <div className="table-wrap">
      <table data-testid="versions">
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">Published</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {[...versions]
            .sort((a, b) => b.version - a.version)
            .map((v) => (
              <tr key={v.version}>
                <td>
                  {v.version}
                  {v.version === current && <span className="muted"> (current)</span>}
                </td>
                <td>
                  <Time at={v.created_at} short /> by {v.published_by || '—'}
                </td>
                <td className="row">
                  <button type="button" className="small" disabled={busy} onClick={() => onOpen(v.version)}>
                    Open v{v.version}
                  </button>
                  {v.version !== current && (
                    <button type="button" className="small" disabled={busy} onClick={() => onRestore(v.version)}>
                      Restore v{v.version}
                    </button>
                  )}
                </td>
              </tr>
            ))}
        </tbody>
      </table>
    </div>
  )
}

const ended = (r: Run) => r.status === 'completed' || r.status === 'failed'

/**
 * "Run from here": triggers the published flow for a sandbox phone, or follows that
 * phone's runs (started anywhere: the platform API, a broadcast), and lights the path up
 * on the canvas step by step from the run's trace, polling it until it ends.
 */
function RunPanel({
  bot,
  flowKey,
  published,
  samples,
  setSamples,
  lit,
  setLit,
}: {
  bot: BotCtx
  flowKey: string
  published: boolean
  samples: [string, string][]
  setSamples: (s: [string, string][]) => void
  lit: Lit | null
  setLit: (f: (l: Lit | null) => Lit | null) => void
}) {
  const [phone, setPhone] = useState('')
  const [channel, setChannel] = useState('whatsapp')
  const [follow, setFollow] = useState(false)
  const [runId, setRunId] = useState('')
  const act = useAction()
  const digits = phone.replace(/\D/g, '')

  const submit = (e: FormEvent) => {
    e.preventDefault()
    void act.run(async () => {
      const r = await bot.api.start(flowKey, { ...pairsObject(samples), 'user.channel': channel, 'user.phone_no': digits })
      setRunId(r.run_id)
      setLit(() => ({ run: { ...r, steps: r.steps ?? [] }, shown: 0 }))
    })
  }

  // Polls the run (and, when following, the phone's newest run of this flow).
  const tick = async () => {
    try {
      let id = runId
      if (follow && digits) {
        const page = await bot.api.runs({ flow: flowKey, user: digits }, 1)
        const newest = page.items[0]
        if (newest && newest.run_id !== id) {
          id = newest.run_id
          setRunId(id)
        }
      }
      if (!id) return
      const r = await bot.api.run(id)
      setLit((l) => ({ run: r, shown: l && l.run.run_id === r.run_id ? l.shown : 0 }))
    } catch (e) {
      act.setError(toApiError(e))
    }
  }
  const polling = follow || (runId !== '' && !(lit && ended(lit.run)))
  useInterval(() => void tick(), 800, polling)
  // One more step lit every moment, so the path is seen as it was taken.
  const more = lit !== null && lit.shown < lit.run.steps.length
  useInterval(() => setLit((l) => (l ? { ...l, shown: Math.min(l.shown + 1, l.run.steps.length) } : l)), 350, more)

  const run = lit?.run
  return (
    <div className="form-stack">
      <form className="form-stack" onSubmit={submit} aria-labelledby="run-title">
        <h2 id="run-title">Run from here</h2>
        {!published && <p className="muted">Publish the flow first: runs use the published version.</p>}
        <TriggerFields phoneLabel="Sandbox phone (with country code)" phone={phone} onPhone={setPhone} channel={channel} onChannel={setChannel} />
        <PairsEditor legend="Sample attributes" pairs={samples} onChange={setSamples} />
        <div className="row">
          <button type="submit" className="primary small" disabled={act.busy || !published}>
            Run from here
          </button>
          <label className="check">
            <input type="checkbox" checked={follow} disabled={!digits} onChange={(e) => setFollow(e.target.checked)} /> Follow this phone's runs
          </label>
          {lit && (
            <button
              type="button"
              className="small"
              onClick={() => {
                setLit(() => null)
                setRunId('')
              }}
            >
              Clear
            </button>
          )}
        </div>
        <ErrorNote error={act.error} />
      </form>
      {run && (
        <div data-testid="run-light" className="card">
          <p>
            <Link to={`${bot.base}/runs/${encodeURIComponent(run.run_id)}`}>Run {run.run_id.slice(0, 12)}</Link> <Badge value={run.status} />{' '}
            {run.waiting_for && <span className="muted">waiting for {run.waiting_for}</span>}
          </p>
          <ol className="run-steps" data-testid="run-steps">
            {run.steps.slice(0, lit?.shown ?? 0).map((s, i) => (
              <li key={i}>
                <code>{s.node}</code> {s.outcome}
                {s.error && <span className="error-text"> · {s.error}</span>}
              </li>
            ))}
          </ol>
        </div>
      )}
    </div>
  )
}

function ImportExport({ flowKey, docText, onImport, readOnly }: { flowKey: string; docText: () => string; onImport: (t: string) => Promise<void>; readOnly: boolean }) {
  const [text, setText] = useState('')
  const [said, setSaid] = useState('')
  const act = useAction()
  const load = (t: string) =>
    act.run(async () => {
      setSaid('')
      try {
        await onImport(t)
      } catch (e) {
        throw new ApiError(0, { code: 0, desc: 'IMPORT', details: `Not a flow document: ${e instanceof Error ? e.message : String(e)}` })
      }
      setSaid('Loaded into the canvas (undo takes it back). Save or publish to keep it.')
    })
  return (
    <div className="form-stack">
      <h2>Export</h2>
      <div className="row">
        <button type="button" className="small" onClick={() => download(`${flowKey}.json`, docText())}>
          Export JSON file
        </button>
        <button type="button" className="small" onClick={() => setText(docText())}>
          Show as text
        </button>
      </div>
      <h2>Import</h2>
      <fieldset disabled={readOnly} className="form-stack">
        <label>
          Flow document file
          <input
            type="file"
            accept=".json,application/json"
            onChange={(e) => {
              const f = e.target.files?.[0]
              if (f) void f.text().then((t) => void load(t))
            }}
          />
        </label>
        <label>
          Flow document (JSON)
          <textarea rows={12} spellCheck={false} value={text} onChange={(e) => setText(e.target.value)} data-testid="json-text" />
        </label>
        <button type="button" className="small" disabled={!text.trim()} onClick={() => void load(text)}>
          Load into the canvas
        </button>
      </fieldset>
      {said && <p role="status">{said}</p>}
      <ErrorNote error={act.error} />
    </div>
  )
}

