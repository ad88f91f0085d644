import type { BotCtx } from '../bot'
import { Trace } from '../components/Trace'
import { Loaded, useInterval, useLoad } from '../ui'

/** One run's trace; refreshed while the run is still moving. */
export function RunPage({ bot, runId }: { bot: BotCtx; runId: string }) {
  const { state, reload } = useLoad(() => bot.api.run(runId), [bot, runId])
  const moving = state.kind === 'ok' && (state.data.status === 'queued' || state.data.status === 'running')

  useInterval(() => reload(true), 1000, moving)

  return (
    <section>
      <h1>Run</h1>
      <Loaded state={state} what="the run" retry={reload}>
        {(run) => <Trace bot={bot} run={run} />}
      </Loaded>
    </section>
  )
}
