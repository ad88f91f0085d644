import type { BotClient } from './api'

/** The bot a page works on. */
export interface BotCtx {
  cid: number
  botKey: string
  name: string
  api: BotClient
  /** The console path of the bot's section: "/customers/10001/bots/abc". */
  base: string
}

/** The origin the platform API is reached at: where the console was loaded from. */
export function origin(): string {
  return window.location.origin
}

export function triggerUrl(bot: BotCtx, flowKey: string, version: 'v1' | 'v2'): string {
  const v = version === 'v1' ? 'v1.0' : 'v2.0'
  return `${origin()}/bot-api/${v}/customer/${bot.cid}/bot/${bot.botKey}/flow/${encodeURIComponent(flowKey)}`
}

export function broadcastUrl(bot: BotCtx): string {
  return `${origin()}/bot-api/v1.0/customer/${bot.cid}/bot/${bot.botKey}/broadcast`
}

export function templateUrl(bot: BotCtx): string {
  return `${origin()}/whatsapp-api/v1.0/customer/${bot.cid}/bot/${bot.botKey}/template`
}
