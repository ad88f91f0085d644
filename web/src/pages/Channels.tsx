import { useState, type FormEvent } from 'react'
import type { ChannelConfig, ChannelInput, ChannelName, ChannelView } from '../api'
import { origin, type BotCtx } from '../bot'
import { CopyField, Empty, ErrorNote, Loaded, useAction, useLoad } from '../ui'

type FieldName = Exclude<keyof ChannelConfig, 'adapter' | 'rate_per_second'>

interface FieldSpec {
  name: FieldName
  label: string
  secret?: boolean
  required?: boolean
  /** A value the provider's console asks for: shown in clear and can be generated. */
  paste?: boolean
  /** A whole document (a JSON key file), edited in a text area. */
  document?: boolean
}

/** The settings each adapter takes (internal/channel/registry/config.go). */
const adapterFields: Record<string, FieldSpec[]> = {
  sandbox: [],
  whatsapp: [
    { name: 'phone_number_id', label: 'Phone number id', required: true },
    { name: 'token', label: 'Access token', secret: true, required: true },
    { name: 'app_secret', label: 'App secret', secret: true },
    { name: 'verify_token', label: 'Verify token', secret: true, paste: true },
    { name: 'api_version', label: 'Graph API version (e.g. v21.0)' },
    { name: 'base_url', label: 'Base URL (leave empty for Meta)' },
  ],
  rcs: [
    { name: 'agent_id', label: 'Agent id', required: true },
    { name: 'service_account_json', label: 'Service-account key (JSON; Parley mints the access tokens)', secret: true, document: true },
    { name: 'token', label: 'Access token (instead of a service-account key; expires within the hour)', secret: true },
    { name: 'client_token', label: 'Client token', secret: true, paste: true },
    { name: 'base_url', label: 'Base URL (leave empty for Google)' },
  ],
}

const providerName: Record<ChannelName, string> = { whatsapp: 'Meta', rcs: 'Google' }

/** The bot's WhatsApp and RCS settings. */
export function Channels({ bot }: { bot: BotCtx }) {
  const { state, reload } = useLoad(() => bot.api.channels(), [bot])
  return (
    <section>
      <h1>Channels</h1>
      <p className="muted">
        Each channel is served by the sandbox (messages go straight into the conversation) or by its provider.
        Secrets are write-only: leave a secret empty to keep the stored one.
      </p>
      <Loaded state={state} what="channels" retry={reload}>
        {(chs) =>
          chs.length === 0 ? (
            <Empty>This server offers no channels.</Empty>
          ) : (
            chs.map((v) => <ChannelForm key={v.channel} bot={bot} view={v} />)
          )
        }
      </Loaded>
    </section>
  )
}

function randomToken(): string {
  const b = new Uint8Array(18)
  crypto.getRandomValues(b)
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')
}

function initial(view: ChannelView): Record<FieldName, string> {
  const c = view.config
  return {
    base_url: c.base_url ?? '',
    phone_number_id: c.phone_number_id ?? '',
    agent_id: c.agent_id ?? '',
    api_version: c.api_version ?? '',
    // Secrets come back redacted: never put them in a field.
    token: '',
    app_secret: '',
    verify_token: '',
    client_token: '',
    service_account_json: '',
  }
}

function ChannelForm({ bot, view: first }: { bot: BotCtx; view: ChannelView }) {
  const [view, setView] = useState(first)
  const [adapter, setAdapter] = useState(first.config.adapter || 'sandbox')
  const [values, setValues] = useState(() => initial(first))
  const [rate, setRate] = useState(first.config.rate_per_second ? String(first.config.rate_per_second) : '')
  // Values to paste into the provider, as just saved (the server shows them redacted).
  const [saved, setSaved] = useState<Partial<Record<FieldName, string>>>({})
  const [ok, setOk] = useState(false)
  const act = useAction()
  const ch = view.channel
  const fields = adapterFields[adapter] ?? []
  const title = ch === 'whatsapp' ? 'WhatsApp' : 'RCS'

  const submit = (e: FormEvent) => {
    e.preventDefault()
    setOk(false)
    const body: ChannelInput = { adapter }
    for (const f of fields) {
      const v = values[f.name].trim()
      if (v) body[f.name] = v
    }
    if (adapter !== 'sandbox' && rate.trim()) {
      const n = Number(rate)
      body.rate_per_second = Number.isFinite(n) ? n : rate.trim()
    }
    void act.run(async () => {
      const v = await bot.api.setChannel(ch, body)
      const pasted: Partial<Record<FieldName, string>> = {}
      for (const f of fields) if (f.paste && values[f.name].trim()) pasted[f.name] = values[f.name].trim()
      setSaved(pasted)
      setView(v)
      setValues(initial(v))
      setOk(true)
    })
  }

  return (
    <form className="card channel" onSubmit={submit} aria-labelledby={`ch-${ch}`}>
      <h2 id={`ch-${ch}`}>{title}</h2>
      <label>
        Adapter
        <select value={adapter} onChange={(e) => setAdapter(e.target.value)}>
          <option value="sandbox">Sandbox (no provider)</option>
          <option value={ch}>{title} ({providerName[ch]})</option>
        </select>
      </label>
      {adapter !== view.config.adapter && adapter !== 'sandbox' && (
        <p className="muted">Switching adapters starts afresh: enter every secret.</p>
      )}
      {fields.map((f) => {
        const stored = f.secret ? view.config[f.name] : undefined
        return (
          <label key={f.name}>
            <span>
              {f.label}
              {f.required && <span aria-hidden="true"> *</span>}
            </span>
            <span className="with-button">
              {f.document ? (
                <textarea
                  rows={4}
                  spellCheck={false}
                  value={values[f.name]}
                  placeholder={stored ? `stored (${stored}); leave empty to keep` : ''}
                  onChange={(e) => setValues({ ...values, [f.name]: e.target.value })}
                />
              ) : (
                <input
                  type={f.secret && !f.paste ? 'password' : 'text'}
                  autoComplete="off"
                  value={values[f.name]}
                  required={f.required && !stored}
                  placeholder={stored ? `stored (${stored}); leave empty to keep` : ''}
                  onChange={(e) => setValues({ ...values, [f.name]: e.target.value })}
                />
              )}
              {f.paste && (
                <button type="button" className="small" onClick={() => setValues({ ...values, [f.name]: randomToken() })}>
                  Generate
                </button>
              )}
            </span>
          </label>
        )
      })}
      {adapter !== 'sandbox' && (
        <label>
          Messages per second (a number, “default” or “unlimited”; empty for the default)
          <input value={rate} onChange={(e) => setRate(e.target.value)} />
        </label>
      )}
      <button type="submit" className="primary" disabled={act.busy}>
        Save {title} settings
      </button>
      {ok && (
        <p className="alert success" role="status">
          Saved.
        </p>
      )}
      <ErrorNote error={act.error} />
      {view.warnings && view.warnings.length > 0 && (
        <ul className="alert warn">
          {view.warnings.map((w) => (
            <li key={w}>{w}</li>
          ))}
        </ul>
      )}
      <ProviderSetup view={view} saved={saved} />
    </form>
  )
}

/** What to paste into Meta's or Google's console. */
function ProviderSetup({ view, saved }: { view: ChannelView; saved: Partial<Record<FieldName, string>> }) {
  if (!view.webhook_path) {
    return <p className="muted">The sandbox needs no webhook.</p>
  }
  const tokenField: FieldName = view.channel === 'whatsapp' ? 'verify_token' : 'client_token'
  const tokenLabel = view.channel === 'whatsapp' ? 'Verify token' : 'Client token'
  const justSaved = saved[tokenField]
  const stored = view.config[tokenField]
  return (
    <div className="provider">
      <h3>Paste into {providerName[view.channel]}</h3>
      <CopyField label={`${view.channel === 'whatsapp' ? 'WhatsApp' : 'RCS'} webhook URL`} value={origin() + view.webhook_path} />
      {justSaved ? (
        <CopyField label={tokenLabel} value={justSaved} />
      ) : (
        <p className="muted">
          {tokenLabel}: {stored ? `stored (${stored}). Enter or generate a new one to see it in full.` : 'not set.'}
        </p>
      )}
    </div>
  )
}
