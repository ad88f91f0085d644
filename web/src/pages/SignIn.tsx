import { useState, type FormEvent } from 'react'
import { useSession } from '../session'
import { ErrorNote, useAction, useTitle } from '../ui'

type Mode = 'password' | 'token'

/** Sign-in with an operator or customer account, or with the admin token. */
export function SignIn({ expired, error }: { expired: boolean; error?: string }) {
  const { signIn } = useSession()
  const [mode, setMode] = useState<Mode>('password')
  const [email, setEmail] = useState('')
  const [password, setPassword] = useState('')
  const [token, setToken] = useState('')
  const action = useAction()
  useTitle('Sign in')

  const submit = (e: FormEvent) => {
    e.preventDefault()
    void action.run(() => (mode === 'token' ? signIn({ admin_token: token }) : signIn({ email, password })))
  }

  return (
    <main className="signin">
      <form onSubmit={submit} className="card" aria-labelledby="signin-title">
        <h1 id="signin-title">Sign in to Parley</h1>
        {expired && (
          <p className="alert info" role="status">
            Your session has ended. Sign in again to continue.
          </p>
        )}
        {error && (
          <p className="alert error" role="alert">
            {error}
          </p>
        )}
        <fieldset className="segmented">
          <legend>Sign in with</legend>
          <label>
            <input type="radio" name="mode" checked={mode === 'password'} onChange={() => setMode('password')} />
            Account
          </label>
          <label>
            <input type="radio" name="mode" checked={mode === 'token'} onChange={() => setMode('token')} />
            Admin token
          </label>
        </fieldset>
        {mode === 'password' ? (
          <>
            <label>
              Email
              <input type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
            </label>
            <label>
              Password
              <input
                type="password"
                autoComplete="current-password"
                required
                value={password}
                onChange={(e) => setPassword(e.target.value)}
              />
            </label>
          </>
        ) : (
          <label>
            Token
            <input type="password" autoComplete="off" required value={token} onChange={(e) => setToken(e.target.value)} />
          </label>
        )}
        <ErrorNote error={action.error} />
        <button type="submit" className="primary" disabled={action.busy}>
          {action.busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  )
}
