/** A JSON value as a tree. Leaves whose path is in pickable are buttons (pick maps them). */
export function JsonTree({
  value,
  pickable,
  onPick,
}: {
  value: unknown
  pickable: Set<string>
  onPick: (path: string, value: string) => void
}) {
  return (
    <div className="json-tree" data-testid="json-tree">
      <Node value={value} path="" pickable={pickable} onPick={onPick} />
    </div>
  )
}

function leafText(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v)
}

function Node({
  value,
  path,
  pickable,
  onPick,
}: {
  value: unknown
  path: string
  pickable: Set<string>
  onPick: (path: string, value: string) => void
}) {
  if (value !== null && typeof value === 'object') {
    const entries: [string, unknown][] = Array.isArray(value)
      ? value.map((v, i) => [String(i), v])
      : Object.entries(value as Record<string, unknown>)
    const open = Array.isArray(value) ? '[' : '{'
    const close = Array.isArray(value) ? ']' : '}'
    if (entries.length === 0) return <span className="punct">{open + close}</span>
    return (
      <>
        <span className="punct">{open}</span>
        <ul>
          {entries.map(([k, v]) => {
            const p = path ? `${path}.${k}` : k
            return (
              <li key={k}>
                <span className="key">{Array.isArray(value) ? k : JSON.stringify(k)}</span>
                <span className="punct">: </span>
                <Node value={v} path={p} pickable={pickable} onPick={onPick} />
              </li>
            )
          })}
        </ul>
        <span className="punct">{close}</span>
      </>
    )
  }
  const text = leafText(value)
  if (!pickable.has(path)) return <span className="leaf">{text}</span>
  return (
    <button
      type="button"
      className="leaf pick"
      title={`Map ${path} to an attribute`}
      aria-label={`Map ${path} (${text}) to an attribute`}
      onClick={() => onPick(path, value === null ? '' : String(value))}
    >
      {text}
    </button>
  )
}
