import { useState, type FormEvent } from 'react'
import type { ConsoleUser, Customer } from '../api'
import { useApi } from '../session'
import { ConfirmButton, Empty, ErrorNote, Loaded, Time, useAction, useLoad, useTitle } from '../ui'

const minPassword = 10

/** Operators: console accounts, operators and customer users. */
export function Accounts() {
  const api = useApi()
  const users = useLoad(() => api.users(), [api])
  const customers = useLoad(() => api.customers(), [api])
  useTitle('Accounts')
  const names = new Map<number, string>(
    customers.state.kind === 'ok' ? customers.state.data.map((c) => [c.customer_id, c.name]) : [],
  )

  return (
    <section>
      <h1>Console accounts</h1>
      <Loaded state={users.state} what="accounts" retry={users.reload}>
        {(us) =>
          us.length === 0 ? (
            <Empty>No accounts yet: only the admin token can sign in.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Email</th>
                    <th scope="col">Role</th>
                    <th scope="col">Customer</th>
                    <th scope="col">Created</th>
                    <th scope="col">Actions</th>
                  </tr>
                </thead>
                <tbody>
                  {us.map((u) => (
                    <AccountRow key={u.id} user={u} customer={u.customer_id === null ? '' : names.get(u.customer_id) ?? ''} onChange={() => users.reload(true)} />
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
      <Loaded state={customers.state} what="customers" retry={customers.reload}>
        {(cs) => <NewAccount customers={cs} onCreated={() => users.reload(true)} />}
      </Loaded>
    </section>
  )
}

function AccountRow({ user, customer, onChange }: { user: ConsoleUser; customer: string; onChange: () => void }) {
  const api = useApi()
  const act = useAction()
  const [pw, setPw] = useState<string | null>(null)
  const [done, setDone] = useState('')

  const remove = () =>
    act.run(async () => {
      await api.deleteUser(user.id)
      onChange()
    })
  const setPassword = (e: FormEvent) => {
    e.preventDefault()
    void act.run(async () => {
      await api.setPassword(user.id, pw ?? '')
      setPw(null)
      setDone('Password changed.')
    })
  }

  return (
    <tr>
      <td>{user.email}</td>
      <td>{user.role}</td>
      <td>{user.customer_id === null ? '—' : `${user.customer_id}${customer ? ` (${customer})` : ''}`}</td>
      <td>
        <Time at={user.created_at} />
      </td>
      <td>
        <div className="row-actions">
          {pw === null ? (
            <button type="button" className="small" onClick={() => (setPw(''), setDone(''))}>
              Set password
            </button>
          ) : (
            <form onSubmit={setPassword} className="row-actions">
              <input
                type="password"
                autoComplete="new-password"
                aria-label={`New password for ${user.email}`}
                minLength={minPassword}
                required
                value={pw}
                onChange={(e) => setPw(e.target.value)}
              />
              <button type="submit" className="small" disabled={act.busy}>
                Save
              </button>
              <button type="button" className="small" onClick={() => setPw(null)}>
                Cancel
              </button>
            </form>
          )}
          <ConfirmButton label="Delete" question={`Delete ${user.email}? Their sessions end at once.`} onConfirm={() => void remove()} disabled={act.busy} />
        </div>
        {done && <span role="status">{done}</span>}
        <ErrorNote error={act.error} />
      </td>
    </tr>
  )
}

function NewAccount({ customers, onCreated }: { customers: Customer[]; onCreated: () => void }) {
  const api = useApi()
  const [email, setEmail] = useState('')
  const [password, setPassword] = useState('')
  const [customer, setCustomer] = useState('')
  const [created, setCreated] = useState<ConsoleUser | null>(null)
  const act = useAction()

  const submit = (e: FormEvent) => {
    e.preventDefault()
    void act.run(async () => {
      const u = await api.createUser({ email: email.trim(), password, customer_id: customer ? Number(customer) : null })
      setCreated(u)
      setEmail('')
      setPassword('')
      onCreated()
    })
  }

  return (
    <form className="inline-form" onSubmit={submit}>
      <h2>New account</h2>
      <label>
        Email
        <input type="email" autoComplete="off" required value={email} onChange={(e) => setEmail(e.target.value)} />
      </label>
      <label>
        Password (at least {minPassword} characters)
        <input
          type="password"
          autoComplete="new-password"
          required
          minLength={minPassword}
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
      </label>
      <label>
        Access
        <select value={customer} onChange={(e) => setCustomer(e.target.value)}>
          <option value="">Operator (every customer)</option>
          {customers.map((c) => (
            <option key={c.customer_id} value={c.customer_id}>
              Customer {c.customer_id}: {c.name}
            </option>
          ))}
        </select>
      </label>
      <button type="submit" className="primary" disabled={act.busy}>
        Create account
      </button>
      {created && (
        <p className="alert success" role="status">
          Created {created.email} ({created.role}
          {created.customer_id !== null ? ` of customer ${created.customer_id}` : ''}).
        </p>
      )}
      <ErrorNote error={act.error} />
    </form>
  )
}
