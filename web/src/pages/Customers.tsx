import { useState, type FormEvent } from 'react'
import { Link, navigate } from '../router'
import { useApi } from '../session'
import { Empty, ErrorNote, Loaded, Time, useAction, useLoad, useTitle } from '../ui'

/** Operators: every customer, and a form to add one. */
export function Customers() {
  const api = useApi()
  const { state, reload } = useLoad(() => api.customers(), [api])
  const [name, setName] = useState('')
  const create = useAction()
  useTitle('Customers')

  const submit = (e: FormEvent) => {
    e.preventDefault()
    void create.run(async () => {
      const c = await api.createCustomer(name.trim())
      navigate(`/customers/${c.customer_id}`)
    })
  }

  return (
    <section>
      <h1>Customers</h1>
      <Loaded state={state} what="customers" retry={reload}>
        {(cs) =>
          cs.length === 0 ? (
            <Empty>No customers yet. Add the first one below.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Id</th>
                    <th scope="col">Name</th>
                    <th scope="col">HTTP-step calls/min</th>
                    <th scope="col">Created</th>
                  </tr>
                </thead>
                <tbody>
                  {cs.map((c) => (
                    <tr key={c.customer_id}>
                      <td>{c.customer_id}</td>
                      <td>
                        <Link to={`/customers/${c.customer_id}`}>{c.name}</Link>
                      </td>
                      <td>{c.http_rate ?? 'server default'}</td>
                      <td>
                        <Time at={c.created_at} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
      <form className="inline-form" onSubmit={submit}>
        <h2>New customer</h2>
        <label>
          Customer name
          <input required value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <button type="submit" className="primary" disabled={create.busy}>
          Create customer
        </button>
        <ErrorNote error={create.error} />
      </form>
    </section>
  )
}
