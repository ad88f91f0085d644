import { useState, type FormEvent } from 'react'
import type { BotUser, UserFilter } from '../api'
import type { BotCtx } from '../bot'
import { Link, navigate, useLocation } from '../router'
import { Empty, ErrorNote, Loaded, Time, useAction, useLoad } from '../ui'

const filterNames = ['search', 'attribute_name', 'attribute_value'] as const

/** The bot's users, searched by id or name prefix, or by an attribute's value. */
export function Users({ bot }: { bot: BotCtx }) {
  const { query } = useLocation()
  const filter: UserFilter = {}
  for (const n of filterNames) {
    const v = query.get(n)
    if (v) filter[n] = v
  }
  const key = JSON.stringify(filter)
  const first = useLoad(() => bot.api.users(filter), [bot, key])
  const [more, setMore] = useState<{ key: string; users: BotUser[]; cursor: string | null } | null>(null)
  const act = useAction()

  const apply = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault()
    const f = new FormData(e.currentTarget)
    const q = new URLSearchParams()
    for (const n of filterNames) {
      const v = String(f.get(n) ?? '').trim()
      if (v) q.set(n, v)
    }
    const s = q.toString()
    navigate(`${bot.base}/users${s ? `?${s}` : ''}`)
  }

  return (
    <section>
      <h1>Users</h1>
      <form className="filters" onSubmit={apply} key={key}>
        <label>
          Id or name starts with
          <input name="search" defaultValue={filter.search ?? ''} />
        </label>
        <label>
          Attribute
          <input name="attribute_name" placeholder="e.g. order_id" defaultValue={filter.attribute_name ?? ''} />
        </label>
        <label>
          equals
          <input name="attribute_value" defaultValue={filter.attribute_value ?? ''} />
        </label>
        <button type="submit">Search</button>
      </form>
      <Loaded state={first.state} what="users" retry={first.reload}>
        {(page) => {
          const extra = more && more.key === key ? more : null
          const users = extra ? [...page.items, ...extra.users] : page.items
          const cursor = extra ? extra.cursor : page.next_cursor
          const loadMore = () =>
            act.run(async () => {
              if (!cursor) return
              const next = await bot.api.users({ ...filter, cursor })
              setMore({ key, users: [...(extra?.users ?? []), ...next.items], cursor: next.next_cursor })
            })
          return users.length === 0 ? (
            <Empty>{key === '{}' ? 'This bot has no users yet.' : 'No user matches.'}</Empty>
          ) : (
            <>
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">User</th>
                      <th scope="col">Name</th>
                      <th scope="col">Channel</th>
                      <th scope="col">Last change</th>
                    </tr>
                  </thead>
                  <tbody>
                    {users.map((u) => (
                      <tr key={`${u.channel}:${u.channel_user_id}`}>
                        <td>
                          <Link to={`${bot.base}/users/${encodeURIComponent(u.channel_user_id)}`}>{u.channel_user_id}</Link>
                        </td>
                        <td>{u.name || u.attributes['user.user_name'] || '—'}</td>
                        <td>{u.channel}</td>
                        <td>
                          <Time at={u.updated_at_ms} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              {cursor && (
                <button type="button" onClick={() => void loadMore()} disabled={act.busy}>
                  Load more
                </button>
              )}
              <ErrorNote error={act.error} />
            </>
          )
        }}
      </Loaded>
    </section>
  )
}
