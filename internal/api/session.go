package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/parleyhq/parley/internal/console"
)

// The admin API has two kinds of caller: scripts with the admin token (Authorization:
// Bearer), and the console, signed in with a session cookie. A cookie is sent by the
// browser on its own, so every state-changing request that relies on one must also carry
// the session's CSRF token in X-CSRF-Token and must not come from another origin. A
// customer user reaches only the routes of its own customer.

// sessionCookie names the console's session cookie.
const sessionCookie = "parley_session"

// csrfHeader carries the session's CSRF token on state-changing requests.
const csrfHeader = "X-CSRF-Token"

type principalKey struct{}

// principalOf is who the admin request is from (set by admin and operatorOnly).
func principalOf(r *http.Request) console.Principal {
	p, _ := r.Context().Value(principalKey{}).(console.Principal)
	return p
}

type adminHandler func(w http.ResponseWriter, r *http.Request) *Error

// admin serves an admin route to any signed-in principal. On routes under
// /admin/v1/customers/{cid} a customer user must be that customer's.
func (s *Server) admin(h adminHandler) http.HandlerFunc {
	return s.adminFor(false, h)
}

// operatorOnly serves an admin route to operators only.
func (s *Server) operatorOnly(h adminHandler) http.HandlerFunc {
	return s.adminFor(true, h)
}

func (s *Server) adminFor(operatorOnly bool, h adminHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, e := s.authenticateAdmin(r)
		if e == nil {
			e = authorize(r, p, operatorOnly)
		}
		if e == nil {
			e = h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
		}
		if e != nil {
			writeError(w, e)
		}
	}
}

func authorize(r *http.Request, p console.Principal, operatorOnly bool) *Error {
	if p.IsOperator() {
		return nil
	}
	if operatorOnly {
		return forbidden("only operators may do this")
	}
	if v := r.PathValue("cid"); v != "" {
		cid, err := strconv.ParseInt(v, 10, 64)
		if err != nil || !p.MayAccess(cid) {
			return forbidden("this account may not reach customer " + strconvQuote(v))
		}
	}
	return nil
}

// authenticateAdmin finds the principal of an admin request: the admin token in a
// bearer header, else the console session in the cookie (with the CSRF checks for
// state-changing methods).
func (s *Server) authenticateAdmin(r *http.Request) (console.Principal, *Error) {
	if h := r.Header.Get("Authorization"); h != "" {
		if !s.Console.AdminTokenEnabled() {
			return console.Principal{}, forbidden("the admin token is disabled: start the server with --admin-token or PARLEY_ADMIN_TOKEN, or sign in to the console")
		}
		scheme, tok, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "bearer") || !s.Console.CheckAdminToken(strings.TrimSpace(tok)) {
			return console.Principal{}, unauthorized("send the admin token as Authorization: Bearer <token>")
		}
		return console.Operator, nil
	}
	sess, e := s.session(r)
	if e != nil {
		return console.Principal{}, e
	}
	if e := s.checkCSRF(r, sess); e != nil {
		return console.Principal{}, e
	}
	return sess.Principal, nil
}

// session returns the console session of the request's cookie.
func (s *Server) session(r *http.Request) (console.Session, *Error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return console.Session{}, unauthorized("send the admin token as Authorization: Bearer <token>, or sign in to the console")
	}
	sess, err := s.Console.Authenticate(r.Context(), c.Value)
	if errors.Is(err, console.ErrNoSession) {
		return console.Session{}, unauthorized("the console session has ended; sign in again")
	}
	if err != nil {
		return console.Session{}, s.failed(r, "console session", err)
	}
	return sess, nil
}

// safeMethod reports whether a method changes nothing (and so needs no CSRF token).
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func csrfFailed(details string) *Error {
	e := forbidden(details)
	e.Desc = "CSRF_FAILED"
	return e
}

// checkCSRF refuses a cookie-authenticated state-changing request that comes from
// another origin or lacks the session's CSRF token.
func (s *Server) checkCSRF(r *http.Request, sess console.Session) *Error {
	if safeMethod(r.Method) {
		return nil
	}
	if err := s.crossOrigin.Check(r); err != nil {
		return csrfFailed("cross-origin request refused")
	}
	if !console.SameToken(r.Header.Get(csrfHeader), sess.CSRFToken) {
		return csrfFailed("send the session's CSRF token in " + csrfHeader)
	}
	return nil
}

func (s *Server) sessionRoutes() {
	m := s.mux
	m.HandleFunc("POST /admin/v1/session", s.signIn)
	m.HandleFunc("GET /admin/v1/session", s.getSession)
	m.HandleFunc("DELETE /admin/v1/session", s.signOut)
	m.HandleFunc("GET /admin/v1/users", s.operatorOnly(s.listConsoleUsers))
	m.HandleFunc("POST /admin/v1/users", s.operatorOnly(s.createConsoleUser))
	m.HandleFunc("DELETE /admin/v1/users/{id}", s.operatorOnly(s.deleteConsoleUser))
	m.HandleFunc("PUT /admin/v1/users/{id}/password", s.admin(s.setConsolePassword))
}

type sessionJSON struct {
	User      console.Principal `json:"user"`
	CSRFToken string            `json:"csrf_token"`
}

// signIn opens a console session: {"admin_token"} or {"email", "password"}.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	if e := s.serveSignIn(w, r); e != nil {
		writeError(w, e)
	}
}

func (s *Server) serveSignIn(w http.ResponseWriter, r *http.Request) *Error {
	if err := s.crossOrigin.Check(r); err != nil {
		return csrfFailed("cross-origin sign-in refused")
	}
	var body struct {
		AdminToken string `json:"admin_token"`
		Email      string `json:"email"`
		Password   string `json:"password"`
	}
	if e := decodeStrict(r, &body); e != nil {
		return e
	}
	client := clientAddr(r)
	var sess console.Session
	var err error
	switch {
	case body.AdminToken != "" && body.Email == "" && body.Password == "":
		sess, err = s.Console.SignInWithToken(r.Context(), body.AdminToken, client)
	case body.AdminToken == "" && body.Email != "" && body.Password != "":
		sess, err = s.Console.SignInWithPassword(r.Context(), body.Email, body.Password, client)
	default:
		return invalid("send either {\"admin_token\"} or {\"email\", \"password\"}")
	}
	var tooMany *console.TooManyAttemptsError
	switch {
	case errors.As(err, &tooMany):
		w.Header().Set("Retry-After", strconv.Itoa(int(tooMany.RetryAfter.Seconds())+1))
		return errorf(http.StatusTooManyRequests, CodeRateLimited, "RATE_LIMITED", "%s", tooMany.Error())
	case errors.Is(err, console.ErrBadCredentials):
		if body.AdminToken != "" {
			return unauthorized("wrong admin token")
		}
		return unauthorized("wrong email or password")
	case err != nil:
		return s.failed(r, "console sign-in", err)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sess.Token, Path: "/", HttpOnly: true,
		Secure: servedOverTLS(r), SameSite: http.SameSiteLaxMode})
	writeOK(w, sessionJSON{User: sess.Principal, CSRFToken: sess.CSRFToken})
	return nil
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	sess, e := s.session(r)
	if e != nil {
		writeError(w, e)
		return
	}
	writeOK(w, sessionJSON{User: sess.Principal, CSRFToken: sess.CSRFToken})
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	sess, e := s.session(r)
	if e == nil {
		e = s.checkCSRF(r, sess)
	}
	if e != nil {
		writeError(w, e)
		return
	}
	if err := s.Console.SignOut(r.Context(), sess.Token); err != nil {
		writeError(w, s.failed(r, "console sign-out", err))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: servedOverTLS(r), SameSite: http.SameSiteLaxMode})
	writeOK(w, map[string]bool{"signed_out": true})
}

// servedOverTLS reports whether the browser reached us over HTTPS, directly or through
// a proxy that says so; the session cookie is then marked Secure.
func servedOverTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// clientAddr is the caller's address, which sign-in failures are counted by.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// accountError maps the console's account errors onto the envelope.
func (s *Server) accountError(r *http.Request, err error) *Error {
	switch {
	case errors.Is(err, console.ErrInvalidAccount):
		return invalid("%s", err.Error())
	case errors.Is(err, console.ErrEmailTaken):
		return errorf(http.StatusConflict, CodeConflict, "CONFLICT", "%s", err.Error())
	case errors.Is(err, console.ErrUserNotFound):
		return notFound("%s", err.Error())
	}
	return s.failed(r, "console account", err)
}

func (s *Server) listConsoleUsers(w http.ResponseWriter, r *http.Request) *Error {
	us, err := s.Console.Users(r.Context())
	if err != nil {
		return s.accountError(r, err)
	}
	writeOK(w, map[string]any{"users": us})
	return nil
}

func (s *Server) createConsoleUser(w http.ResponseWriter, r *http.Request) *Error {
	var body struct {
		Email      string `json:"email"`
		Password   string `json:"password"`
		CustomerID *int64 `json:"customer_id"`
	}
	if e := decodeStrict(r, &body); e != nil {
		return e
	}
	u, err := s.Console.CreateUser(r.Context(), body.Email, body.Password, body.CustomerID)
	if err != nil {
		return s.accountError(r, err)
	}
	writeOK(w, u)
	return nil
}

func pathUserID(r *http.Request) (int64, *Error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, invalid("user id %s is not a positive number", strconvQuote(r.PathValue("id")))
	}
	return id, nil
}

func (s *Server) deleteConsoleUser(w http.ResponseWriter, r *http.Request) *Error {
	id, e := pathUserID(r)
	if e != nil {
		return e
	}
	if err := s.Console.DeleteUser(r.Context(), id); err != nil {
		return s.accountError(r, err)
	}
	writeOK(w, map[string]any{"id": id, "deleted": true})
	return nil
}

// setConsolePassword changes a password: an operator's for anyone, a user's for itself.
func (s *Server) setConsolePassword(w http.ResponseWriter, r *http.Request) *Error {
	id, e := pathUserID(r)
	if e != nil {
		return e
	}
	if p := principalOf(r); !p.IsOperator() && (p.UserID == nil || *p.UserID != id) {
		return forbidden("an account may change only its own password")
	}
	var body struct {
		Password string `json:"password"`
	}
	if e := decodeStrict(r, &body); e != nil {
		return e
	}
	if err := s.Console.SetPassword(r.Context(), id, body.Password); err != nil {
		return s.accountError(r, err)
	}
	u, err := s.Console.UserByID(r.Context(), id)
	if err != nil {
		return s.accountError(r, err)
	}
	writeOK(w, u)
	return nil
}
