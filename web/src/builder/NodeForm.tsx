// The side panel's form for one node: a form per node type covering every member of the
// flow document. Empty optional members are left out of the node, as the document
// format asks, so what is exported is what one would write by hand.

import { useEffect, useState, type ReactNode } from 'react'
import type { Branch, Condition, DocNode } from './model'
import { TemplateField } from './TemplateField'

export type Change = (n: DocNode, tag: string) => void

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === '') return true
  if (Array.isArray(v)) return v.length === 0
  if (typeof v === 'object') return Object.keys(v as object).length === 0
  return false
}

/** obj with key set to v, or without key when v is empty. */
function put<T extends Record<string, unknown>>(obj: T, key: string, v: unknown): T {
  const out: Record<string, unknown> = { ...obj }
  if (isEmpty(v)) delete out[key]
  else out[key] = v
  return out as T
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v)
}

interface Ctx {
  node: DocNode
  change: Change
  names: string[]
  ids: string[]
}

/** A select of the node a route goes to ("" for none). */
function RouteSelect({ label, value, ids, self, onChange }: { label: string; value: string; ids: string[]; self: string; onChange: (v: string) => void }) {
  const known = ids.includes(value) || value === ''
  return (
    <label>
      {label}
      <select value={value} onChange={(e) => onChange(e.target.value)}>
        <option value="">(none: the run ends)</option>
        {!known && <option value={value}>{value} (missing)</option>}
        {ids
          .filter((i) => i !== self)
          .map((i) => (
            <option key={i} value={i}>
              {i}
            </option>
          ))}
      </select>
    </label>
  )
}

/** A JSON member edited as text; applied when it parses. */
function JsonField({ label, value, onChange }: { label: string; value: unknown; onChange: (v: unknown) => void }) {
  const [text, setText] = useState(() => (value === undefined ? '' : JSON.stringify(value, null, 2)))
  const [bad, setBad] = useState('')
  return (
    <label>
      {label}
      <textarea
        rows={4}
        spellCheck={false}
        value={text}
        aria-invalid={bad !== ''}
        onChange={(e) => {
          setText(e.target.value)
          if (!e.target.value.trim()) {
            setBad('')
            onChange(undefined)
            return
          }
          try {
            onChange(JSON.parse(e.target.value))
            setBad('')
          } catch {
            setBad('Not valid JSON yet: not applied.')
          }
        }}
      />
      {bad && <span className="error-text">{bad}</span>}
    </label>
  )
}

/** Rows of name/value text pairs (an object of strings). */
function MapEditor({
  legend,
  value,
  onChange,
  names,
  keyLabel,
  valueLabel,
  templated = true,
}: {
  legend: string
  value: Record<string, string>
  onChange: (v: Record<string, string>) => void
  names: string[]
  keyLabel: string
  valueLabel: string
  templated?: boolean
}) {
  // Rows are kept while typed, so that a row with an empty name does not vanish.
  const [rows, setRows] = useState<[string, string][]>(() => Object.entries(value))
  useEffect(() => {
    const cur = Object.fromEntries(rows.filter(([k]) => k))
    if (JSON.stringify(cur) !== JSON.stringify(value)) setRows(Object.entries(value))
  }, [value])
  const emit = (r: [string, string][]) => {
    setRows(r)
    const out: Record<string, string> = {}
    for (const [k, v] of r) if (k) out[k] = v
    onChange(out)
  }
  return (
    <fieldset className="pairs">
      <legend>{legend}</legend>
      {rows.map(([k, v], i) => (
        <div className="pair" key={i}>
          <label>
            {keyLabel} {i + 1}
            <input value={k} onChange={(e) => emit(rows.map((r, j) => (j === i ? [e.target.value, r[1]] : r)))} />
          </label>
          {templated ? (
            <TemplateField
              label={`${valueLabel} ${i + 1}`}
              value={v}
              names={names}
              onChange={(x) => emit(rows.map((r, j) => (j === i ? [r[0], x] : r)))}
            />
          ) : (
            <label>
              {valueLabel} {i + 1}
              <input value={v} onChange={(e) => emit(rows.map((r, j) => (j === i ? [r[0], e.target.value] : r)))} />
            </label>
          )}
          <button type="button" className="small" aria-label={`Remove ${legend} ${i + 1}`} onClick={() => emit(rows.filter((_, j) => j !== i))}>
            Remove
          </button>
        </div>
      ))}
      <button type="button" className="small" onClick={() => setRows([...rows, ['', '']])}>
        Add to {legend.toLowerCase()}
      </button>
    </fieldset>
  )
}

/** A comma-separated list of strings. */
function ListField({ label, value, onChange }: { label: string; value: string[]; onChange: (v: string[]) => void }) {
  const [text, setText] = useState(value.join(', '))
  useEffect(() => {
    const cur = text.split(',').map((s) => s.trim()).filter(Boolean)
    if (cur.join(',') !== value.join(',')) setText(value.join(', '))
  }, [value])
  return (
    <label>
      {label}
      <input
        value={text}
        onChange={(e) => {
          setText(e.target.value)
          onChange(e.target.value.split(',').map((s) => s.trim()).filter(Boolean))
        }}
      />
    </label>
  )
}

interface ButtonDef {
  id?: string
  title?: string
}

function ButtonsEditor({ legend, value, onChange }: { legend: string; value: ButtonDef[]; onChange: (v: ButtonDef[]) => void }) {
  const set = (i: number, k: 'id' | 'title', v: string) => onChange(value.map((b, j) => (j === i ? put({ ...b }, k, v) : b)))
  return (
    <fieldset className="pairs">
      <legend>{legend}</legend>
      {value.map((b, i) => (
        <div className="pair" key={i}>
          <label>
            Button {i + 1} title
            <input value={str(b.title)} onChange={(e) => set(i, 'title', e.target.value)} />
          </label>
          <label>
            Button {i + 1} id
            <input value={str(b.id)} placeholder="(the title)" onChange={(e) => set(i, 'id', e.target.value)} />
          </label>
          <button type="button" className="small" aria-label={`Remove button ${i + 1}`} onClick={() => onChange(value.filter((_, j) => j !== i))}>
            Remove
          </button>
        </div>
      ))}
      {value.length < 10 && (
        <button type="button" className="small" onClick={() => onChange([...value, { title: '' }])}>
          Add a button
        </button>
      )}
    </fieldset>
  )
}

function Optional({ title, on, onToggle, children }: { title: string; on: boolean; onToggle: (on: boolean) => void; children: ReactNode }) {
  return (
    <fieldset className="optional">
      <legend>
        <label className="check">
          <input type="checkbox" checked={on} onChange={(e) => onToggle(e.target.checked)} /> {title}
        </label>
      </legend>
      {on && children}
    </fieldset>
  )
}

/** What a message or input node sends: text, buttons, media, card, template. */
function ContentFields({ node, change, names }: Ctx) {
  const media = node.media as Record<string, unknown> | undefined
  const card = node.card as Record<string, unknown> | undefined
  const tpl = node.template as Record<string, unknown> | undefined
  const lang = (tpl?.language as Record<string, unknown> | undefined) ?? {}
  return (
    <>
      <TemplateField
        label={node.type === 'input' ? 'Prompt text' : 'Text'}
        multiline
        value={str(node.text)}
        names={names}
        onChange={(v) => change(put(node, 'text', v), 'text')}
      />
      <ButtonsEditor legend="Quick-reply buttons" value={(node.buttons as ButtonDef[] | undefined) ?? []} onChange={(v) => change(put(node, 'buttons', v), 'buttons')} />
      <Optional title="Media" on={!!media} onToggle={(on) => change(put(node, 'media', on ? { type: 'image', url: '' } : undefined), 'media')}>
        <label>
          Media type
          <select value={str(media?.type)} onChange={(e) => change({ ...node, media: { ...media, type: e.target.value } }, 'media')}>
            {['image', 'video', 'audio', 'document'].map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </label>
        <TemplateField label="Media URL" value={str(media?.url)} names={names} onChange={(v) => change({ ...node, media: { ...media, url: v } }, 'media.url')} />
        <TemplateField label="Caption" value={str(media?.caption)} names={names} onChange={(v) => change({ ...node, media: put(media ?? {}, 'caption', v) }, 'media.caption')} />
        <label>
          File name
          <input value={str(media?.filename)} onChange={(e) => change({ ...node, media: put(media ?? {}, 'filename', e.target.value) }, 'media.filename')} />
        </label>
      </Optional>
      <Optional title="Rich card" on={!!card} onToggle={(on) => change(put(node, 'card', on ? { title: '' } : undefined), 'card')}>
        <TemplateField label="Card title" value={str(card?.title)} names={names} onChange={(v) => change({ ...node, card: put(card ?? {}, 'title', v) }, 'card.title')} />
        <TemplateField
          label="Card description"
          multiline
          value={str(card?.description)}
          names={names}
          onChange={(v) => change({ ...node, card: put(card ?? {}, 'description', v) }, 'card.description')}
        />
        <TemplateField label="Card media URL" value={str(card?.media_url)} names={names} onChange={(v) => change({ ...node, card: put(card ?? {}, 'media_url', v) }, 'card.media_url')} />
        <ButtonsEditor legend="Card buttons" value={(card?.buttons as ButtonDef[] | undefined) ?? []} onChange={(v) => change({ ...node, card: put(card ?? {}, 'buttons', v) }, 'card.buttons')} />
      </Optional>
      <Optional
        title="WhatsApp template"
        on={!!tpl}
        onToggle={(on) => change(put(node, 'template', on ? { name: '', language: { code: 'en' } } : undefined), 'template')}
      >
        <label>
          Template name
          <input value={str(tpl?.name)} onChange={(e) => change({ ...node, template: { ...tpl, name: e.target.value } }, 'template.name')} />
        </label>
        <label>
          Namespace
          <input value={str(tpl?.namespace)} onChange={(e) => change({ ...node, template: put(tpl ?? {}, 'namespace', e.target.value) }, 'template.namespace')} />
        </label>
        <label>
          Language code
          <input value={str(lang.code)} onChange={(e) => change({ ...node, template: { ...tpl, language: { ...lang, code: e.target.value } } }, 'template.lang')} />
        </label>
        <label>
          Language policy
          <input value={str(lang.policy)} onChange={(e) => change({ ...node, template: { ...tpl, language: put(lang, 'policy', e.target.value) } }, 'template.policy')} />
        </label>
        <JsonField label="Components (JSON list)" value={tpl?.components} onChange={(v) => change({ ...node, template: put(tpl ?? {}, 'components', v) }, 'template.components')} />
      </Optional>
    </>
  )
}

const ops = ['eq', 'ne', 'contains', 'starts_with', 'gt', 'gte', 'lt', 'lte', 'exists', 'not_exists', 'matches', 'in']

/** True for a condition the form edits: one test, or one all/any group of tests. */
function flat(c: Condition): boolean {
  const test = (x: Condition) => !x.all && !x.any
  if (c.all) return !c.any && c.all.every(test)
  if (c.any) return c.any.every(test)
  return true
}

function TestRow({ label, c, names, onChange, onRemove }: { label: string; c: Condition; names: string[]; onChange: (c: Condition) => void; onRemove?: () => void }) {
  const noValue = c.op === 'exists' || c.op === 'not_exists'
  const valueText = Array.isArray(c.value) ? c.value.map(String).join(', ') : c.value === undefined ? '' : String(c.value)
  return (
    <div className="cond-row">
      <label>
        {label} attribute
        <input list="builder-attributes" value={str(c.attribute)} onChange={(e) => onChange({ ...c, attribute: e.target.value })} />
      </label>
      <label>
        {label} operator
        <select
          value={str(c.op)}
          onChange={(e) => {
            const op = e.target.value
            const next: Condition = { ...c, op }
            if (op === 'exists' || op === 'not_exists') delete next.value
            else if (op === 'in') next.value = valueText ? valueText.split(',').map((s) => s.trim()) : []
            else if (Array.isArray(c.value)) next.value = c.value.join(', ')
            else if (c.value === undefined) next.value = ''
            onChange(next)
          }}
        >
          {ops.map((o) => (
            <option key={o}>{o}</option>
          ))}
        </select>
      </label>
      {!noValue && (
        <TemplateField
          label={`${label} value${c.op === 'in' ? ' (comma-separated)' : ''}`}
          value={valueText}
          names={names}
          onChange={(v) => onChange({ ...c, value: c.op === 'in' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v })}
        />
      )}
      {onRemove && (
        <button type="button" className="small" onClick={onRemove} aria-label={`Remove ${label}`}>
          Remove
        </button>
      )}
    </div>
  )
}

function ConditionEditor({ label, c, names, onChange }: { label: string; c: Condition; names: string[]; onChange: (c: Condition) => void }) {
  if (!flat(c)) return <JsonField label={`${label} condition (JSON, nested groups)`} value={c} onChange={(v) => onChange((v ?? {}) as Condition)} />
  const mode = c.all ? 'all' : c.any ? 'any' : 'one'
  const tests = c.all ?? c.any ?? [c]
  const setTests = (ts: Condition[]) => onChange(mode === 'one' ? (ts[0] ?? {}) : { [mode]: ts })
  return (
    <div className="cond">
      <label>
        {label} matches
        <select
          value={mode}
          onChange={(e) => {
            const m = e.target.value
            onChange(m === 'one' ? (tests[0] ?? {}) : { [m]: tests })
          }}
        >
          <option value="all">all of these tests</option>
          <option value="any">any of these tests</option>
          <option value="one">this one test</option>
        </select>
      </label>
      {tests.map((t, i) => (
        <TestRow
          key={i}
          label={`${label} test ${i + 1}`}
          c={t}
          names={names}
          onChange={(x) => setTests(tests.map((y, j) => (j === i ? x : y)))}
          onRemove={mode !== 'one' && tests.length > 1 ? () => setTests(tests.filter((_, j) => j !== i)) : undefined}
        />
      ))}
      {mode !== 'one' && (
        <button type="button" className="small" onClick={() => setTests([...tests, { attribute: '', op: 'eq', value: '' }])}>
          Add a test to {label.toLowerCase()}
        </button>
      )}
    </div>
  )
}

function DecisionFields({ node, change, names, ids }: Ctx) {
  const bs = (node.branches as Branch[] | undefined) ?? []
  const setB = (i: number, b: Branch, tag: string) => change({ ...node, branches: bs.map((x, j) => (j === i ? b : x)) }, tag)
  return (
    <>
      {bs.map((b, i) => (
        <fieldset key={i} className="branch">
          <legend>Branch {i + 1}</legend>
          <ConditionEditor label={`Branch ${i + 1}`} c={b.when ?? {}} names={names} onChange={(c) => setB(i, { ...b, when: c }, `b${i}.when`)} />
          <RouteSelect label={`Branch ${i + 1} goes to`} value={str(b.next)} ids={ids} self={node.id} onChange={(v) => setB(i, put({ ...b }, 'next', v), `b${i}.next`)} />
          <button type="button" className="small" onClick={() => change({ ...node, branches: bs.filter((_, j) => j !== i) }, 'branches')}>
            Remove branch {i + 1}
          </button>
        </fieldset>
      ))}
      <button
        type="button"
        className="small"
        onClick={() => change({ ...node, branches: [...bs, { when: { all: [{ attribute: '', op: 'eq', value: '' }] } }] }, 'branches')}
      >
        Add a branch
      </button>
      <RouteSelect label="Else goes to" value={str(node.else)} ids={ids} self={node.id} onChange={(v) => change(put(node, 'else', v), 'else')} />
    </>
  )
}

const methods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']

function HttpFields({ node, change, names, ids }: Ctx) {
  const headers = (node.headers as Record<string, string> | undefined) ?? {}
  const secret = (node.secret_headers as string[] | undefined) ?? []
  const body = node.body as Record<string, unknown> | undefined
  const mode = str(body?.mode) || 'none'
  return (
    <>
      <label>
        Name
        <input value={str(node.name)} onChange={(e) => change(put(node, 'name', e.target.value), 'name')} />
      </label>
      <label>
        Method
        <select value={str(node.method) || 'GET'} onChange={(e) => change({ ...node, method: e.target.value }, 'method')}>
          {methods.map((m) => (
            <option key={m}>{m}</option>
          ))}
        </select>
      </label>
      <TemplateField label="URL" value={str(node.url)} names={names} onChange={(v) => change({ ...node, url: v }, 'url')} />
      <MapEditor
        legend="Headers"
        keyLabel="Header"
        valueLabel="Header value"
        value={headers}
        names={names}
        onChange={(v) => {
          const kept = secret.filter((s) => Object.keys(v).some((h) => h.toLowerCase() === s.toLowerCase()))
          change(put(put(node, 'headers', v), 'secret_headers', kept), 'headers')
        }}
      />
      {Object.keys(headers).length > 0 && (
        <fieldset>
          <legend>Secret headers (stored encrypted, exported redacted)</legend>
          {Object.keys(headers).map((h) => (
            <label key={h} className="check">
              <input
                type="checkbox"
                checked={secret.some((s) => s.toLowerCase() === h.toLowerCase())}
                onChange={(e) =>
                  change(put(node, 'secret_headers', e.target.checked ? [...secret, h] : secret.filter((s) => s.toLowerCase() !== h.toLowerCase())), 'secret')
                }
              />{' '}
              {h} is a secret
            </label>
          ))}
        </fieldset>
      )}
      <label>
        Body mode
        <select
          value={mode}
          onChange={(e) => change(put(node, 'body', e.target.value === 'none' && !body ? undefined : { mode: e.target.value }), 'body.mode')}
        >
          <option value="none">none</option>
          <option value="query">query (form fields)</option>
          <option value="json">json</option>
          <option value="raw">raw</option>
        </select>
      </label>
      {(mode === 'json' || mode === 'raw') && (
        <TemplateField label="Body content" multiline value={str(body?.content)} names={names} onChange={(v) => change({ ...node, body: put(body ?? { mode }, 'content', v) }, 'body.content')} />
      )}
      {mode === 'raw' && (
        <label>
          Content type
          <input value={str(body?.content_type)} placeholder="text/plain" onChange={(e) => change({ ...node, body: put(body ?? { mode }, 'content_type', e.target.value) }, 'body.ct')} />
        </label>
      )}
      {mode === 'query' && (
        <MapEditor
          legend="Form fields"
          keyLabel="Field"
          valueLabel="Field value"
          value={(body?.fields as Record<string, string> | undefined) ?? {}}
          names={names}
          onChange={(v) => change({ ...node, body: put(body ?? { mode }, 'fields', v) }, 'body.fields')}
        />
      )}
      <MapEditor
        legend="Save (attribute ← response path)"
        keyLabel="Attribute"
        valueLabel="Response path"
        templated={false}
        value={(node.save as Record<string, string> | undefined) ?? {}}
        names={names}
        onChange={(v) => change(put(node, 'save', v), 'save')}
      />
      <label>
        When a call fails
        <select
          value={str(node.on_failure)}
          onChange={(e) => {
            const n = put(node, 'on_failure', e.target.value)
            // A run that stops on failure has no failure route.
            change(e.target.value === 'stop' ? put(n, 'on_failure_next', '') : n, 'on_failure')
          }}
        >
          <option value="">(default: continue)</option>
          <option value="continue">continue</option>
          <option value="stop">stop the run</option>
        </select>
      </label>
      <label>
        Timeout (seconds, at most 60)
        <input
          type="number"
          min={1}
          max={60}
          value={str(node.timeout_seconds)}
          onChange={(e) => change(put(node, 'timeout_seconds', e.target.value ? Number(e.target.value) : undefined), 'timeout')}
        />
      </label>
      <ListField label="Alert emails (comma-separated)" value={(node.alert_emails as string[] | undefined) ?? []} onChange={(v) => change(put(node, 'alert_emails', v), 'alerts')} />
      <RouteSelect label="Next (on success)" value={str(node.next)} ids={ids} self={node.id} onChange={(v) => change(put(node, 'next', v), 'next')} />
      {node.on_failure !== 'stop' && (
        <RouteSelect
          label="A failed call goes to (else next)"
          value={str(node.on_failure_next)}
          ids={ids}
          self={node.id}
          onChange={(v) => change(put(node, 'on_failure_next', v), 'on_failure_next')}
        />
      )}
    </>
  )
}

/** The form of a node of any type. */
export function NodeForm({ node, change, names, ids, flows }: Ctx & { flows: string[] }) {
  const ctx = { node, change, names, ids }
  switch (node.type) {
    case 'message':
      return (
        <>
          <ContentFields {...ctx} />
          <RouteSelect label="Next" value={str(node.next)} ids={ids} self={node.id} onChange={(v) => change(put(node, 'next', v), 'next')} />
        </>
      )
    case 'input':
      return (
        <>
          <ContentFields {...ctx} />
          <label>
            Save the reply as
            <input value={str(node.save_as)} onChange={(e) => change(put(node, 'save_as', e.target.value), 'save_as')} />
          </label>
          <label>
            Timeout (seconds)
            <input
              type="number"
              min={1}
              value={str(node.timeout_seconds)}
              onChange={(e) => change(put(node, 'timeout_seconds', e.target.value ? Number(e.target.value) : undefined), 'timeout')}
            />
          </label>
          <RouteSelect label="On reply" value={str(node.next)} ids={ids} self={node.id} onChange={(v) => change(put(node, 'next', v), 'next')} />
          <RouteSelect label="On timeout" value={str(node.on_timeout)} ids={ids} self={node.id} onChange={(v) => change(put(node, 'on_timeout', v), 'on_timeout')} />
        </>
      )
    case 'decision':
      return <DecisionFields {...ctx} />
    case 'set':
      return (
        <>
          <MapEditor
            legend="Set"
            keyLabel="Attribute"
            valueLabel="Value"
            value={(node.set as Record<string, string> | undefined) ?? {}}
            names={names}
            onChange={(v) => change(put(node, 'set', v), 'set')}
          />
          <ListField label="Clear (comma-separated attributes)" value={(node.clear as string[] | undefined) ?? []} onChange={(v) => change(put(node, 'clear', v), 'clear')} />
          <RouteSelect label="Next" value={str(node.next)} ids={ids} self={node.id} onChange={(v) => change(put(node, 'next', v), 'next')} />
        </>
      )
    case 'http':
      return <HttpFields {...ctx} />
    case 'jump':
      return (
        <label>
          Flow to continue in
          <input list="builder-flows" value={str(node.flow)} onChange={(e) => change({ ...node, flow: e.target.value }, 'flow')} />
          <datalist id="builder-flows">
            {flows.map((f) => (
              <option key={f} value={f} />
            ))}
          </datalist>
        </label>
      )
    case 'end':
      return <p className="muted">An end node ends the run. It has nothing to set.</p>
  }
}
