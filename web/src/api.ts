// The console's client of Parley's admin API (/admin/v1): every call the pages make goes
// through here, with typed answers. Shapes follow internal/api/openapi.json and
// /work/notes/console-api.md; the console has no private endpoints.

export interface Status {
  code: number
  desc: string
  details?: string
}

/** A problem the flow validator found, named by node. */
export interface FlowProblem {
  node: string
  field?: string
  message: string
}

/** A flow builder's saved draft. */
export interface DraftSummary {
  flow_key: string
  name: string
  updated_at: string
  updated_by: string
}

/** A saved draft with what publishing it would say. */
export interface DraftSaved extends DraftSummary {
  valid: boolean
  errors: FlowProblem[]
}

/** An answer other than success, or a request that never got one (status 0). */
export class ApiError extends Error {
  readonly status: number
  readonly code: number
  readonly desc: string
  readonly problems: FlowProblem[]
  readonly retryAfter: number | null

  constructor(status: number, st: Status, problems: FlowProblem[] = [], retryAfter: number | null = null) {
    super(st.details || st.desc || `HTTP ${status}`)
    this.status = status
    this.code = st.code
    this.desc = st.desc
    this.problems = problems
    this.retryAfter = retryAfter
  }
}

// ---- Shapes ----

export type Role = 'operator' | 'customer'

/** Who is signed in: id null and email "" for the admin-token sign-in. */
export interface Principal {
  id: number | null
  email: string
  role: Role
  customer_id: number | null
}

export interface Session {
  user: Principal
  csrf_token: string
}

export interface ConsoleUser {
  id: number
  email: string
  role: Role
  customer_id: number | null
  created_at: string
}

export interface Customer {
  customer_id: number
  name: string
  http_rate?: number
  created_at: string
}

export interface Bot {
  customer_id: number
  bot_key: string
  name: string
  created_at: string
}

/** A new bot with its first API key, shown once. */
export interface NewBot {
  customer_id: number
  bot_key: string
  key_id: number
  api_key: string
}

export interface ApiKey {
  id: number
  hint: string
  created_at: string
  revoked_at?: string
}

/** A created or regenerated key: api_key is shown once. */
export interface NewKey {
  id: number
  api_key: string
  hint: string
}

export interface FlowSummary {
  flow_key: string
  name: string
  version: number
  created_at: string
  updated_at: string
}

export interface FlowVersion {
  version: number
  created_at: string
  published_by: string | null
}

export type NodeType = 'message' | 'decision' | 'set' | 'input' | 'http' | 'jump' | 'end'

export interface HttpNode {
  id: string
  type: 'http'
  name?: string
  method: string
  url: string
  headers?: Record<string, string>
  body?: { mode: string; content?: string; content_type?: string; fields?: Record<string, string> }
  save?: Record<string, string>
  on_failure?: 'continue' | 'stop'
  timeout_seconds?: number
  alert_emails?: string[]
  next?: string
}

/** A node the console only passes through: every field kept as it was. */
export interface OtherNode {
  id: string
  type: Exclude<NodeType, 'http'>
  [field: string]: unknown
}

export type FlowNode = HttpNode | OtherNode

/** A flow document (internal/flow/flow.schema.json). */
export interface FlowDoc {
  key?: string
  name?: string
  start: string
  nodes: FlowNode[]
}

export type RunStatus = 'queued' | 'running' | 'waiting' | 'completed' | 'failed'
export const runStatuses: RunStatus[] = ['queued', 'running', 'waiting', 'completed', 'failed']

export interface RunStep {
  node: string
  type: NodeType
  outcome: string
  error?: string
  at_ms: number
  /** The log of the HTTP call an http step made, under that node's /logs/. */
  http_log_id?: number
}

export interface RunSummary {
  run_id: string
  flow_key: string
  flow_version: number
  status: RunStatus
  channel: string
  channel_user_id: string
  current_node?: string
  error?: string
  created_at: string
  updated_at: string
}

export interface Run extends RunSummary {
  steps: RunStep[]
  waiting_for?: 'input' | 'retry'
  duplicate?: boolean
  /** What the run sent (the run page; a trigger's answer has none). */
  messages?: Message[]
}

export interface Button {
  id?: string
  title: string
}

export interface Media {
  type: 'image' | 'video' | 'audio' | 'document'
  url: string
  caption?: string
  filename?: string
}

export interface Card {
  title?: string
  description?: string
  media_url?: string
  buttons?: Button[]
}

export interface Template {
  name: string
  namespace?: string
  language: { code: string; policy?: string }
}

/** What a bot message carries. */
export interface MessageContent {
  text?: string
  buttons?: Button[]
  media?: Media
  card?: Card
  template?: Template
}

export type MessageStatus = 'pending' | 'sent' | 'delivered' | 'read' | 'failed' | 'received'

export interface Message {
  message_id: string
  sender: 'bot' | 'user'
  channel: string
  type: string
  text?: string
  payload?: unknown
  status: MessageStatus
  error?: string
  provider_message_id?: string
  run_id?: string
  timestamp: string
  timestamp_ms: number
}

/** A bot's user, as the platform users API shows one. */
export interface BotUser {
  channel_user_id: string
  channel: string
  name?: string
  created_at: string
  created_at_ms: number
  updated_at: string
  updated_at_ms: number
  attributes: Record<string, string>
}

export interface Conversation {
  channel_user_id: string
  conversations: Message[]
  page_number: number
  page_size: number
  total: number
}

export interface Page<T> {
  items: T[]
  next_cursor: string | null
}

export type ChannelName = 'whatsapp' | 'rcs'

export interface ChannelConfig {
  adapter: string
  base_url?: string
  phone_number_id?: string
  token?: string
  app_secret?: string
  verify_token?: string
  agent_id?: string
  client_token?: string
  /** The RBM agent's Google service-account key (JSON); shown as "****" and its email. */
  service_account_json?: string
  api_version?: string
  rate_per_second?: number
}

/** The settings PUT takes: rate_per_second may also be "default" or "unlimited". */
export type ChannelInput = Omit<ChannelConfig, 'rate_per_second'> & { rate_per_second?: number | string }

export interface ChannelView {
  channel: ChannelName
  config: ChannelConfig
  rate_per_second_effective: number
  webhook_path?: string
  warnings?: string[]
}

export interface SandboxResult {
  message_id: number
  duplicate?: boolean
  started_run_id?: string
  resumed_run_id?: string
}

export interface HttpStepState {
  flow_key: string
  node_id: string
  name?: string
  structure_changed: boolean
  message?: string
  shape: string[]
  changed_shape?: string[]
  calls: number
  last_call_at?: string
  alert_emails: string[]
  last_alert_at?: string
  next_alert_at?: string
}

export interface HttpRequest {
  method: string
  url: string
  headers?: Record<string, string[]>
  body?: string
}

export interface HttpResponse {
  status?: number
  status_text?: string
  url?: string
  headers?: Record<string, string[]>
  body?: string
  truncated?: boolean
}

export interface HttpTestResult {
  request: HttpRequest
  response: HttpResponse
  started_at: string
  duration_ms: number
  failed: boolean
  error_kind?: string
  error?: string
  /** The response's JSON leaves by path ("items.0.sku"): what save can map. */
  leaves?: Record<string, string>
  mapping_error?: string
  attributes: Record<string, string>
  structure_changed: boolean
  message?: string
  log_id?: number
}

export interface HttpLogSummary {
  id: number
  at: string
  run_id?: string
  test?: boolean
  method: string
  url: string
  status?: number
  duration_ms: number
  failed: boolean
  error?: string
  message?: string
}

export interface HttpLog extends HttpLogSummary {
  error_kind?: string
  request: HttpRequest
  response: HttpResponse
  leaves?: Record<string, string>
}

export interface HttpLogs {
  logs: HttpLogSummary[]
  structure_changed: boolean
  message?: string
}

export type BroadcastStatus = 'SCHEDULED' | 'PUBLISHING' | 'PUBLISHED' | 'CANCELLED' | 'FAILED'

/** Recipients by state; sent, delivered and read are cumulative. */
export interface BroadcastTotals {
  recipients: number
  queued: number
  sent: number
  delivered: number
  read: number
  failed: number
  cancelled: number
}

/** A broadcast: its request as sent (fields the console shows), with its state filled in. */
export interface Broadcast {
  broadcastId: number
  broadcastTitle?: string
  platform?: string
  status: BroadcastStatus
  totals: BroadcastTotals
  createdOn: string
  publishedOn: string
  finishedOn?: string
  error?: string
  /** What it sends, as the request gave it. */
  payload?: { type?: string; content?: BroadcastContent[] }
}

/** One message of a broadcast's payload: v1's typed data, or v2's template. */
export interface BroadcastContent {
  type?: string
  data?: { message?: string }
  template?: { name?: string; language?: { code?: string } }
}

export type BroadcastChannel = 'whatsapp' | 'rcs' | 'sandbox'
export const broadcastChannels: BroadcastChannel[] = ['whatsapp', 'rcs', 'sandbox']

/** What the console's New broadcast form sends (the v1 body's fields it fills in). */
export interface NewBroadcast {
  title: string
  channels: BroadcastChannel[]
  recipients: string[]
  messages: string[]
  /** Absent: publish now. */
  publishAt?: Date
}

/** What the form sends as a v2 broadcast: a template with body parameters, to phone numbers. */
export interface NewTemplateBroadcast {
  title: string
  phones: string[]
  template: string
  language: string
  bodyParams: string[]
  publishAt?: Date
}

export type RecipientStatus = 'queued' | 'sending' | 'sent' | 'delivered' | 'read' | 'failed' | 'cancelled'
export const recipientStatuses: RecipientStatus[] = ['queued', 'sent', 'delivered', 'read', 'failed', 'cancelled']

export interface BroadcastRecipient {
  channelUserId: string
  status: RecipientStatus
  reason?: string
  messageId?: string
  providerMessageId?: string
  updatedOn: string
}

export interface Recipients {
  broadcastId: number
  recipients: BroadcastRecipient[]
  page_number: number
  page_size: number
  total: number
}

export interface RunFilter {
  flow?: string
  user?: string
  status?: string
  since?: string
  until?: string
  cursor?: string
}

export interface UserFilter {
  attribute_name?: string
  attribute_value?: string
  search?: string
  cursor?: string
}

export interface ConversationFilter {
  start_date?: number
  end_date?: number
  page_number?: number
  page_size?: number
}

/** Trigger attributes, as the platform v2 trigger takes them. */
export type TriggerBody = Record<string, string>

// ---- The client ----

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

type Query = Record<string, string | number | undefined>

function withQuery(path: string, q: Query): string {
  const p = new URLSearchParams()
  for (const [k, v] of Object.entries(q)) {
    if (v !== undefined && v !== '') p.set(k, String(v))
  }
  const s = p.toString()
  return s ? `${path}?${s}` : path
}

const seg = encodeURIComponent

interface Raw {
  res: Response
  text: string
}

/**
 * Client calls the admin API with the session cookie. It sends X-CSRF-Token on every
 * state-changing call and reports a 401 (a session that ended) to onSignedOut.
 */
export class Client {
  private csrf = ''
  private readonly onSignedOut: () => void

  constructor(onSignedOut: () => void) {
    this.onSignedOut = onSignedOut
  }

  setCsrf(token: string): void {
    this.csrf = token
  }

  private async raw(method: Method, path: string, body?: unknown, rawBody?: string): Promise<Raw> {
    const headers: Record<string, string> = { Accept: 'application/json' }
    if (method !== 'GET' && this.csrf) headers['X-CSRF-Token'] = this.csrf
    let payload: string | undefined
    if (rawBody !== undefined) {
      payload = rawBody
      headers['Content-Type'] = 'application/json'
    } else if (body !== undefined) {
      payload = JSON.stringify(body)
      headers['Content-Type'] = 'application/json'
    }
    let res: Response
    try {
      res = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' })
    } catch {
      throw new ApiError(0, { code: 0, desc: 'NETWORK', details: 'The server could not be reached.' })
    }
    const text = await res.text()
    if (!res.ok) {
      throw this.failure(res, text, path)
    }
    return { res, text }
  }

  private failure(res: Response, text: string, path: string): ApiError {
    let st: Status = { code: 0, desc: `HTTP_${res.status}`, details: `${res.status} ${res.statusText}` }
    let problems: FlowProblem[] = []
    try {
      const env = JSON.parse(text) as { status?: Status; errors?: FlowProblem[] }
      if (env.status) st = env.status
      if (Array.isArray(env.errors)) problems = env.errors
    } catch {
      // not an envelope: keep the HTTP status line
    }
    const ra = Number(res.headers.get('Retry-After'))
    const err = new ApiError(res.status, st, problems, Number.isFinite(ra) && ra > 0 ? ra : null)
    if (res.status === 401 && path !== '/admin/v1/session') this.onSignedOut()
    return err
  }

  private async call<T>(method: Method, path: string, body?: unknown): Promise<T> {
    const { text } = await this.raw(method, path, body)
    const env = JSON.parse(text) as { responseObject: T }
    return env.responseObject
  }

  // Session

  session(): Promise<Session> {
    return this.call('GET', '/admin/v1/session')
  }

  signIn(creds: { admin_token: string } | { email: string; password: string }): Promise<Session> {
    return this.call('POST', '/admin/v1/session', creds)
  }

  signOut(): Promise<{ signed_out: boolean }> {
    return this.call('DELETE', '/admin/v1/session')
  }

  // Console users (operators)

  async users(): Promise<ConsoleUser[]> {
    return (await this.call<{ users: ConsoleUser[] }>('GET', '/admin/v1/users')).users
  }

  createUser(u: { email: string; password: string; customer_id: number | null }): Promise<ConsoleUser> {
    return this.call('POST', '/admin/v1/users', u)
  }

  deleteUser(id: number): Promise<{ id: number; deleted: boolean }> {
    return this.call('DELETE', `/admin/v1/users/${id}`)
  }

  setPassword(id: number, password: string): Promise<ConsoleUser> {
    return this.call('PUT', `/admin/v1/users/${id}/password`, { password })
  }

  // Customers and bots

  async customers(): Promise<Customer[]> {
    return (await this.call<{ customers: Customer[] }>('GET', '/admin/v1/customers')).customers
  }

  createCustomer(name: string): Promise<Customer> {
    return this.call('POST', '/admin/v1/customers', { name })
  }

  customer(cid: number): Promise<Customer> {
    return this.call('GET', `/admin/v1/customers/${cid}`)
  }

  async bots(cid: number): Promise<Bot[]> {
    return (await this.call<{ bots: Bot[] }>('GET', `/admin/v1/customers/${cid}/bots`)).bots
  }

  createBot(cid: number, name: string): Promise<NewBot> {
    return this.call('POST', `/admin/v1/customers/${cid}/bots`, { name })
  }

  /** The calls on one bot. */
  bot(cid: number, botKey: string): BotClient {
    return new BotClient(this, `/admin/v1/customers/${cid}/bots/${seg(botKey)}`)
  }

  async validateFlow(doc: string): Promise<FlowProblem[]> {
    try {
      await this.raw('POST', '/admin/v1/flows/validate', undefined, doc)
      return []
    } catch (e) {
      if (e instanceof ApiError && e.status === 400 && e.problems.length > 0) return e.problems
      throw e
    }
  }

  /** For BotClient: a call whose answer is enveloped. */
  request<T>(method: Method, path: string, body?: unknown): Promise<T> {
    return this.call(method, path, body)
  }

  /** For BotClient: a call whose answer is not enveloped, or whose body is sent as is. */
  requestRaw(method: Method, path: string, rawBody?: string): Promise<Raw> {
    return this.raw(method, path, undefined, rawBody)
  }
}

/** The admin calls under /admin/v1/customers/{cid}/bots/{botKey}. */
export class BotClient {
  private readonly c: Client
  private readonly base: string

  constructor(c: Client, base: string) {
    this.c = c
    this.base = base
  }

  // Keys

  async keys(): Promise<ApiKey[]> {
    return (await this.c.request<{ keys: ApiKey[] | null }>('GET', `${this.base}/keys`)).keys ?? []
  }

  createKey(): Promise<NewKey> {
    return this.c.request('POST', `${this.base}/keys`)
  }

  revokeKey(id: number): Promise<{ id: number; revoked: boolean }> {
    return this.c.request('DELETE', `${this.base}/keys/${id}`)
  }

  regenerateKey(id: number): Promise<NewKey> {
    return this.c.request('POST', `${this.base}/keys/${id}/regenerate`)
  }

  // Flows

  async flows(): Promise<FlowSummary[]> {
    return (await this.c.request<{ flows: FlowSummary[] | null }>('GET', `${this.base}/flows`)).flows ?? []
  }

  /** Imports a document as a new version (the first, for a new key). */
  importFlow(doc: string): Promise<FlowSummary> {
    return this.c.requestRaw('POST', `${this.base}/flows`, doc).then(
      ({ text }) => (JSON.parse(text) as { responseObject: FlowSummary }).responseObject,
    )
  }

  /** The current document as stored, with its version. */
  async exportFlow(flowKey: string): Promise<{ text: string; version: number }> {
    const { res, text } = await this.c.requestRaw('GET', `${this.base}/flows/${seg(flowKey)}`)
    return { text, version: Number(res.headers.get('X-Flow-Version')) }
  }

  async versions(flowKey: string): Promise<FlowVersion[]> {
    return (await this.c.request<{ versions: FlowVersion[] }>('GET', `${this.base}/flows/${seg(flowKey)}/versions`))
      .versions
  }

  async versionDoc(flowKey: string, version: number): Promise<string> {
    return (await this.c.requestRaw('GET', `${this.base}/flows/${seg(flowKey)}/versions/${version}`)).text
  }

  // Drafts (the flow builder)

  async drafts(): Promise<DraftSummary[]> {
    return (await this.c.request<{ drafts: DraftSummary[] | null }>('GET', `${this.base}/drafts`)).drafts ?? []
  }

  async draft(flowKey: string): Promise<string> {
    return (await this.c.requestRaw('GET', `${this.base}/flows/${seg(flowKey)}/draft`)).text
  }

  saveDraft(flowKey: string, doc: string): Promise<DraftSaved> {
    return this.c.requestRaw('PUT', `${this.base}/flows/${seg(flowKey)}/draft`, doc).then(
      ({ text }) => (JSON.parse(text) as { responseObject: DraftSaved }).responseObject,
    )
  }

  deleteDraft(flowKey: string): Promise<{ deleted: boolean }> {
    return this.c.request('DELETE', `${this.base}/flows/${seg(flowKey)}/draft`)
  }

  /** Publishes the saved draft as the next version; an invalid one is refused with its problems. */
  publish(flowKey: string): Promise<FlowSummary> {
    return this.c.request('POST', `${this.base}/flows/${seg(flowKey)}/publish`)
  }

  restore(flowKey: string, version: number): Promise<FlowSummary> {
    return this.c.request('POST', `${this.base}/flows/${seg(flowKey)}/versions/${version}/restore`)
  }

  /** Starts the flow for a user without waiting: the answer has the run id. */
  start(flowKey: string, body: TriggerBody): Promise<Run> {
    return this.c.request('POST', `${this.base}/flows/${seg(flowKey)}/trigger`, body)
  }

  /** Starts the flow for a user and waits for it to settle ("Try it"). */
  trigger(flowKey: string, body: TriggerBody): Promise<Run> {
    return this.c.request('POST', `${this.base}/flows/${seg(flowKey)}/trigger?wait=true`, body)
  }

  // Runs

  async runs(f: RunFilter, limit = 50): Promise<Page<RunSummary>> {
    const r = await this.c.request<{ runs: RunSummary[]; next_cursor: string | null }>(
      'GET',
      withQuery(`${this.base}/runs`, { ...f, limit }),
    )
    return { items: r.runs, next_cursor: r.next_cursor }
  }

  run(runId: string): Promise<Run> {
    return this.c.request('GET', `${this.base}/runs/${seg(runId)}`)
  }

  // Users and conversations

  async users(f: UserFilter, limit = 50): Promise<Page<BotUser>> {
    const r = await this.c.request<{ users: BotUser[]; next_cursor: string | null }>(
      'GET',
      withQuery(`${this.base}/users`, { ...f, limit }),
    )
    return { items: r.users, next_cursor: r.next_cursor }
  }

  user(channelUserId: string): Promise<BotUser> {
    return this.c.request('GET', `${this.base}/users/${seg(channelUserId)}`)
  }

  conversation(channelUserId: string, f: ConversationFilter): Promise<Conversation> {
    return this.c.request('GET', withQuery(`${this.base}/users/${seg(channelUserId)}/conversations`, { ...f }))
  }

  /** The last page of a conversation (its newest messages, oldest first). */
  async conversationTail(channelUserId: string, f: ConversationFilter): Promise<Conversation> {
    const first = await this.conversation(channelUserId, { ...f, page_number: 1 })
    const last = Math.max(1, Math.ceil(first.total / first.page_size))
    return last === 1 ? first : this.conversation(channelUserId, { ...f, page_number: last })
  }

  // Sandbox

  sandboxMessage(m: { phone: string; text?: string; payload?: string }): Promise<SandboxResult> {
    return this.c.request('POST', `${this.base}/sandbox/messages`, m)
  }

  // Channels

  async channels(): Promise<ChannelView[]> {
    return (await this.c.request<{ channels: ChannelView[] }>('GET', `${this.base}/channels`)).channels
  }

  setChannel(ch: ChannelName, cfg: ChannelInput): Promise<ChannelView> {
    return this.c.request('PUT', `${this.base}/channels/${ch}`, cfg)
  }

  // Broadcasts (created through the platform API; read and cancelled here)

  async broadcasts(cursor?: string, limit = 20): Promise<Page<Broadcast>> {
    const r = await this.c.request<{ broadcasts: Broadcast[]; next_cursor: string | null }>(
      'GET',
      withQuery(`${this.base}/broadcasts`, { cursor, limit }),
    )
    return { items: r.broadcasts, next_cursor: r.next_cursor }
  }

  broadcast(id: number): Promise<Broadcast> {
    return this.c.request('GET', `${this.base}/broadcasts/${id}`)
  }

  recipients(id: number, f: { status?: string; page_number?: number; page_size?: number }): Promise<Recipients> {
    return this.c.request('GET', withQuery(`${this.base}/broadcasts/${id}/recipients`, { ...f }))
  }

  /** A v1 broadcast of text messages, made with the console's credentials. */
  createBroadcast(b: NewBroadcast): Promise<Broadcast> {
    return this.c.request('POST', `${this.base}/broadcasts`, {
      broadcastId: null,
      broadcastTitle: b.title,
      publishedOn: b.publishAt ? b.publishAt.toISOString() : null,
      audience: { rule: { channels: b.channels, channelUserIds: b.recipients } },
      payload: { type: 'direct', content: b.messages.map((message) => ({ type: 'text', data: { message } })) },
      status: null,
    })
  }

  /** A v2 broadcast of one approved WhatsApp template to phone numbers (users made or updated). */
  createTemplateBroadcast(b: NewTemplateBroadcast): Promise<Broadcast> {
    const components = b.bodyParams.length > 0 ? [{ type: 'body', parameters: b.bodyParams.map((text) => ({ type: 'text', text })) }] : []
    return this.c.request('POST', `${this.base}/broadcasts?version=2`, {
      broadcastId: null,
      broadcastTitle: b.title,
      publishedOn: b.publishAt ? b.publishAt.toISOString() : null,
      platform: 'whatsapp',
      users: b.phones.map((phoneNumber) => ({ phoneNumber })),
      payload: {
        type: 'whatsapp_template',
        content: [{ type: 'template', template: { name: b.template, language: { code: b.language, policy: 'deterministic' }, components } }],
      },
      status: null,
    })
  }

  cancelBroadcast(id: number): Promise<Broadcast> {
    return this.c.request('DELETE', `${this.base}/broadcasts/${id}`)
  }

  // HTTP steps

  private node(flowKey: string, nodeId: string): string {
    return `${this.base}/flows/${seg(flowKey)}/nodes/${seg(nodeId)}`
  }

  httpStep(flowKey: string, nodeId: string): Promise<HttpStepState> {
    return this.c.request('GET', this.node(flowKey, nodeId))
  }

  /** One call of the published node, or, with draft, of that node as the builder has it (not logged). */
  testHttpStep(flowKey: string, nodeId: string, attributes: Record<string, string>, draft?: HttpNode): Promise<HttpTestResult> {
    return this.c.request('POST', `${this.node(flowKey, nodeId)}/test`, draft ? { attributes, node: draft } : { attributes })
  }

  httpLogs(flowKey: string, nodeId: string): Promise<HttpLogs> {
    return this.c.request('GET', `${this.node(flowKey, nodeId)}/logs`)
  }

  httpLog(flowKey: string, nodeId: string, logId: number): Promise<HttpLog> {
    return this.c.request('GET', `${this.node(flowKey, nodeId)}/logs/${logId}`)
  }

  remap(flowKey: string, nodeId: string): Promise<HttpStepState> {
    return this.c.request('POST', `${this.node(flowKey, nodeId)}/remap`)
  }

  resetMailTimeout(flowKey: string, nodeId: string): Promise<HttpStepState> {
    return this.c.request('POST', `${this.node(flowKey, nodeId)}/reset-mail-timeout`)
  }
}
