import type { Button, Message, MessageContent } from '../api'
import { Time } from '../ui'

/** A bot message's content, when its payload has the message shape. */
function content(m: Message): MessageContent {
  if (m.sender === 'bot' && m.payload && typeof m.payload === 'object' && !Array.isArray(m.payload)) {
    return m.payload as MessageContent
  }
  return { text: m.text }
}

/** Buttons of a message, its card's included. */
function buttonsOf(c: MessageContent): Button[] {
  return [...(c.buttons ?? []), ...(c.card?.buttons ?? [])]
}

const tickText: Record<string, string> = { pending: '…', sent: '✓', delivered: '✓✓', read: '✓✓' }

function Ticks({ m }: { m: Message }) {
  if (m.status === 'failed') {
    return (
      <span className="ticks t-failed" data-status="failed">
        failed{m.error ? `: ${m.error}` : ''}
      </span>
    )
  }
  const t = tickText[m.status]
  if (!t) return null
  return (
    <span className={`ticks t-${m.status}`} data-status={m.status} title={m.status} aria-label={m.status}>
      {t}
    </span>
  )
}

function Body({ c, m }: { c: MessageContent; m: Message }) {
  return (
    <>
      {c.media && (
        <p className="media">
          <a href={c.media.url} target="_blank" rel="noreferrer noopener">
            {c.media.type}: {c.media.filename || c.media.caption || c.media.url}
          </a>
          {c.media.caption && c.media.filename && <span> {c.media.caption}</span>}
        </p>
      )}
      {c.card && (
        <div className="msg-card">
          {c.card.media_url && (
            <a href={c.card.media_url} target="_blank" rel="noreferrer noopener">
              media
            </a>
          )}
          {c.card.title && <strong>{c.card.title}</strong>}
          {c.card.description && <p>{c.card.description}</p>}
        </div>
      )}
      {c.template && (
        <p className="template">
          Template <code>{c.template.name}</code> ({c.template.language.code})
        </p>
      )}
      {c.text ? <p className="text">{c.text}</p> : !c.media && !c.card && !c.template && <p className="muted">({m.type})</p>}
    </>
  )
}

/**
 * A conversation as chat bubbles: the user on the right, the bot on the left with its
 * buttons and delivery ticks. onButton makes the last bot message's buttons tappable.
 */
export function Transcript({ messages, onButton }: { messages: Message[]; onButton?: (b: Button) => void }) {
  let lastBot = -1
  messages.forEach((m, i) => {
    if (m.sender === 'bot') lastBot = i
  })
  return (
    <ol className="transcript" aria-label="Conversation">
      {messages.map((m, i) => {
        const c = content(m)
        const buttons = buttonsOf(c)
        const tappable = onButton && i === lastBot
        return (
          <li key={m.message_id} className={`msg ${m.sender}`} data-testid="message">
            <div className="bubble">
              <Body c={c} m={m} />
              {buttons.length > 0 && (
                <div className="buttons" role="group" aria-label="Buttons">
                  {buttons.map((b, j) =>
                    tappable ? (
                      <button key={j} type="button" className="chip" onClick={() => onButton(b)}>
                        {b.title}
                      </button>
                    ) : (
                      <span key={j} className="chip">
                        {b.title}
                      </span>
                    ),
                  )}
                </div>
              )}
            </div>
            <div className="meta">
              <Time at={m.timestamp_ms} short />
              {m.sender === 'bot' && <Ticks m={m} />}
            </div>
          </li>
        )
      })}
    </ol>
  )
}
