// The signed-in principal and the API client, shared by every page.

import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react'
import { ApiError, Client, type Principal } from './api'

type SessionState =
  | { kind: 'checking' }
  | { kind: 'signed-out'; expired: boolean; error?: string }
  | { kind: 'signed-in'; user: Principal }

interface SessionValue {
  state: SessionState
  api: Client
  signIn: (creds: { admin_token: string } | { email: string; password: string }) => Promise<void>
  signOut: () => Promise<void>
}

const Ctx = createContext<SessionValue | null>(null)

export function SessionProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<SessionState>({ kind: 'checking' })
  // A 401 on any call means the session ended (expired, signed out elsewhere, user
  // deleted): back to sign-in, saying so.
  const api = useMemo(
    () => new Client(() => setState((s) => (s.kind === 'signed-in' ? { kind: 'signed-out', expired: true } : s))),
    [],
  )

  useEffect(() => {
    let live = true
    api.session().then(
      (s) => {
        if (!live) return
        api.setCsrf(s.csrf_token)
        setState({ kind: 'signed-in', user: s.user })
      },
      (e: unknown) => {
        if (!live) return
        const error = e instanceof ApiError && e.status !== 401 ? e.message : undefined
        setState({ kind: 'signed-out', expired: false, error })
      },
    )
    return () => {
      live = false
    }
  }, [api])

  const signIn = useCallback<SessionValue['signIn']>(
    async (creds) => {
      const s = await api.signIn(creds)
      api.setCsrf(s.csrf_token)
      setState({ kind: 'signed-in', user: s.user })
    },
    [api],
  )

  const signOut = useCallback(async () => {
    try {
      await api.signOut()
    } finally {
      api.setCsrf('')
      setState({ kind: 'signed-out', expired: false })
    }
  }, [api])

  const value = useMemo(() => ({ state, api, signIn, signOut }), [state, api, signIn, signOut])
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>
}

export function useSession(): SessionValue {
  const v = useContext(Ctx)
  if (!v) throw new Error('useSession outside SessionProvider')
  return v
}

/** The API client. */
export function useApi(): Client {
  return useSession().api
}
