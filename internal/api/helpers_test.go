package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/api"
	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/broadcast"
	"github.com/parleyhq/parley/internal/catalog"
	"github.com/parleyhq/parley/internal/engine"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

const adminToken = "test-admin-token"

// env is a running API over a fresh database with two customers: acme (bots a and b)
// and globex (bot c).
type env struct {
	t    *testing.T
	st   *store.Store
	auth *auth.Service
	eng  *engine.Engine
	srv  *httptest.Server
	a, b auth.NewBot // acme's bots
	c    auth.NewBot // globex's bot
}

// envOption wires more of the server into a test env (channels, http steps).
type envOption func(t *testing.T, cfg *engine.Config, deps *api.Deps)

func newEnv(t *testing.T, st *store.Store, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, st: st, auth: auth.New(st, 50*time.Millisecond)}
	cfg := engine.Config{Workers: 8, Sweep: 50 * time.Millisecond}
	deps := api.Deps{Store: st, Auth: e.auth, AdminToken: adminToken, Ready: st.Ping}
	for _, o := range opts {
		o(t, &cfg, &deps)
	}
	e.eng = engine.New(st, cfg)
	if err := e.eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.eng.Stop(context.Background()) })
	deps.Engine = e.eng
	if deps.Broadcasts != nil {
		// withBroadcasts asked for broadcasts: they publish through this engine, as this
		// instance, and need its heartbeat, which the engine's start wrote.
		var ch broadcast.ChannelResolver = engine.SandboxOnly{}
		if deps.Channels != nil {
			ch = deps.Channels
		}
		deps.Broadcasts = broadcast.New(broadcast.Config{Store: st, Channels: ch, Sends: e.eng, InstanceID: e.eng.InstanceID(),
			Sweep: 50 * time.Millisecond, Max: deps.Broadcasts.Max(), ExternalBatch: 8})
		if err := deps.Broadcasts.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = deps.Broadcasts.Stop(context.Background()) })
	}
	e.srv = httptest.NewServer(api.New(deps))
	t.Cleanup(e.srv.Close)
	var err error
	if e.a, err = e.auth.CreateBot(ctx, "acme", "a"); err != nil {
		t.Fatal(err)
	}
	if e.b, err = e.auth.CreateBot(ctx, "acme", "b"); err != nil {
		t.Fatal(err)
	}
	if e.c, err = e.auth.CreateBot(ctx, "globex", "c"); err != nil {
		t.Fatal(err)
	}
	return e
}

// each runs fn against a fresh env on every database engine.
func each(t *testing.T, fn func(t *testing.T, e *env), opts ...envOption) {
	storetest.Each(t, func(t *testing.T, st *store.Store) { fn(t, newEnv(t, st, opts...)) })
}

// botPath is the platform API prefix of bot nb under the given version.
func botPath(version string, nb auth.NewBot) string {
	return "/bot-api/" + version + "/customer/" + itoa(nb.CustomerID) + "/bot/" + nb.BotKey
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// response is a decoded API answer.
type response struct {
	HTTP   int
	Header http.Header
	Body   []byte
	Status api.Status `json:"status"`
	Obj    json.RawMessage
}

func (r response) obj(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Obj, v); err != nil {
		t.Fatalf("decode responseObject %s: %v", r.Obj, err)
	}
}

// do sends a request; key "" sends no Authorization header.
func (e *env) do(method, path, key string, body any, hdr ...string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		rd = strings.NewReader(jsonString(b))
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Basic "+key)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := response{HTTP: res.StatusCode, Header: res.Header, Body: raw}
	var env struct {
		Status api.Status      `json:"status"`
		Obj    json.RawMessage `json:"responseObject"`
	}
	if err := json.Unmarshal(raw, &env); err == nil {
		out.Status, out.Obj = env.Status, env.Obj
	}
	return out
}

func (e *env) admin(method, path string, body any) response {
	e.t.Helper()
	return e.do(method, path, "", body, "Authorization", "Bearer "+adminToken)
}

// wantStatus checks the HTTP status and envelope code.
func wantStatus(t *testing.T, r response, httpStatus, code int) {
	t.Helper()
	if r.HTTP != httpStatus || r.Status.Code != code {
		t.Fatalf("got HTTP %d code %d (%s), want HTTP %d code %d; body %s", r.HTTP, r.Status.Code, r.Status.Details, httpStatus, code, r.Body)
	}
}

// importFlow stores a flow document for bot nb.
func (e *env) importFlow(nb auth.NewBot, doc string) store.FlowRecord {
	e.t.Helper()
	b, err := e.st.Bot(context.Background(), nb.CustomerID, nb.BotKey)
	if err != nil {
		e.t.Fatal(err)
	}
	rec, err := catalog.Import(context.Background(), e.st, b.ID, []byte(doc))
	if err != nil {
		e.t.Fatalf("import flow: %v", err)
	}
	e.eng.FlowChanged(b.ID, rec.Key)
	return rec
}

func mustBot(t *testing.T, e *env, nb auth.NewBot) store.Bot {
	t.Helper()
	b, err := e.st.Bot(context.Background(), nb.CustomerID, nb.BotKey)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
