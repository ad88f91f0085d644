// Automatic layout with elkjs (layered, left to right, the way a flow reads), in a web
// worker: loading elkjs (1.4 MB of compiled Java) and warming it up then happen beside
// the page's own loading and drawing instead of blocking them (see BENCHMARKS.md, "Flow
// builder").

import ELK from 'elkjs/lib/elk-api.js'
import elkWorkerUrl from 'elkjs/lib/elk-worker.min.js?url'
import { estimateSize, exits, type DocNode, type Position } from './model'

const elk = new ELK({ workerUrl: elkWorkerUrl })

// A small layout as soon as the builder loads, while its data is still on the way: the
// first layout in a fresh worker is several times slower than the next ones.
void elk
  .layout({
    id: 'warm-up',
    layoutOptions: { 'elk.algorithm': 'layered' },
    children: Array.from({ length: 8 }, (_, i) => ({ id: `w${i}`, width: 100, height: 40 })),
    edges: Array.from({ length: 7 }, (_, i) => ({ id: `e${i}`, sources: [`w${i >> 1}`], targets: [`w${i + 1}`] })),
  })
  .catch(() => undefined)

/** Positions for every node; sizes are the measured ones when known. */
export async function autoLayout(
  nodes: DocNode[],
  measured: Record<string, { width: number; height: number }> = {},
): Promise<Record<string, Position>> {
  const ids = new Set(nodes.map((n) => n.id))
  const edges: { id: string; sources: string[]; targets: string[] }[] = []
  for (const n of nodes) {
    for (const e of exits(n)) {
      if (e.target && ids.has(e.target)) edges.push({ id: `${n.id}:${e.handle}`, sources: [n.id], targets: [e.target] })
    }
  }
  const graph = await elk.layout({
    id: 'root',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': 'RIGHT',
      'elk.layered.spacing.nodeNodeBetweenLayers': '80',
      'elk.spacing.nodeNode': '40',
      'elk.layered.nodePlacement.strategy': 'BRANDES_KOEPF',
      // One crossing-minimisation pass: flows are mostly trees, which read the same, and a
      // 300-node flow lays out about 3× faster than with 2 (4× than the default 7).
      'elk.layered.thoroughness': '1',
      'elk.separateConnectedComponents': 'true',
    },
    children: nodes.map((n) => ({ id: n.id, ...(measured[n.id] ?? estimateSize(n)) })),
    edges,
  })
  const out: Record<string, Position> = {}
  for (const c of graph.children ?? []) out[c.id] = { x: c.x ?? 0, y: c.y ?? 0 }
  return out
}
