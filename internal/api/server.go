package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/broadcast"
	"github.com/parleyhq/parley/internal/channel/registry"
	"github.com/parleyhq/parley/internal/console"
	"github.com/parleyhq/parley/internal/engine"
	"github.com/parleyhq/parley/internal/httpstep"
	"github.com/parleyhq/parley/internal/phone"
	"github.com/parleyhq/parley/internal/sanitize"
	"github.com/parleyhq/parley/internal/store"
)

// Deps is what the API needs from the rest of the server.
type Deps struct {
	Store    *store.Store
	Auth     *auth.Service
	Engine   *engine.Engine
	Channels *registry.Registry
	Log      *slog.Logger
	Registry *prometheus.Registry
	// AdminToken guards /admin/v1; empty disables the admin API.
	AdminToken string
	// Ready reports whether the server can take work (database reachable).
	Ready func(context.Context) error
	// HTTPSteps serves the admin actions on http nodes (test, logs, remap, mail reset).
	HTTPSteps *httpstep.Service
	// Console signs console users in; built from Store and AdminToken when nil.
	Console *console.Service
	// Broadcasts accepts and reports broadcasts; nil answers 503 on their routes.
	Broadcasts *broadcast.Service
	// SeparateMetrics leaves /metrics out of the API: the server serves it on a listener
	// of its own (--metrics-addr), through MetricsHandler.
	SeparateMetrics bool
}

// Server is the HTTP API.
type Server struct {
	Deps
	log     *slog.Logger
	metrics *httpMetrics
	mux     *http.ServeMux
	handler http.Handler
	// crossOrigin refuses state-changing browser requests from other origins.
	crossOrigin *http.CrossOriginProtection
}

// New builds the API.
func New(d Deps) *Server {
	s := &Server{Deps: d, log: d.Log, mux: http.NewServeMux(), crossOrigin: http.NewCrossOriginProtection()}
	if s.Console == nil && s.Store != nil {
		s.Console = console.New(console.Config{Store: s.Store, AdminToken: s.AdminToken})
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	// Phone numbers reach log lines through paths and wrapped errors; mask them there.
	s.log = slog.New(phone.RedactingHandler(s.log.Handler()))
	if s.Registry == nil {
		s.Registry = prometheus.NewRegistry()
	}
	s.metrics = newHTTPMetrics(s.Registry)
	s.routes()
	s.handler = s.instrument(http.HandlerFunc(s.route))
	return s
}

// MetricsHandler serves reg's metrics in Prometheus' text format.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /readyz", s.readyz)
	if !s.SeparateMetrics {
		m.Handle("GET /metrics", MetricsHandler(s.Registry))
	}

	const bot = "/customer/{cid}/bot/{botKey}"
	m.HandleFunc("POST /bot-api/v1.0"+bot+"/flow/{flowKey}", s.platform(s.triggerV1))
	m.HandleFunc("POST /bot-api/v2.0"+bot+"/flow/{flowKey}", s.platform(s.triggerV2))
	m.HandleFunc("GET /bot-api/v2.0"+bot+"/runs/{runId}", s.platform(s.getRun))
	m.HandleFunc("GET /bot-api/v1.0"+bot+"/users", s.platform(s.listUsers))
	m.HandleFunc("GET /bot-api/v1.0"+bot+"/channel-user/{channelUserId}/conversations", s.platform(s.conversations))

	s.docRoutes()
	s.sessionRoutes()
	s.adminRoutes()
	s.browseRoutes()
	s.draftRoutes()
	s.broadcastRoutes()
	s.channelRoutes()
	s.httpStepRoutes()

	m.Handle("GET /console/", console.Static())
	m.Handle("GET /console", http.RedirectHandler(console.Prefix, http.StatusMovedPermanently))
}

// route dispatches a request. A path no route matches is 404/1005; a path that matches
// routes of other methods only is 405/1010 with Allow (the mux's own answers, put in the
// envelope). Text in the path and query the database cannot store is refused here, at
// the edge, naming the parameter, before any handler sees it.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	h, pattern := s.mux.Handler(r)
	if pattern == "" {
		probe := &headerProbe{h: http.Header{}}
		h.ServeHTTP(probe, r)
		switch probe.code {
		case http.StatusMethodNotAllowed:
			allow := probe.h.Get("Allow")
			w.Header().Set("Allow", allow)
			writeError(w, methodNotAllowed(r.Method, r.URL.Path, allow))
		case http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusMovedPermanently:
			h.ServeHTTP(w, r) // a path to clean: the mux redirects
		default:
			writeError(w, notFound("no such endpoint: %s %s", r.Method, r.URL.Path))
		}
		return
	}
	if e := checkPathAndQuery(r, pattern); e != nil {
		writeError(w, e)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// headerProbe records the status and headers the mux's fallback handlers write.
type headerProbe struct {
	h    http.Header
	code int
}

func (p *headerProbe) Header() http.Header { return p.h }
func (p *headerProbe) WriteHeader(code int) {
	if p.code == 0 {
		p.code = code
	}
}
func (p *headerProbe) Write(b []byte) (int, error) {
	if p.code == 0 {
		p.code = http.StatusOK
	}
	return len(b), nil
}

// checkPathAndQuery refuses path parameters and query parameters holding NUL or
// invalid UTF-8, naming them by the route pattern's wildcard names.
func checkPathAndQuery(r *http.Request, pattern string) *Error {
	if _, p, ok := strings.Cut(pattern, " "); ok {
		pattern = p
	}
	names := strings.Split(pattern, "/")
	for i, seg := range strings.Split(r.URL.EscapedPath(), "/") {
		v, err := url.PathUnescape(seg)
		if err != nil {
			continue // the mux matched it; a bad escape cannot reach a handler as text
		}
		if err := sanitize.Check(v); err != nil {
			name := fmt.Sprintf("segment %d", i)
			if i < len(names) && strings.HasPrefix(names[i], "{") {
				name = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(names[i], "{"), "}"), "...")
			}
			return invalid("path parameter %s %v", name, err)
		}
	}
	if r.URL.RawQuery == "" {
		return nil
	}
	q, _ := url.ParseQuery(r.URL.RawQuery) // what does parse is what handlers read
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := sanitize.Check(k); err != nil {
			return invalid("query parameter name %s %v", strconvQuote(k), err)
		}
		for _, v := range q[k] {
			if err := sanitize.Check(v); err != nil {
				return invalid("query parameter %s %v", k, err)
			}
		}
	}
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.Ready != nil {
		if err := s.Ready(r.Context()); err != nil {
			if r.Context().Err() != nil {
				writeError(w, clientClosed())
				return
			}
			s.log.Warn("not ready", "err", err)
			writeError(w, errorf(http.StatusServiceUnavailable, CodeUnavailable, "UNAVAILABLE", "database unreachable"))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// platformHandler serves a platform route for an authenticated bot.
type platformHandler func(w http.ResponseWriter, r *http.Request, p auth.Principal) *Error

// platform authenticates the API key and checks it belongs to the customer and bot in the
// path: 401 for a missing, unknown or revoked key; 403 for a key of another bot or
// customer; 400/1002 for a customer/bot pair that does not exist.
func (s *Server) platform(h platformHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if e := s.servePlatform(w, r, h); e != nil {
			writeError(w, e)
		}
	}
}

func (s *Server) servePlatform(w http.ResponseWriter, r *http.Request, h platformHandler) *Error {
	key, e := apiKey(r)
	if e != nil {
		return e
	}
	p, err := s.Auth.Authenticate(r.Context(), key)
	if errors.Is(err, auth.ErrUnauthorized) {
		return unauthorized("the API key is unknown or has been revoked")
	}
	if err != nil {
		return s.failed(r, "authenticate", err)
	}
	cid, err := strconv.ParseInt(r.PathValue("cid"), 10, 64)
	if err != nil || cid <= 0 {
		return badBotOrCustomer()
	}
	botKey := r.PathValue("botKey")
	if cid != p.CustomerID || botKey != p.BotKey {
		if _, err := s.Store.Bot(r.Context(), cid, botKey); errors.Is(err, store.ErrNotFound) {
			return badBotOrCustomer()
		} else if err != nil {
			return s.failed(r, "look up bot", err)
		}
		return forbidden("this API key belongs to another bot")
	}
	return h(w, r, p)
}

// apiKey extracts the key from "Authorization: Basic <key>" (the vendor's form), from RFC
// 7617 Basic credentials (the key as password, or as user with an empty password), or,
// when no header is sent, from the authorization query parameter.
func apiKey(r *http.Request) (string, *Error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		h = r.URL.Query().Get("authorization")
		if h == "" {
			return "", unauthorized("send the API key as Authorization: Basic <api key>")
		}
		if !strings.Contains(strings.TrimSpace(h), " ") {
			return strings.TrimSpace(h), nil // a bare key in the query
		}
	}
	scheme, cred, ok := strings.Cut(strings.TrimSpace(h), " ")
	cred = strings.TrimSpace(cred)
	if !ok || cred == "" {
		return "", unauthorized("malformed Authorization header: want Basic <api key>")
	}
	switch strings.ToLower(scheme) {
	case "basic":
	case "bearer":
		return cred, nil
	default:
		return "", unauthorized("unsupported Authorization scheme " + strconvQuote(scheme) + ": want Basic <api key>")
	}
	if raw, err := base64.StdEncoding.DecodeString(cred); err == nil {
		if user, pass, ok := strings.Cut(string(raw), ":"); ok {
			if pass == "" {
				return user, nil
			}
			return pass, nil
		}
	}
	return cred, nil
}

func strconvQuote(s string) string {
	if len(s) > 20 {
		s = s[:20]
	}
	return strconv.Quote(s)
}

// storeError maps store sentinels onto envelope errors; anything else is a failure
// (see failed).
func (s *Server) storeError(r *http.Request, what string, err error) *Error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("%s not found", what)
	case errors.Is(err, store.ErrConflict):
		return errorf(http.StatusConflict, CodeConflict, "CONFLICT", "%s already exists", what)
	}
	return s.failed(r, what, err)
}

// failed reports an unexpected error while serving r: logged at ERROR and answered
// 500 — unless the client went away first (its context is done, and the error most
// likely says "context canceled"), which is no failure of the server's: that is logged
// at DEBUG and answered 499, and the request's log line says 499 at INFO.
func (s *Server) failed(r *http.Request, what string, err error) *Error {
	if r.Context().Err() != nil {
		s.log.Debug(what+": the client went away", "err", err)
		return clientClosed()
	}
	s.log.Error(what, "err", err)
	return internalError()
}

// logFailure logs a failure that does not end the request (one event of a webhook
// delivery) at ERROR, or at DEBUG when the client has gone away.
func (s *Server) logFailure(ctx context.Context, msg string, args ...any) {
	level := slog.LevelError
	if ctx.Err() != nil {
		level = slog.LevelDebug
	}
	s.log.Log(ctx, level, msg, args...)
}
