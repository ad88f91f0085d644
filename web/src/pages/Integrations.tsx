import { useState } from 'react'
import type { ApiKey, FlowSummary, NewKey } from '../api'
import { broadcastUrl, origin, templateUrl, triggerUrl, type BotCtx } from '../bot'
import { ConfirmButton, CopyButton, CopyField, Empty, ErrorNote, Loaded, Time, useAction, useLoad } from '../ui'

const keyPlaceholder = '<API_KEY>'
const samplePhone = '919876543210'

/** What an integrator needs: ids, API keys and ready-to-copy calls. */
export function Integrations({ bot }: { bot: BotCtx }) {
  const keys = useLoad(() => bot.api.keys(), [bot])
  const flows = useLoad(() => bot.api.flows(), [bot])
  // The key shown once, also used in the curl examples until the page is left.
  const [shown, setShown] = useState<NewKey | null>(null)
  const act = useAction()

  const mint = (fn: () => Promise<NewKey>) =>
    act.run(async () => {
      setShown(await fn())
      keys.reload(true)
    })

  return (
    <section>
      <h1>Integrations</h1>
      <div className="card ids">
        <CopyField label="Customer id" value={String(bot.cid)} />
        <CopyField label="Bot key" value={bot.botKey} />
        <CopyField label="Base URL" value={origin()} />
      </div>

      <h2>API keys</h2>
      <p className="muted">
        Platform calls send <code>Authorization: Basic &lt;api key&gt;</code>. A key is shown once, when it is created
        or regenerated; Parley keeps only its hash.
      </p>
      {shown && (
        <div className="alert success" role="status" data-testid="new-key">
          <p>
            Key {shown.id} is shown <strong>only now</strong>. Copy it and keep it safe.
          </p>
          <CopyField label="New API key" value={shown.api_key} />
        </div>
      )}
      <ErrorNote error={act.error} />
      <Loaded state={keys.state} what="API keys" retry={keys.reload}>
        {(ks) =>
          ks.length === 0 ? (
            <Empty>This bot has no API keys.</Empty>
          ) : (
            <KeyTable
              keys={ks}
              busy={act.busy}
              onRevoke={(id) =>
                act.run(async () => {
                  await bot.api.revokeKey(id)
                  keys.reload(true)
                })
              }
              onRegenerate={(id) => mint(() => bot.api.regenerateKey(id))}
            />
          )
        }
      </Loaded>
      <button type="button" className="primary" disabled={act.busy} onClick={() => void mint(() => bot.api.createKey())}>
        Create API key
      </button>

      <h2>Calls</h2>
      <Loaded state={flows.state} what="flows" retry={flows.reload}>
        {(fs) => <CurlExamples bot={bot} flows={fs} apiKey={shown?.api_key ?? ''} />}
      </Loaded>
    </section>
  )
}

function KeyTable({
  keys,
  busy,
  onRevoke,
  onRegenerate,
}: {
  keys: ApiKey[]
  busy: boolean
  onRevoke: (id: number) => void
  onRegenerate: (id: number) => void
}) {
  return (
    <div className="table-wrap">
      <table>
        <thead>
          <tr>
            <th scope="col">Id</th>
            <th scope="col">Key</th>
            <th scope="col">Created</th>
            <th scope="col">State</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {keys.map((k) => (
            <tr key={k.id} data-testid={`key-${k.id}`}>
              <td>{k.id}</td>
              <td>
                <code>…{k.hint}</code>
              </td>
              <td>
                <Time at={k.created_at} />
              </td>
              <td>
                {k.revoked_at ? (
                  <>
                    revoked <Time at={k.revoked_at} />
                  </>
                ) : (
                  'active'
                )}
              </td>
              <td>
                {!k.revoked_at && (
                  <div className="row-actions">
                    <ConfirmButton
                      label="Revoke"
                      question={`Revoke key ${k.id}? Calls with it fail at once.`}
                      disabled={busy}
                      onConfirm={() => onRevoke(k.id)}
                    />
                    <ConfirmButton
                      label="Regenerate"
                      question={`Replace key ${k.id} with a new one?`}
                      disabled={busy}
                      onConfirm={() => onRegenerate(k.id)}
                    />
                  </div>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

type CallKind = 'v1' | 'v2' | 'template' | 'broadcast'

/** Shell-quotes a word for a POSIX shell. */
function sq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`
}

function curlFor(bot: BotCtx, kind: CallKind, flowKey: string, apiKey: string, phone: string): string {
  const auth = `-H ${sq(`Authorization: Basic ${apiKey || keyPlaceholder}`)}`
  switch (kind) {
    case 'v1': {
      const q = new URLSearchParams({ 'user.phone_no': phone })
      return `curl -X POST ${sq(`${triggerUrl(bot, flowKey, 'v1')}?${q}`)} \\\n  ${auth}`
    }
    case 'v2': {
      const body = JSON.stringify({ 'user.channel': 'whatsapp', 'user.phone_no': phone })
      return `curl -X POST ${sq(triggerUrl(bot, flowKey, 'v2'))} \\\n  ${auth} \\\n  -H 'Content-Type: application/json' \\\n  -d ${sq(body)}`
    }
    case 'template': {
      const body = JSON.stringify({
        phoneNumber: `+${phone}`,
        payload: { name: 'order_update', language: { code: 'en', policy: 'deterministic' }, components: [] },
      })
      return `curl -X POST ${sq(templateUrl(bot))} \\\n  ${auth} \\\n  -H 'Content-Type: application/json' \\\n  -d ${sq(body)}`
    }
    case 'broadcast': {
      const body = JSON.stringify({
        broadcastTitle: 'Hello',
        audience: { rule: { channels: ['whatsapp'], channelUserIds: [phone] } },
        payload: { type: 'direct', content: [{ type: 'text', data: { message: 'Hello from Parley' } }] },
      })
      return `curl -X POST ${sq(broadcastUrl(bot))} \\\n  ${auth} \\\n  -H 'Content-Type: application/json' \\\n  -d ${sq(body)}`
    }
  }
}

function CurlExamples({ bot, flows, apiKey }: { bot: BotCtx; flows: FlowSummary[]; apiKey: string }) {
  const [kind, setKind] = useState<CallKind>(flows.length > 0 ? 'v2' : 'template')
  const [flowKey, setFlowKey] = useState(flows[0]?.flow_key ?? '')
  const [key, setKey] = useState('')
  const [phone, setPhone] = useState(samplePhone)
  const usedKey = key || apiKey
  const needsFlow = kind === 'v1' || kind === 'v2'
  const text = needsFlow && !flowKey ? '' : curlFor(bot, kind, flowKey, usedKey, phone.replace(/\D/g, '') || samplePhone)

  return (
    <div className="card">
      <div className="form-row">
        <label>
          Call
          <select value={kind} onChange={(e) => setKind(e.target.value as CallKind)}>
            <option value="v1">Trigger a flow (v1: query string)</option>
            <option value="v2">Trigger a flow (v2: JSON body)</option>
            <option value="template">Send a WhatsApp template</option>
            <option value="broadcast">Send a broadcast (v1)</option>
          </select>
        </label>
        {needsFlow && (
          <label>
            Flow
            <select value={flowKey} onChange={(e) => setFlowKey(e.target.value)} disabled={flows.length === 0}>
              {flows.map((f) => (
                <option key={f.flow_key} value={f.flow_key}>
                  {f.name || f.flow_key}
                </option>
              ))}
            </select>
          </label>
        )}
        <label>
          Phone number
          <input inputMode="tel" value={phone} onChange={(e) => setPhone(e.target.value)} />
        </label>
        <label>
          API key for the example
          <input value={key} placeholder={apiKey || keyPlaceholder} onChange={(e) => setKey(e.target.value)} autoComplete="off" />
        </label>
      </div>
      {text ? (
        <>
          <pre className="code" data-testid="curl" aria-label="curl command">
            {text}
          </pre>
          <CopyButton text={text} label="curl command" />
        </>
      ) : (
        <Empty>This bot has no flows to trigger yet: import one on the Flows page.</Empty>
      )}
    </div>
  )
}
