import { useEffect, useMemo, type ReactNode } from 'react'
import type { BotCtx } from '../bot'
import { Link, match, navigate } from '../router'
import { useApi } from '../session'
import { Loaded, useLoad, useTitle } from '../ui'
import { BroadcastPage, Broadcasts } from './Broadcasts'
import { Channels } from './Channels'
import { FlowPage } from './FlowPage'
import { Flows } from './Flows'
import { HttpStepPage } from './HttpStepPage'
import { Integrations } from './Integrations'
import { RunPage } from './RunPage'
import { Runs } from './Runs'
import { Sandbox } from './Sandbox'
import { UserPage } from './UserPage'
import { Users } from './Users'

/**
 * The flow builder, whose chunk (the canvas library) is loaded when first opened. Not
 * React.lazy: a Suspense boundary reveals what it waited for in 300 ms steps, which was a
 * quarter of a large flow's opening.
 */
function Builder({ bot, flowKey }: { bot: BotCtx; flowKey: string }) {
  const chunk = useLoad(() => import('../builder/FlowBuilder'), [])
  return (
    <Loaded state={chunk.state} what="the builder" retry={chunk.reload}>
      {(m) => <m.default bot={bot} flowKey={flowKey} />}
    </Loaded>
  )
}

/** The pages of a bot, in the order the navigation lists them. */
export const botPages: { slug: string; title: string }[] = [
  { slug: 'integrations', title: 'Integrations' },
  { slug: 'channels', title: 'Channels' },
  { slug: 'flows', title: 'Flows' },
  { slug: 'runs', title: 'Runs' },
  { slug: 'users', title: 'Users' },
  { slug: 'sandbox', title: 'Sandbox' },
  { slug: 'broadcasts', title: 'Broadcasts' },
]

/** A bot's pages: resolves the bot (which also checks access), then the page. */
export function BotSection({ cid, botKey, rest }: { cid: number; botKey: string; rest: string }) {
  const api = useApi()
  const { state, reload } = useLoad(() => api.bots(cid), [api, cid])

  useEffect(() => {
    if (rest === '/') navigate(`/customers/${cid}/bots/${encodeURIComponent(botKey)}/integrations`, true)
  }, [rest, cid, botKey])

  return (
    <Loaded state={state} what="the bot" retry={reload}>
      {(bots) => {
        const b = bots.find((x) => x.bot_key === botKey)
        if (!b) {
          return (
            <section>
              <h1>No such bot</h1>
              <p>
                Customer {cid} has no bot <code>{botKey}</code>. <Link to={`/customers/${cid}`}>See its bots</Link>.
              </p>
            </section>
          )
        }
        return <BotPage cid={cid} botKey={botKey} name={b.name} rest={rest} />
      }}
    </Loaded>
  )
}

function BotPage({ cid, botKey, name, rest }: { cid: number; botKey: string; name: string; rest: string }) {
  const api = useApi()
  const bot = useMemo<BotCtx>(
    () => ({ cid, botKey, name, api: api.bot(cid, botKey), base: `/customers/${cid}/bots/${encodeURIComponent(botKey)}` }),
    [api, cid, botKey, name],
  )
  const slug = rest.split('/')[1] ?? ''
  useTitle(`${botPages.find((p) => p.slug === slug)?.title ?? 'Bot'} · ${name}`)
  return (
    <>
      <nav aria-label="Breadcrumb" className="crumbs">
        <Link to={`/customers/${cid}`}>Customer {cid}</Link> › <span>{name}</span>
      </nav>
      {botRoute(bot, rest)}
    </>
  )
}

function botRoute(bot: BotCtx, rest: string): ReactNode {
  switch (rest) {
    case '/':
      return null
    case '/integrations':
      return <Integrations bot={bot} />
    case '/channels':
      return <Channels bot={bot} />
    case '/flows':
      return <Flows bot={bot} />
    case '/runs':
      return <Runs bot={bot} />
    case '/users':
      return <Users bot={bot} />
    case '/sandbox':
      return <Sandbox bot={bot} />
    case '/broadcasts':
      return <Broadcasts bot={bot} />
  }
  let m = match('/flows/:flow', rest)
  if (m) return <FlowPage bot={bot} flowKey={m.flow ?? ''} />
  m = match('/flows/:flow/builder', rest)
  if (m) {
    return <Builder key={m.flow} bot={bot} flowKey={m.flow ?? ''} />
  }
  m = match('/flows/:flow/nodes/:node', rest)
  if (m) return <HttpStepPage bot={bot} flowKey={m.flow ?? ''} nodeId={m.node ?? ''} />
  m = match('/runs/:run', rest)
  if (m) return <RunPage bot={bot} runId={m.run ?? ''} />
  m = match('/broadcasts/:id', rest)
  if (m && /^\d+$/.test(m.id ?? '')) return <BroadcastPage bot={bot} id={Number(m.id)} />
  m = match('/users/:user', rest)
  if (m) return <UserPage bot={bot} channelUserId={m.user ?? ''} />
  return (
    <section>
      <h1>Not found</h1>
      <p>This bot has no such page.</p>
    </section>
  )
}
