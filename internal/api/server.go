package api

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/channel/registry"
	"github.com/parleyhq/parley/internal/console"
	"github.com/parleyhq/parley/internal/engine"
	"github.com/parleyhq/parley/internal/httpstep"
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
	if s.Registry == nil {
		s.Registry = prometheus.NewRegistry()
	}
	s.metrics = newHTTPMetrics(s.Registry)
	s.routes()
	s.handler = s.instrument(s.mux)
	return s
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /readyz", s.readyz)
	m.Handle("GET /metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{}))

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
	s.channelRoutes()
	s.httpStepRoutes()

	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, notFound("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.Ready != nil {
		if err := s.Ready(r.Context()); err != nil {
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
		s.log.Error("authenticate", "err", err)
		return internalError()
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
			s.log.Error("look up bot", "err", err)
			return internalError()
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

// storeError maps store sentinels onto envelope errors; anything else is logged as 500.
func (s *Server) storeError(what string, err error) *Error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("%s not found", what)
	case errors.Is(err, store.ErrConflict):
		return errorf(http.StatusConflict, CodeConflict, "CONFLICT", "%s already exists", what)
	}
	s.log.Error(what, "err", err)
	return internalError()
}
