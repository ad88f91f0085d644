import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react'
import type { ApiError, Button, Message } from '../api'
import type { BotCtx } from '../bot'
import { Transcript } from '../components/Transcript'
import { navigate, useLocation } from '../router'
import { ErrorNote, Loaded, toApiError, useAction, useInterval, useLoad } from '../ui'

const pollMs = 1000

/** Sandbox chat: play a user in a phone-like panel and watch the bot answer. */
export function Sandbox({ bot }: { bot: BotCtx }) {
  const { query } = useLocation()
  const phone = (query.get('phone') ?? '').replace(/\D/g, '')

  const open = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault()
    const p = String(new FormData(e.currentTarget).get('phone') ?? '').replace(/\D/g, '')
    navigate(`${bot.base}/sandbox${p ? `?phone=${p}` : ''}`)
  }

  return (
    <section>
      <h1>Sandbox chat</h1>
      <p className="muted">
        Speak as a user: messages go to the bot as if they came from the provider, and its answers appear as it sends
        them.
      </p>
      <form className="filters" onSubmit={open} key={phone}>
        <label>
          Phone number (with country code)
          <input name="phone" inputMode="tel" required defaultValue={phone} placeholder="919876543210" />
        </label>
        <button type="submit">Open chat</button>
      </form>
      {phone && <Phone key={phone} bot={bot} phone={phone} />}
    </section>
  )
}

/** The conversation, polled while enabled and the page is visible. */
function useConversation(bot: BotCtx, phone: string, enabled: boolean) {
  const [messages, setMessages] = useState<Message[]>([])
  const [error, setError] = useState<ApiError | null>(null)
  const busy = useRef(false)

  const refresh = useCallback(async () => {
    if (busy.current) return
    busy.current = true
    try {
      const c = await bot.api.conversationTail(phone, { page_size: 100 })
      setMessages(c.conversations)
      setError(null)
    } catch (e) {
      setError(toApiError(e))
    } finally {
      busy.current = false
    }
  }, [bot, phone])

  useEffect(() => {
    if (enabled) void refresh()
  }, [enabled, refresh])
  useInterval(() => void refresh(), pollMs, enabled)

  return { messages, error, refresh }
}

function Phone({ bot, phone }: { bot: BotCtx; phone: string }) {
  // Until the user has written once, there is no conversation to poll.
  const [known, setKnown] = useState(false)
  const user = useLoad(
    () =>
      bot.api.user(phone).then(
        () => true,
        (e: unknown) => {
          if (toApiError(e).status === 404) return false
          throw e
        },
      ),
    [bot, phone],
  )
  const flows = useLoad(() => bot.api.flows(), [bot])
  const live = known || (user.state.kind === 'ok' && user.state.data)
  const conv = useConversation(bot, phone, live)
  const [text, setText] = useState('')
  const [flow, setFlow] = useState('')
  const send = useAction()
  const listRef = useRef<HTMLDivElement>(null)

  const deliver = (m: { text?: string; payload?: string }) =>
    send.run(async () => {
      await bot.api.sandboxMessage({ phone, ...m })
      setKnown(true)
      await conv.refresh()
    })

  const submit = (e: FormEvent) => {
    e.preventDefault()
    const t = text.trim()
    if (!t) return
    setText('')
    void deliver({ text: t })
  }

  // A tapped button answers with its id as payload (its title when it has none) and its
  // title as text, as a provider's webhook reports it.
  const tap = (b: Button) => void deliver({ payload: b.id || b.title, text: b.title })

  const count = conv.messages.length
  useEffect(() => {
    const el = listRef.current
    if (el) el.scrollTop = el.scrollHeight
  }, [count])

  return (
    <div className="sandbox">
      <div className="phone" aria-label={`Chat as +${phone}`} role="region">
        <div className="phone-top">
          <strong>{bot.name}</strong>
          <span className="muted">to +{phone}</span>
        </div>
        <div className="phone-screen" ref={listRef} aria-live="polite">
          <Loaded state={user.state} what="the user" retry={user.reload}>
            {() =>
              count === 0 ? (
                <p className="muted center">No messages yet. Say hello, or start a flow.</p>
              ) : (
                <Transcript messages={conv.messages} onButton={tap} />
              )
            }
          </Loaded>
        </div>
        <form className="composer" onSubmit={submit}>
          <input aria-label="Message" placeholder="Message" value={text} onChange={(e) => setText(e.target.value)} />
          <button type="submit" className="primary" disabled={send.busy || !text.trim()}>
            Send
          </button>
        </form>
      </div>
      <div className="sandbox-side">
        <Loaded state={flows.state} what="flows" retry={flows.reload}>
          {(fs) =>
            fs.length > 0 && (
              <form
                className="inline-form"
                onSubmit={(e) => {
                  e.preventDefault()
                  const key = flow || fs[0]?.flow_key
                  if (key) void deliver({ payload: key })
                }}
              >
                <label>
                  Start a flow
                  <select value={flow} onChange={(e) => setFlow(e.target.value)}>
                    {fs.map((f) => (
                      <option key={f.flow_key} value={f.flow_key}>
                        {f.name || f.flow_key}
                      </option>
                    ))}
                  </select>
                </label>
                <button type="submit" disabled={send.busy}>
                  Start
                </button>
              </form>
            )
          }
        </Loaded>
        <ErrorNote error={send.error ?? conv.error} />
      </div>
    </div>
  )
}
