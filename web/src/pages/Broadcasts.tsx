import { useState, type FormEvent } from 'react'
import { broadcastChannels, recipientStatuses, type Broadcast, type BroadcastChannel, type BroadcastContent, type BroadcastTotals } from '../api'
import type { BotCtx } from '../bot'
import { Link } from '../router'
import { Badge, ConfirmButton, Empty, ErrorNote, Loaded, Time, localToDate, useAction, useInterval, useLoad } from '../ui'

const pageSize = 100

/** A broadcast still moving: its totals change. */
function live(b: Broadcast): boolean {
  return b.status === 'SCHEDULED' || b.status === 'PUBLISHING'
}

function title(b: Broadcast): string {
  return b.broadcastTitle || `Broadcast ${b.broadcastId}`
}

/** How far a broadcast got: a bar of recipients done, and the count in each state. */
function Progress({ totals: t }: { totals: BroadcastTotals }) {
  const done = t.sent + t.failed + t.cancelled
  return (
    <div className="progress">
      <progress max={Math.max(t.recipients, 1)} value={done} aria-label={`${done} of ${t.recipients} recipients done`} />
      <span>
        {done} / {t.recipients}
      </span>
      <span className="muted">
        {t.queued} queued · {t.sent} sent · {t.delivered} delivered · {t.read} read · {t.failed} failed ·{' '}
        {t.cancelled} cancelled
      </span>
    </div>
  )
}

/** The bot's broadcasts, newest first, live while any is moving. */
export function Broadcasts({ bot }: { bot: BotCtx }) {
  const { state, reload } = useLoad(() => bot.api.broadcasts(), [bot])
  const [older, setOlder] = useState<{ items: Broadcast[]; cursor: string | null } | null>(null)
  const act = useAction()
  const [sent, setSent] = useState<Broadcast | null>(null)
  const moving = state.kind === 'ok' && state.data.items.some(live)
  useInterval(() => reload(true), 5000, moving)

  return (
    <section>
      <h1>Broadcasts</h1>
      <p className="muted">
        Send one here, or through the platform API (<code>POST /bot-api/v1.0/…/broadcast</code> or v2, with
        WhatsApp templates; see Integrations). Here you follow them and cancel them.
      </p>
      <NewBroadcast
        bot={bot}
        onCreated={(b) => {
          setSent(b)
          reload(true)
        }}
      />
      {sent && (
        <p className="alert success" role="status">
          Broadcast <Link to={`${bot.base}/broadcasts/${sent.broadcastId}`}>{title(sent)}</Link> accepted for{' '}
          {sent.totals.recipients} recipient{sent.totals.recipients === 1 ? '' : 's'}: {sent.status}.
        </p>
      )}
      <Loaded state={state} what="broadcasts" retry={reload}>
        {(page) => {
          const items = [...page.items, ...(older?.items ?? [])]
          const cursor = older ? older.cursor : page.next_cursor
          return items.length === 0 ? (
            <Empty>This bot has sent no broadcasts.</Empty>
          ) : (
            <>
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Broadcast</th>
                      <th scope="col">Status</th>
                      <th scope="col">Progress</th>
                      <th scope="col">Publish at</th>
                    </tr>
                  </thead>
                  <tbody>
                    {items.map((b) => (
                      <tr key={b.broadcastId} data-testid="broadcast-row">
                        <td>
                          <Link to={`${bot.base}/broadcasts/${b.broadcastId}`}>{title(b)}</Link>
                        </td>
                        <td>
                          <Badge value={b.status} />
                        </td>
                        <td>
                          <Progress totals={b.totals} />
                        </td>
                        <td>
                          <Time at={b.publishedOn} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              {cursor && (
                <button
                  type="button"
                  disabled={act.busy}
                  onClick={() =>
                    void act.run(async () => {
                      const next = await bot.api.broadcasts(cursor)
                      setOlder({ items: [...(older?.items ?? []), ...next.items], cursor: next.next_cursor })
                    })
                  }
                >
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

/** One line of what a broadcast sends: a text, a template by name, or another message's kind. */
function contentLine(c: BroadcastContent): string {
  if (c.template) return `template ${c.template.name ?? ''} (${c.template.language?.code ?? '?'})`
  if (c.data?.message !== undefined) return c.data.message
  return c.type ?? 'message'
}

/**
 * Recipients pasted one a line (or separated by commas) as channel user ids. A phone
 * number written for people ("+91 98765 43210") becomes its digits, which is the
 * channel user id of a phone's user.
 */
function idList(text: string): string[] {
  return text
    .split(/[\n,;]+/)
    .map((id) => id.trim())
    .map((id) => (/^\+?[\d\s().-]+$/.test(id) ? id.replace(/\D/g, '') : id))
    .filter((id) => id !== '')
}

/** Lines of a textarea, trimmed, without the empty ones. */
function lines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
}

type Kind = 'text' | 'template'

/**
 * New broadcast: a text message to users of the bot (the v1 broadcast), or an approved
 * WhatsApp template to phone numbers (v2), now or at a time.
 */
function NewBroadcast({ bot, onCreated }: { bot: BotCtx; onCreated: (b: Broadcast) => void }) {
  const [kind, setKind] = useState<Kind>('text')
  const [channels, setChannels] = useState<BroadcastChannel[]>(['whatsapp'])
  const act = useAction()
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault()
    const form = e.currentTarget
    const f = new FormData(form)
    const field = (name: string) => String(f.get(name) ?? '')
    const common = { title: field('title').trim(), publishAt: localToDate(field('publishAt')) }
    void act.run(async () => {
      const b =
        kind === 'text'
          ? await bot.api.createBroadcast({ ...common, channels, recipients: idList(field('recipients')), messages: [field('message')] })
          : await bot.api.createTemplateBroadcast({
              ...common,
              phones: lines(field('phones')),
              template: field('template').trim(),
              language: field('language').trim(),
              bodyParams: lines(field('params')),
            })
      form.reset()
      onCreated(b)
    })
  }
  const toggle = (c: BroadcastChannel, on: boolean) =>
    setChannels((cs) => (on ? [...cs.filter((x) => x !== c), c] : cs.filter((x) => x !== c)))
  return (
    <details className="new-broadcast">
      <summary>New broadcast</summary>
      <form className="inline-form wide" onSubmit={submit} aria-label="New broadcast">
        <fieldset className="segmented">
          <legend>Send</legend>
          <label>
            <input type="radio" name="kind" checked={kind === 'text'} onChange={() => setKind('text')} /> Text message
          </label>
          <label>
            <input type="radio" name="kind" checked={kind === 'template'} onChange={() => setKind('template')} /> WhatsApp template
          </label>
        </fieldset>
        <label>
          Title
          <input name="title" required maxLength={200} />
        </label>
        {kind === 'text' ? (
          <>
            <fieldset className="segmented">
              <legend>Channels</legend>
              {broadcastChannels.map((c) => (
                <label key={c}>
                  <input type="checkbox" checked={channels.includes(c)} onChange={(e) => toggle(c, e.target.checked)} /> {c}
                </label>
              ))}
            </fieldset>
            <label>
              Recipients (phone numbers or channel user ids, one a line)
              <textarea name="recipients" required rows={4} spellCheck={false} placeholder={'+91 98765 43210\n919876543211'} />
            </label>
            <label>
              Message
              <textarea name="message" required rows={3} maxLength={4096} />
            </label>
            <p className="muted">
              Recipients must be users of this bot; WhatsApp users outside the 24-hour window are reported as failed (only
              a template may reach them).
            </p>
          </>
        ) : (
          <>
            <label>
              Phone numbers (with country code, one a line)
              <textarea name="phones" required rows={4} spellCheck={false} placeholder={'+91 98765 43210\n+91 98765 43211'} />
            </label>
            <label>
              Template name
              <input name="template" required spellCheck={false} placeholder="order_update" />
            </label>
            <label>
              Language code
              <input name="language" required spellCheck={false} defaultValue="en" />
            </label>
            <label>
              Body parameters ({'{{1}}'}, {'{{2}}'}, …, one a line)
              <textarea name="params" rows={3} />
            </label>
            <p className="muted">
              The template must be approved for the bot's WhatsApp number. Each phone number becomes a user of the bot, or
              is updated; a tap on one of the template's buttons works as it does for the template API.
            </p>
          </>
        )}
        <label>
          Publish at (empty: now)
          <input type="datetime-local" name="publishAt" />
        </label>
        <button type="submit" className="primary" disabled={act.busy || (kind === 'text' && channels.length === 0)}>
          {act.busy ? 'Sending…' : 'Send broadcast'}
        </button>
        <ErrorNote error={act.error} />
      </form>
    </details>
  )
}

/** One broadcast: live totals, cancel, and its recipients. */
export function BroadcastPage({ bot, id }: { bot: BotCtx; id: number }) {
  const b = useLoad(() => bot.api.broadcast(id), [bot, id])
  const [status, setStatus] = useState('')
  const [pageNo, setPageNo] = useState(1)
  const rs = useLoad(() => bot.api.recipients(id, { status, page_number: pageNo, page_size: pageSize }), [bot, id, status, pageNo])
  const cancel = useAction()
  const moving = b.state.kind === 'ok' && live(b.state.data)
  useInterval(
    () => {
      b.reload(true)
      rs.reload(true)
    },
    2000,
    moving,
  )

  return (
    <section>
      <Loaded state={b.state} what="the broadcast" retry={b.reload}>
        {(x) => (
          <>
            <h1>{title(x)}</h1>
            <dl className="facts">
              <dt>Status</dt>
              <dd>
                <Badge value={x.status} />
              </dd>
              <dt>Created</dt>
              <dd>
                <Time at={x.createdOn} />
              </dd>
              <dt>Publish at</dt>
              <dd>
                <Time at={x.publishedOn} />
              </dd>
              {x.finishedOn && (
                <>
                  <dt>Finished</dt>
                  <dd>
                    <Time at={x.finishedOn} />
                  </dd>
                </>
              )}
              {x.error && (
                <>
                  <dt>Error</dt>
                  <dd className="error-text">{x.error}</dd>
                </>
              )}
              {(x.payload?.content?.length ?? 0) > 0 && (
                <>
                  <dt>Sends</dt>
                  <dd>
                    <ol className="plain" aria-label="Messages">
                      {x.payload?.content?.map((c, i) => (
                        <li key={i}>{contentLine(c)}</li>
                      ))}
                    </ol>
                  </dd>
                </>
              )}
            </dl>
            <Progress totals={x.totals} />
            {live(x) && (
              <ConfirmButton
                label="Cancel broadcast"
                question="Cancel it? Recipients not yet sent to are skipped."
                disabled={cancel.busy}
                onConfirm={() =>
                  void cancel.run(async () => {
                    b.set(await bot.api.cancelBroadcast(id))
                    rs.reload(true)
                  })
                }
              />
            )}
            <ErrorNote error={cancel.error} />
          </>
        )}
      </Loaded>
      <h2>Recipients</h2>
      <div className="filters">
        <label>
          Status
          <select
            value={status}
            onChange={(e) => {
              setStatus(e.target.value)
              setPageNo(1)
            }}
          >
            <option value="">Any status</option>
            {recipientStatuses.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
      </div>
      <Loaded state={rs.state} what="recipients" retry={rs.reload}>
        {(r) => {
          const pages = Math.max(1, Math.ceil(r.total / r.page_size))
          return r.recipients.length === 0 ? (
            <Empty>No recipients{status ? ` ${status}` : ''}.</Empty>
          ) : (
            <>
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">User</th>
                      <th scope="col">Status</th>
                      <th scope="col">Reason</th>
                      <th scope="col">Updated</th>
                    </tr>
                  </thead>
                  <tbody>
                    {r.recipients.map((x) => (
                      <tr key={x.channelUserId} data-testid="recipient-row">
                        <td>
                          <Link to={`${bot.base}/users/${encodeURIComponent(x.channelUserId)}`}>{x.channelUserId}</Link>
                        </td>
                        <td>
                          <Badge value={x.status} />
                        </td>
                        <td className="error-text">{x.reason}</td>
                        <td>
                          <Time at={x.updatedOn} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              {pages > 1 && (
                <nav className="pager" aria-label="Recipient pages">
                  <button type="button" disabled={pageNo <= 1} onClick={() => setPageNo(pageNo - 1)}>
                    Previous
                  </button>
                  <span>
                    Page {r.page_number} of {pages}
                  </span>
                  <button type="button" disabled={pageNo >= pages} onClick={() => setPageNo(pageNo + 1)}>
                    Next
                  </button>
                </nav>
              )}
            </>
          )
        }}
      </Loaded>
    </section>
  )
}
