// Automatic layout with elkjs (layered, left to right, the way a flow reads). The
// bundled build runs in the page: a flow of a few hundred nodes lays out in well under
// a second, so a worker is not worth its extra file.

import ELK from 'elkjs/lib/elk.bundled.js'
import { estimateSize, exits, type DocNode, type Position } from './model'

const elk = new ELK()

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
      // Fewer crossing-minimisation passes: a flow of hundreds of nodes stays well under
      // a second, and flows read much the same.
      'elk.layered.thoroughness': '2',
      'elk.separateConnectedComponents': 'true',
    },
    children: nodes.map((n) => ({ id: n.id, ...(measured[n.id] ?? estimateSize(n)) })),
    edges,
  })
  const out: Record<string, Position> = {}
  for (const c of graph.children ?? []) out[c.id] = { x: c.x ?? 0, y: c.y ?? 0 }
  return out
}
