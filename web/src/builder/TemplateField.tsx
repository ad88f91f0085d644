// A text field that completes {{attribute}} references: typing "{{" lists the attributes
// the flow knows, narrowed as one types; arrows choose, Enter or Tab inserts.

import { useId, useRef, useState, type KeyboardEvent } from 'react'
import { flushSync } from 'react-dom'

/** The reference being typed at the caret: where its name starts and what it has so far. */
function openReference(text: string, caret: number): { from: number; partial: string } | null {
  const before = text.slice(0, caret)
  const at = before.lastIndexOf('{{')
  if (at < 0) return null
  const partial = before.slice(at + 2)
  if (partial.includes('}}') || /\s/.test(partial.trim()) || partial.length > 100) return null
  return { from: at + 2, partial: partial.trimStart() }
}

export function TemplateField({
  label,
  value,
  onChange,
  names,
  multiline,
  required,
  placeholder,
}: {
  label: string
  value: string
  onChange: (v: string) => void
  names: string[]
  multiline?: boolean
  required?: boolean
  placeholder?: string
}) {
  const id = useId()
  const ref = useRef<HTMLInputElement & HTMLTextAreaElement>(null)
  const [ref0, setRef0] = useState<{ from: number; partial: string } | null>(null)
  const [active, setActive] = useState(0)
  const options = ref0 ? names.filter((n) => n.toLowerCase().includes(ref0.partial.toLowerCase())).slice(0, 12) : []
  const open = options.length > 0

  const look = () => {
    const el = ref.current
    if (!el) return
    setRef0(openReference(el.value, el.selectionStart ?? el.value.length))
    setActive(0)
  }

  const insert = (name: string) => {
    const el = ref.current
    if (!el || !ref0) return
    const caret = el.selectionStart ?? value.length
    const after = value.slice(caret)
    const close = after.startsWith('}}') ? '' : '}}'
    const next = value.slice(0, ref0.from) + name + close + after
    // The new value is rendered and the caret placed before this event returns: placed
    // a frame later, it would pull back keys typed meanwhile to where the name ended.
    flushSync(() => {
      onChange(next)
      setRef0(null)
    })
    const pos = ref0.from + name.length + 2
    el.focus()
    el.setSelectionRange(pos, pos)
  }

  const key = (e: KeyboardEvent) => {
    if (!open) return
    if (e.key === 'ArrowDown') {
      e.preventDefault()
      setActive((active + 1) % options.length)
    } else if (e.key === 'ArrowUp') {
      e.preventDefault()
      setActive((active - 1 + options.length) % options.length)
    } else if (e.key === 'Enter' || e.key === 'Tab') {
      e.preventDefault()
      insert(options[active] ?? '')
    } else if (e.key === 'Escape') {
      e.preventDefault()
      setRef0(null)
    }
  }

  const common = {
    ref,
    value,
    required,
    placeholder,
    spellCheck: false,
    role: 'combobox',
    'aria-autocomplete': 'list' as const,
    'aria-expanded': open,
    'aria-controls': `${id}-list`,
    'aria-activedescendant': open ? `${id}-o${active}` : undefined,
    onKeyDown: key,
    onKeyUp: (e: KeyboardEvent) => {
      if (!['ArrowDown', 'ArrowUp', 'Enter', 'Tab', 'Escape'].includes(e.key)) look()
    },
    onClick: look,
    onBlur: () => window.setTimeout(() => setRef0(null), 150),
  }
  return (
    <div className="template-field">
      <label htmlFor={`${id}-f`}>{label}</label>
      {multiline ? (
        <textarea id={`${id}-f`} rows={3} {...common} onChange={(e) => onChange(e.target.value)} />
      ) : (
        <input id={`${id}-f`} {...common} onChange={(e) => onChange(e.target.value)} />
      )}
      <ul id={`${id}-list`} role="listbox" className="suggest" hidden={!open} aria-label="Attribute suggestions">
        {options.map((o, i) => (
          <li
            key={o}
            id={`${id}-o${i}`}
            role="option"
            aria-selected={i === active}
            onMouseDown={(e) => {
              e.preventDefault()
              insert(o)
            }}
          >
            {o}
          </li>
        ))}
      </ul>
    </div>
  )
}
