import { useState, type FormEvent } from 'react'
import type { NewBot } from '../api'
import { Link } from '../router'
import { useApi } from '../session'
import { CopyField, Empty, ErrorNote, Loaded, Time, useAction, useLoad, useTitle } from '../ui'

/** A customer's bots, and a form to add one. */
export function CustomerPage({ cid }: { cid: number }) {
  const api = useApi()
  const customer = useLoad(() => api.customer(cid), [api, cid])
  const bots = useLoad(() => api.bots(cid), [api, cid])
  const [name, setName] = useState('')
  const [created, setCreated] = useState<NewBot | null>(null)
  const create = useAction()
  useTitle(customer.state.kind === 'ok' ? customer.state.data.name : `Customer ${cid}`)

  const submit = (e: FormEvent) => {
    e.preventDefault()
    void create.run(async () => {
      setCreated(await api.createBot(cid, name.trim()))
      setName('')
      bots.reload(true)
    })
  }

  return (
    <section>
      <Loaded state={customer.state} what="the customer" retry={customer.reload}>
        {(c) => (
          <h1>
            {c.name} <span className="muted">customer {c.customer_id}</span>
          </h1>
        )}
      </Loaded>
      <h2>Bots</h2>
      <Loaded state={bots.state} what="bots" retry={bots.reload}>
        {(bs) =>
          bs.length === 0 ? (
            <Empty>This customer has no bots yet.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Bot key</th>
                    <th scope="col">Created</th>
                  </tr>
                </thead>
                <tbody>
                  {bs.map((b) => (
                    <tr key={b.bot_key}>
                      <td>
                        <Link to={`/customers/${cid}/bots/${b.bot_key}/integrations`}>{b.name}</Link>
                      </td>
                      <td>
                        <code>{b.bot_key}</code>
                      </td>
                      <td>
                        <Time at={b.created_at} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
      {created && (
        <div className="alert success" role="status" data-testid="new-bot">
          <p>
            Bot created. Its first API key is shown <strong>only now</strong>: copy it.
          </p>
          <CopyField label="API key" value={created.api_key} />
          <p>
            <Link to={`/customers/${cid}/bots/${created.bot_key}/integrations`}>Open the bot's integrations</Link>
          </p>
        </div>
      )}
      <form className="inline-form" onSubmit={submit}>
        <h2>New bot</h2>
        <label>
          Bot name
          <input required value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <button type="submit" className="primary" disabled={create.busy}>
          Create bot
        </button>
        <ErrorNote error={create.error} />
      </form>
    </section>
  )
}
