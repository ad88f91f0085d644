import { useState, type FormEvent } from 'react'
import type { BotUser, Conversation } from '../api'
import type { BotCtx } from '../bot'
import { Transcript } from '../components/Transcript'
import { Empty, Loaded, Time, localToDate, useLoad } from '../ui'

const pageSize = 100

interface Range {
  start_date?: number
  end_date?: number
}

/** A user's attributes and conversation. */
export function UserPage({ bot, channelUserId }: { bot: BotCtx; channelUserId: string }) {
  const user = useLoad(() => bot.api.user(channelUserId), [bot, channelUserId])
  return (
    <section>
      <h1>User {channelUserId}</h1>
      <Loaded state={user.state} what="the user" retry={user.reload}>
        {(u) => <Attributes user={u} />}
      </Loaded>
      <ConversationView bot={bot} channelUserId={channelUserId} />
    </section>
  )
}

function Attributes({ user }: { user: BotUser }) {
  const names = Object.keys(user.attributes).sort()
  return (
    <>
      <p className="muted">
        {user.name || user.attributes['user.user_name'] || 'No name'} · {user.channel} · first seen{' '}
        <Time at={user.created_at_ms} /> · last change <Time at={user.updated_at_ms} />
      </p>
      <h2>Attributes</h2>
      {names.length === 0 ? (
        <Empty>No attributes.</Empty>
      ) : (
        <div className="table-wrap">
          <table className="attrs" data-testid="attributes">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Value</th>
              </tr>
            </thead>
            <tbody>
              {names.map((n) => (
                <tr key={n}>
                  <td>
                    <code>{n}</code>
                  </td>
                  <td>{user.attributes[n]}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  )
}

/** The conversation between dates, a page at a time, newest page first. */
function ConversationView({ bot, channelUserId }: { bot: BotCtx; channelUserId: string }) {
  const [range, setRange] = useState<Range>({})
  const [page, setPage] = useState<number | null>(null) // null: the last page
  const conv = useLoad<Conversation>(
    () =>
      page === null
        ? bot.api.conversationTail(channelUserId, { ...range, page_size: pageSize })
        : bot.api.conversation(channelUserId, { ...range, page_size: pageSize, page_number: page }),
    [bot, channelUserId, range, page],
  )

  const apply = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault()
    const f = new FormData(e.currentTarget)
    setRange({
      start_date: localToDate(String(f.get('start') ?? ''))?.getTime(),
      end_date: localToDate(String(f.get('end') ?? ''))?.getTime(),
    })
    setPage(null)
  }

  return (
    <>
      <h2>Conversation</h2>
      <form className="filters" onSubmit={apply}>
        <label>
          From
          <input type="datetime-local" name="start" />
        </label>
        <label>
          To
          <input type="datetime-local" name="end" />
        </label>
        <button type="submit">Show</button>
      </form>
      <Loaded state={conv.state} what="the conversation" retry={conv.reload}>
        {(c) => {
          const pages = Math.max(1, Math.ceil(c.total / c.page_size))
          return c.conversations.length === 0 ? (
            <Empty>No messages in this period.</Empty>
          ) : (
            <>
              <Transcript messages={c.conversations} />
              {pages > 1 && (
                <nav className="pager" aria-label="Conversation pages">
                  <button type="button" disabled={c.page_number <= 1} onClick={() => setPage(c.page_number - 1)}>
                    Older
                  </button>
                  <span>
                    Page {c.page_number} of {pages}
                  </span>
                  <button type="button" disabled={c.page_number >= pages} onClick={() => setPage(c.page_number + 1)}>
                    Newer
                  </button>
                </nav>
              )}
            </>
          )
        }}
      </Loaded>
    </>
  )
}
