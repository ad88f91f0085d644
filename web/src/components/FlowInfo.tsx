import { triggerUrl, type BotCtx } from '../bot'
import { CopyField } from '../ui'

/** The flow key's "i" button, which shows or hides FlowInfoCard (of id `controls`). */
export function FlowInfoButton({ open, controls, onToggle }: { open: boolean; controls: string; onToggle: () => void }) {
  return (
    <button
      type="button"
      className="info-button"
      aria-expanded={open}
      aria-controls={controls}
      aria-label="Flow key and trigger URLs"
      onClick={onToggle}
    >
      i
    </button>
  )
}

/** The flow key and the trigger URLs of both API versions, each with a copy button. */
export function FlowInfoCard({ id, bot, flowKey }: { id: string; bot: BotCtx; flowKey: string }) {
  return (
    <div id={id} className="card">
      <CopyField label="Flow key" value={flowKey} />
      <CopyField label="Trigger URL v1" value={triggerUrl(bot, flowKey, 'v1')} />
      <CopyField label="Trigger URL v2" value={triggerUrl(bot, flowKey, 'v2')} />
    </div>
  )
}
