package httpstep

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/riverqueue/river"

	"github.com/parleyhq/parley/internal/alert"
	"github.com/parleyhq/parley/internal/catalog"
	"github.com/parleyhq/parley/internal/flow"
	"github.com/parleyhq/parley/internal/queue"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// testClock is a clock tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	// Early in a minute, so that a test's calls never straddle two.
	return &testClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// target is an httptest server that records what it receives and answers with handler
// (an echo of the request as JSON by default).
type target struct {
	*httptest.Server
	hits    atomic.Int64
	mu      sync.Mutex
	last    targetRequest
	handler atomic.Pointer[http.HandlerFunc]
}

type targetRequest struct {
	Method      string `json:"method"`
	Path        string `json:"path"`
	Query       string `json:"query"`
	ContentType string `json:"content_type"`
	Auth        string `json:"auth"`
	Body        string `json:"body"`
}

func newTarget(t *testing.T) *target {
	t.Helper()
	tg := &target{}
	tg.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := targetRequest{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			ContentType: r.Header.Get("Content-Type"), Auth: r.Header.Get("Authorization"), Body: string(body)}
		tg.hits.Add(1)
		tg.mu.Lock()
		tg.last = req
		tg.mu.Unlock()
		if h := tg.handler.Load(); h != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			(*h)(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(req)
	}))
	t.Cleanup(tg.Close)
	return tg
}

func (tg *target) respond(h http.HandlerFunc) { tg.handler.Store(&h) }

func (tg *target) lastRequest() targetRequest {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.last
}

// jsonAnswer answers with a fixed status and body.
func jsonAnswer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// fixture is a customer, a bot and a flow holding the nodes of nodesJSON.
type fixture struct {
	st    *store.Store
	cid   int64
	botID int64
	key   string
}

func newFixture(t *testing.T, st *store.Store, nodesJSON string) fixture {
	t.Helper()
	ctx := context.Background()
	c, _, err := st.EnsureCustomer(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.CreateBot(ctx, c.ID, "0011223344556677", "bot")
	if err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`{"key": "f", "start": "call", "nodes": %s}`, nodesJSON)
	if _, err := catalog.Import(ctx, st, b.ID, []byte(doc)); err != nil {
		t.Fatalf("import %s: %v", doc, err)
	}
	return fixture{st: st, cid: c.ID, botID: b.ID, key: "f"}
}

func (f fixture) setRate(t *testing.T, n int) {
	t.Helper()
	if err := f.st.SetCustomerHTTPRate(context.Background(), f.cid, &n); err != nil {
		t.Fatal(err)
	}
}

func (f fixture) step(t *testing.T, s *Service, node string) Step {
	t.Helper()
	st, err := s.Step(context.Background(), f.cid, f.botID, f.key, node)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// newService builds a Service over st that may reach loopback addresses.
func newService(t *testing.T, cfg Config) *Service {
	t.Helper()
	if cfg.Client == nil {
		c, err := NewClient(Options{Allow: []string{"127.0.0.1/32"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.CloseIdleConnections)
		cfg.Client = c
	}
	s, err := NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// runCall makes a run's call of node n (any node of the fixture's flow may be replaced
// by n, which keeps its id) with attrs.
func runCall(s *Service, st Step, n *flow.HTTPNode, attrs map[string]string) StepResult {
	return s.Call(context.Background(), StepCall{CustomerID: st.CustomerID, BotID: st.BotID, FlowID: st.FlowID,
		FlowKey: st.FlowKey, RunID: "run-1", Node: n, Lookup: func(name string) (string, bool) {
			v, ok := attrs[name]
			return v, ok
		}})
}

const oneCallNode = `[{"id": "call", "type": "http", "method": "GET", "url": "https://example.com/"}]`

func TestServiceMethodsBodiesAndEscaping(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		tg := newTarget(t)
		f := newFixture(t, st, oneCallNode)
		f.setRate(t, 1000)
		s := newService(t, Config{Store: st})
		step := f.step(t, s, "call")
		attrs := map[string]string{"name": `Ann "A" O'Neil` + "\n", "path": "a b/c?d", "q": "x&y=z", "n": "42"}
		for _, tc := range []struct {
			method string
			url    string
			body   *flow.HTTPBody
			want   targetRequest
		}{
			{"GET", "/items/{{path}}?q={{q}}", nil,
				targetRequest{Method: "GET", Path: "/items/a%20b%2Fc%3Fd", Query: "q=x%26y%3Dz"}},
			{"GET", "/search", &flow.HTTPBody{Mode: ModeQuery, Fields: map[string]string{"who": "{{name}}", "n": "{{n}}"}},
				targetRequest{Method: "GET", Path: "/search", Query: "n=42&who=Ann+%22A%22+O%27Neil%0A"}},
			{"DELETE", "/items/{{n}}", &flow.HTTPBody{Mode: ModeQuery, Fields: map[string]string{"hard": "true"}},
				targetRequest{Method: "DELETE", Path: "/items/42", Query: "hard=true"}},
			{"OPTIONS", "/items", nil, targetRequest{Method: "OPTIONS", Path: "/items"}},
			{"HEAD", "/items?x={{q}}", nil, targetRequest{Method: "HEAD", Path: "/items", Query: "x=x%26y%3Dz"}},
			{"POST", "/contacts", &flow.HTTPBody{Mode: ModeJSON, Content: `{"name": "{{name}}", "n": {{n}}}`},
				targetRequest{Method: "POST", Path: "/contacts", ContentType: ContentTypeJSON,
					Body: `{"name": "Ann \"A\" O'Neil\n", "n": 42}`}},
			{"PUT", "/contacts/{{n}}", &flow.HTTPBody{Mode: ModeQuery, Fields: map[string]string{"who": "{{q}}"}},
				targetRequest{Method: "PUT", Path: "/contacts/42", ContentType: ContentTypeForm, Body: "who=x%26y%3Dz"}},
			{"PATCH", "/contacts/{{n}}", &flow.HTTPBody{Mode: ModeRaw, Content: "<n>{{name}}</n>", ContentType: "application/xml"},
				targetRequest{Method: "PATCH", Path: "/contacts/42", ContentType: "application/xml", Body: "<n>Ann \"A\" O'Neil\n</n>"}},
			{"POST", "/empty", &flow.HTTPBody{Mode: ModeNone}, targetRequest{Method: "POST", Path: "/empty"}},
		} {
			t.Run(tc.method+" "+tc.url, func(t *testing.T) {
				n := &flow.HTTPNode{ID: "call", Method: tc.method, URL: tg.URL + tc.url, Body: tc.body}
				before := tg.hits.Load()
				res := runCall(s, step, n, attrs)
				if res.Failed || res.Status != 200 || tg.hits.Load() != before+1 {
					t.Fatalf("result %+v, hits %d→%d", res, before, tg.hits.Load())
				}
				if got := tg.lastRequest(); got != tc.want {
					t.Fatalf("target got %+v\nwant %+v", got, tc.want)
				}
				if tc.method == "HEAD" {
					if res.Error != MappingNotDone || len(res.Leaves) != 0 {
						t.Fatalf("HEAD: %+v; want the mapping error and no leaves", res)
					}
				} else if res.Leaves["method"] != tc.method || res.Error != "" {
					t.Fatalf("leaves %v error %q; want the echoed method", res.Leaves, res.Error)
				}
			})
		}
	})
}

func TestServiceFailures(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		tg := newTarget(t)
		slow := newTarget(t)
		slow.respond(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
			w.WriteHeader(200)
		})
		closed := httptest.NewServer(http.NotFoundHandler())
		closed.Close()
		f := newFixture(t, st, oneCallNode)
		f.setRate(t, 1000)
		s := newService(t, Config{Store: st})
		step := f.step(t, s, "call")

		// A guarded client: it may reach "api.partner.test", which the test resolves to
		// loopback, but no loopback address by number.
		guarded, err := NewClient(Options{Allow: []string{"api.partner.test"}})
		if err != nil {
			t.Fatal(err)
		}
		guarded.lookup = func(_ context.Context, _, host string) ([]netip.Addr, error) {
			if host == "api.partner.test" {
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		gs := newService(t, Config{Store: st, Client: guarded})
		redirector := newTarget(t)
		redirector.respond(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, tg.URL+"/internal", http.StatusFound)
		})
		_, redirPort, _ := net.SplitHostPort(strings.TrimPrefix(redirector.URL, "http://"))

		for _, tc := range []struct {
			name      string
			svc       *Service
			node      flow.HTTPNode
			answer    http.HandlerFunc
			failed    bool
			status    int
			errPrefix string
			leaf      string // a leaf that must be mapped, "" for none
		}{
			{name: "non-2xx", node: flow.HTTPNode{URL: tg.URL + "/x"}, answer: jsonAnswer(503, `{"reason": "maintenance"}`),
				failed: true, status: 503, errPrefix: "HTTP 503 Service Unavailable", leaf: "reason"},
			{name: "404 without JSON", node: flow.HTTPNode{URL: tg.URL + "/x"}, answer: func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "nope", 404)
			}, failed: true, status: 404, errPrefix: "HTTP 404 Not Found"},
			{name: "not JSON", node: flow.HTTPNode{URL: tg.URL + "/x"}, answer: func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, "<html>hello</html>")
			}, status: 200, errPrefix: MappingNotDone},
			{name: "timeout", node: flow.HTTPNode{URL: slow.URL, TimeoutSeconds: 1}, failed: true, errPrefix: "timed out after 1s"},
			{name: "connection refused", node: flow.HTTPNode{URL: closed.URL}, failed: true, errPrefix: "connection failed"},
			{name: "loopback blocked", svc: gs, node: flow.HTTPNode{URL: tg.URL}, failed: true, errPrefix: "blocked: 127.0.0.1 is a loopback address"},
			{name: "allowed host", svc: gs, node: flow.HTTPNode{URL: "http://api.partner.test:" + redirPort + "/ok"},
				answer: jsonAnswer(200, `{"ok": true}`), status: 200, leaf: "ok"},
			{name: "redirect to loopback blocked", svc: gs, node: flow.HTTPNode{URL: "http://api.partner.test:" + redirPort + "/go"},
				failed: true, errPrefix: "blocked: 127.0.0.1 is a loopback address"},
			{name: "invalid after substitution", node: flow.HTTPNode{URL: "{{u}}"}, failed: true, errPrefix: `http node "call": url`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				svc := tc.svc
				if svc == nil {
					svc = s
				}
				if tc.answer != nil {
					tg.respond(tc.answer)
					redirector.respond(tc.answer)
				} else {
					tg.handler.Store(nil)
					redirector.respond(func(w http.ResponseWriter, r *http.Request) {
						http.Redirect(w, r, tg.URL+"/internal", http.StatusFound)
					})
				}
				n := tc.node
				n.ID, n.Method = "call", "GET"
				start := time.Now()
				res := runCall(svc, step, &n, nil)
				if res.Failed != tc.failed || res.Status != tc.status || !strings.HasPrefix(res.Error, tc.errPrefix) {
					t.Fatalf("result %+v; want failed=%v status=%d error %q...", res, tc.failed, tc.status, tc.errPrefix)
				}
				if tc.errPrefix == "" && res.Error != "" {
					t.Fatalf("unexpected error %q", res.Error)
				}
				if (tc.leaf != "") != (len(res.Leaves) > 0) || (tc.leaf != "" && res.Leaves[tc.leaf] == "") {
					t.Fatalf("leaves %v; want leaf %q", res.Leaves, tc.leaf)
				}
				if time.Since(start) > 2500*time.Millisecond {
					t.Fatalf("took %s", time.Since(start))
				}
				// The newest log says the same.
				logs, err := svc.Logs(context.Background(), step)
				if err != nil || len(logs) == 0 {
					t.Fatalf("logs: %v, %v", logs, err)
				}
				l := logs[0]
				if l.Failed != tc.failed || l.Status != tc.status || (tc.failed && l.Error != res.Error) ||
					(!tc.failed && l.Message != res.Error) || l.Test || l.RunID != "run-1" {
					t.Fatalf("log %+v for result %+v", l, res)
				}
			})
		}
	})
}

func TestServiceStructureChangeAndRemap(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		tg := newTarget(t)
		f := newFixture(t, st, fmt.Sprintf(`[{"id": "call", "type": "http", "method": "GET", "url": %q}]`, tg.URL))
		f.setRate(t, 1000)
		s := newService(t, Config{Store: st})
		step := f.step(t, s, "call")
		ctx := context.Background()
		const (
			a      = `{"id": 1, "tags": ["x", "y"], "owner": {"name": "Ann"}}`
			aAgain = `{"id": 2, "tags": [], "owner": null}` // empty list and null: not a change
			b      = `{"id": "1", "tags": ["x"], "owner": {"name": "Ann"}}`
			c      = `{"data": {"id": 1}}`
		)
		for i, tc := range []struct {
			body      string
			remap     bool   // remap before the call
			changed   bool   // this call's structure differs from the recorded one
			flagged   bool   // the step is flagged after the call
			wantShape string // a line of the recorded shape after the call
		}{
			{body: a, wantShape: "$.id number"},
			{body: aAgain, wantShape: "$.id number"},
			{body: b, changed: true, flagged: true, wantShape: "$.id number"},
			{body: a, flagged: true, wantShape: "$.id number"}, // flagged until remapped
			{body: c, changed: true, flagged: true, wantShape: "$.id number"},
			{body: c, remap: true, wantShape: "$.data.id number"}, // remap accepted the latest, c
			{body: a, changed: true, flagged: true, wantShape: "$.data.id number"},
		} {
			if tc.remap {
				state, err := s.Remap(ctx, step)
				if err != nil || state.StructureChanged || state.Message != "" {
					t.Fatalf("call %d: remap = %+v, %v", i+1, state, err)
				}
			}
			tg.respond(jsonAnswer(200, tc.body))
			res := runCall(s, step, step.Node, nil)
			if res.Failed || res.Error != "" {
				t.Fatalf("call %d: %+v", i+1, res)
			}
			state, err := s.State(ctx, step)
			if err != nil {
				t.Fatal(err)
			}
			if state.StructureChanged != tc.flagged || (tc.flagged != (state.Message == StructureChanged)) ||
				!slices.Contains(state.Shape, tc.wantShape) || state.Calls != int64(i+1) {
				t.Fatalf("call %d: state %+v; want flagged=%v and shape line %q", i+1, state, tc.flagged, tc.wantShape)
			}
			logs, err := s.Logs(ctx, step)
			if err != nil {
				t.Fatal(err)
			}
			if got := logs[0].Message == StructureChanged; got != tc.changed {
				t.Fatalf("call %d: log message %q; want changed=%v", i+1, logs[0].Message, tc.changed)
			}
		}
	})
}

func TestServiceLogsRedactedAndPruned(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		tg := newTarget(t)
		tg.respond(func(w http.ResponseWriter, r *http.Request) {
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: "cookie-secret-value"})
			w.Header().Set("Content-Type", "application/json")
			_, _ = fmt.Fprintf(w, `{"n": %q}`, r.URL.Query().Get("n"))
		})
		f := newFixture(t, st, fmt.Sprintf(`[{"id": "call", "type": "http", "method": "POST",
			"url": "%s/hook?api_key=url-secret-value&n={{n}}",
			"headers": {"Authorization": "Bearer header-secret-value", "X-Trace": "visible"},
			"body": {"mode": "query", "fields": {"access_token": "form-secret-value", "name": "{{n}}"}}}]`, tg.URL))
		f.setRate(t, 1000)
		s := newService(t, Config{Store: st})
		step := f.step(t, s, "call")
		ctx := context.Background()
		const calls = 23
		for i := 1; i <= calls; i++ {
			if res := runCall(s, step, step.Node, map[string]string{"n": fmt.Sprint(i)}); res.Failed || res.Leaves["n"] != fmt.Sprint(i) {
				t.Fatalf("call %d: %+v", i, res)
			}
		}
		// The target got the secrets; the logs do not keep them.
		if got := tg.lastRequest(); got.Auth != "Bearer header-secret-value" || !strings.Contains(got.Query, "url-secret-value") ||
			!strings.Contains(got.Body, "form-secret-value") {
			t.Fatalf("target got %+v", got)
		}
		logs, err := s.Logs(ctx, step)
		if err != nil {
			t.Fatal(err)
		}
		if len(logs) != 20 || logs[0].ID != calls || logs[19].ID != calls-19 {
			t.Fatalf("%d logs, ids %d..%d; want 20, %d..%d", len(logs), logs[0].ID, logs[len(logs)-1].ID, calls, calls-19)
		}
		if _, err := s.Log(ctx, step, calls-20); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("log %d (pruned): %v, want ErrNotFound", calls-20, err)
		}
		// Calls are logged in the order they end: a log's id is its call's number.
		for _, id := range []int64{calls, calls - 19} {
			l, err := s.Log(ctx, step, id)
			if err != nil {
				t.Fatal(err)
			}
			if l.Request.Header.Get("Authorization") != Redacted || l.Request.Header.Get("X-Trace") != "visible" ||
				!strings.Contains(l.URL, "api_key="+Redacted) || !strings.Contains(l.Request.URL, "api_key="+Redacted) ||
				!strings.Contains(l.Request.Body, "access_token="+Redacted) || l.Response.Header.Get("Set-Cookie") != Redacted ||
				l.Response.Status != 200 || l.Leaves["n"] != fmt.Sprint(id) || !strings.HasSuffix(l.URL, "&n="+l.Leaves["n"]) || l.DurationMS <= 0 {
				t.Fatalf("log %d = %+v", id, l)
			}
		}
		// Nothing stored anywhere in the log rows holds a secret.
		rows, err := st.Reader().Query(ctx, `SELECT url || error || message || detail FROM http_step_logs`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var text string
			if err := rows.Scan(&text); err != nil {
				t.Fatal(err)
			}
			n++
			if strings.Contains(text, "secret-value") {
				t.Fatalf("a stored log holds a secret: %s", text)
			}
		}
		if n != 20 {
			t.Fatalf("%d log rows stored, want 20", n)
		}
	})
}

func TestServiceRateLimit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		tg := newTarget(t)
		f := newFixture(t, st, fmt.Sprintf(`[{"id": "call", "type": "http", "method": "GET", "url": %q}]`, tg.URL))
		clock := newTestClock()
		s := newService(t, Config{Store: st, DefaultRate: 3, Now: clock.now})
		step := f.step(t, s, "call")
		ctx := context.Background()
		// calls makes n calls and returns how many reached the target and how many were
		// refused by the limit.
		calls := func(n int) (reached, refused int) {
			before := tg.hits.Load()
			for range n {
				res := runCall(s, step, step.Node, nil)
				if res.Failed {
					if res.Error != RateLimited || res.Status != 0 {
						t.Fatalf("refusal = %+v", res)
					}
					refused++
				}
			}
			return int(tg.hits.Load() - before), refused
		}
		for _, tc := range []struct {
			name    string
			advance time.Duration
			rate    int // the account's own rate, 0 to leave it
			calls   int
			reached int
		}{
			{name: "server default", calls: 5, reached: 3},
			{name: "same minute", advance: 50 * time.Second, calls: 2, reached: 0},
			{name: "next minute", advance: 10 * time.Second, calls: 4, reached: 3},
			{name: "account's own rate", advance: time.Minute, rate: 5, calls: 7, reached: 5},
		} {
			clock.add(tc.advance)
			if tc.rate > 0 {
				f.setRate(t, tc.rate)
			}
			reached, refused := calls(tc.calls)
			if reached != tc.reached || refused != tc.calls-tc.reached {
				t.Fatalf("%s: %d calls reached the target and %d were refused; want %d and %d", tc.name, reached, refused,
					tc.reached, tc.calls-tc.reached)
			}
		}
		// Refusals are logged as failures, with the request that was not sent: 7 of the
		// 18 calls.
		logs, err := s.Logs(ctx, step)
		if err != nil {
			t.Fatal(err)
		}
		var refusals []LogSummary
		for _, l := range logs {
			if l.Error == RateLimited {
				refusals = append(refusals, l)
			}
		}
		if len(logs) != 18 || len(refusals) != 7 || !refusals[0].Failed || refusals[0].Status != 0 || refusals[0].URL != tg.URL {
			t.Fatalf("%d logs, %d refusals, first %+v; want 18 and 7", len(logs), len(refusals), refusals)
		}
		l, err := s.Log(ctx, step, refusals[0].ID)
		if err != nil || l.ErrorKind != KindRateLimited || l.Request.Method != "GET" {
			t.Fatalf("log = %+v, %v", l, err)
		}
	})
}

// TestServiceRateLimitSliding: the limit holds within any 60 s across instances, also
// across a calendar minute's edge (which once reset it).
func TestServiceRateLimitSliding(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		tg := newTarget(t)
		f := newFixture(t, st, fmt.Sprintf(`[{"id": "call", "type": "http", "method": "GET", "url": %q}]`, tg.URL))
		clock := &testClock{t: time.Date(2030, 1, 2, 3, 4, 58, 0, time.UTC)} // 2 s before a minute ends
		instances := []*Service{newService(t, Config{Store: st, DefaultRate: 3, Now: clock.now}),
			newService(t, Config{Store: st, DefaultRate: 3, Now: clock.now})}
		step := f.step(t, instances[0], "call")
		for i, tc := range []struct {
			name    string
			advance time.Duration
			calls   int
			reached int
		}{
			{name: "late in a minute", calls: 4, reached: 3},
			{name: "early in the next", advance: 4 * time.Second, calls: 3, reached: 0},
			{name: "59.999 s after the first", advance: 55*time.Second + 999*time.Millisecond, calls: 2, reached: 0},
			{name: "60 s after", advance: time.Millisecond, calls: 4, reached: 3},
		} {
			clock.add(tc.advance)
			before := tg.hits.Load()
			for j := range tc.calls {
				_ = runCall(instances[(i+j)%2], step, step.Node, nil)
			}
			if got := tg.hits.Load() - before; got != int64(tc.reached) {
				t.Fatalf("%s: %d of %d calls reached the target, want %d", tc.name, got, tc.calls, tc.reached)
			}
		}
	})
}

// TestServiceRateLimitBlocks: with a limit high enough to be claimed in blocks, two
// instances sharing the database still let exactly the limit through, and a limit too
// small for blocks is counted call by call again from the next minute.
func TestServiceRateLimitBlocks(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		tg := newTarget(t)
		f := newFixture(t, st, fmt.Sprintf(`[{"id": "call", "type": "http", "method": "GET", "url": %q}]`, tg.URL))
		f.setRate(t, 300) // blocks of 3
		clock := newTestClock()
		instances := []*Service{newService(t, Config{Store: st, Now: clock.now}), newService(t, Config{Store: st, Now: clock.now})}
		step := f.step(t, instances[0], "call")
		var claimed int64
		counted := func() int64 {
			t.Helper()
			// The calls that count now: claimed less than 60 s before the clock.
			if err := st.Reader().QueryRow(context.Background(), `SELECT COALESCE(SUM(n), 0) FROM http_rate_claims WHERE customer_id = $1 AND ends_at > $2`,
				f.cid, clock.now().UnixMilli()-store.HTTPRateWindow).Scan(&claimed); err != nil {
				t.Fatal(err)
			}
			return claimed
		}
		for _, tc := range []struct {
			name    string
			rate    int
			calls   int
			reached int
			counted int64
		}{
			{name: "blocks", calls: 400, reached: 300, counted: 300},
			{name: "one by one", rate: 10, calls: 15, reached: 10, counted: 10},
		} {
			if tc.rate > 0 {
				f.setRate(t, tc.rate)
				clock.add(time.Minute + leaseTTL) // past the blocks' use and their 60 s
			}
			before := tg.hits.Load()
			refused := 0
			var mu sync.Mutex
			var wg sync.WaitGroup
			for i := range tc.calls {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if res := runCall(instances[i%2], step, step.Node, nil); res.Failed {
						mu.Lock()
						refused++
						mu.Unlock()
					}
				}()
				if i%16 == 15 {
					wg.Wait() // at most 16 at once, like a busy server
				}
			}
			wg.Wait()
			if got := tg.hits.Load() - before; got != int64(tc.reached) || refused != tc.calls-tc.reached || counted() != tc.counted {
				t.Fatalf("%s: %d calls reached the target, %d refused, %d counted; want %d, %d, %d", tc.name, got, refused,
					claimed, tc.reached, tc.calls-tc.reached, tc.counted)
			}
		}
	})
}

// mailbox is an SMTP server on 127.0.0.1 that keeps what it is sent.
type mailbox struct {
	mu   sync.Mutex
	msgs []mailMsg
}

type mailMsg struct {
	to   []string
	data string
}

func (m *mailbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &mailSession{box: m}, nil }

func (m *mailbox) received() []mailMsg {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.msgs)
}

type mailSession struct {
	box *mailbox
	cur mailMsg
}

func (s *mailSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}
func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	// Keep the text as written: the header, and the body without its transfer encoding.
	head, body, _ := strings.Cut(string(b), "\r\n\r\n")
	text, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(body)))
	if err != nil {
		return err
	}
	s.cur.data = head + "\n\n" + string(text)
	s.box.mu.Lock()
	s.box.msgs = append(s.box.msgs, s.cur)
	s.box.mu.Unlock()
	return nil
}
func (s *mailSession) Reset()        { s.cur = mailMsg{} }
func (s *mailSession) Logout() error { return nil }

// startMailbox runs a plain-text SMTP server for the test and returns it with its URL.
func startMailbox(t *testing.T) (*mailbox, string) {
	t.Helper()
	box := &mailbox{}
	srv := smtp.NewServer(box)
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 5*time.Second, 5*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Close()
		l.Close()
		<-done
	})
	return box, fmt.Sprintf("smtp://%s?starttls=no&from=parley@example.com", l.Addr())
}

// startQueue runs a River queue over st with the alert worker.
func startQueue(t *testing.T, st *store.Store, m *alert.Mailer) *queue.Queue {
	t.Helper()
	ctx := context.Background()
	if err := queue.Migrate(ctx, st); err != nil {
		t.Fatal(err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, NewAlertWorker(m))
	q, err := queue.New(st, queue.Config{Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = q.Stop(ctx)
	})
	return q
}

// alertJobs counts the alert jobs queued, once the calls made so far are recorded.
func alertJobs(t *testing.T, s *Service, st *store.Store) int {
	t.Helper()
	s.rec.wait()
	var n int
	if err := st.Reader().QueryRow(context.Background(), `SELECT COUNT(*) FROM river_job WHERE kind = 'httpstep_alert'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitMail waits until the mailbox holds n messages, and checks it holds no more.
func waitMail(t *testing.T, box *mailbox, n int) []mailMsg {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for len(box.received()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d mails received in 15 s, want %d", len(box.received()), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := box.received()
	if len(got) != n {
		t.Fatalf("%d mails received, want %d", len(got), n)
	}
	return got
}

func TestServiceAlertThrottleAndReset(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		tg := newTarget(t)
		tg.respond(jsonAnswer(500, `{"error": "boom"}`))
		box, smtpURL := startMailbox(t)
		mailer, err := alert.New(smtpURL)
		if err != nil {
			t.Fatal(err)
		}
		q := startQueue(t, st, mailer)
		f := newFixture(t, st, fmt.Sprintf(`[{"id": "call", "type": "http", "name": "CRM lookup", "method": "GET",
			"url": "%s/crm?token=alert-secret", "alert_emails": ["ops@example.com", "dev@example.com"]}]`, tg.URL))
		f.setRate(t, 1000)
		clock := newTestClock()
		s := newService(t, Config{Store: st, Queue: q, Mailer: mailer, Now: clock.now})
		step := f.step(t, s, "call")
		ctx := context.Background()
		fail := func(n int) {
			t.Helper()
			for range n {
				if res := runCall(s, step, step.Node, nil); !res.Failed {
					t.Fatalf("call did not fail: %+v", res)
				}
			}
		}

		// Many failures within the hour: one job, one mail to every address.
		fail(6)
		if n := alertJobs(t, s, st); n != 1 {
			t.Fatalf("%d alert jobs after 6 failures, want 1", n)
		}
		msgs := waitMail(t, box, 1)
		if to := msgs[0].to; len(to) != 2 || to[0] != "ops@example.com" || to[1] != "dev@example.com" {
			t.Fatalf("mail to %v", to)
		}
		for _, want := range []string{"CRM lookup", "HTTP 500 Internal Server Error", "run-1", "token=" + Redacted} {
			if !strings.Contains(msgs[0].data, want) {
				t.Fatalf("mail does not mention %q:\n%s", want, msgs[0].data)
			}
		}
		if strings.Contains(msgs[0].data, "alert-secret") {
			t.Fatalf("mail holds a secret:\n%s", msgs[0].data)
		}
		state, err := s.State(ctx, step)
		if err != nil || state.LastAlertAt == nil || state.NextAlertAt == nil || !state.NextAlertAt.Equal(clock.now().Add(time.Hour)) {
			t.Fatalf("state after the alert = %+v, %v", state, err)
		}
		clock.add(59 * time.Minute)
		fail(3)
		if n := alertJobs(t, s, st); n != 1 {
			t.Fatalf("%d alert jobs within the hour, want 1", n)
		}

		// Reset Mail Timeout: the next failure mails again at once.
		state, err = s.ResetMailTimeout(ctx, step)
		if err != nil || state.LastAlertAt != nil || state.NextAlertAt != nil {
			t.Fatalf("after reset: %+v, %v", state, err)
		}
		fail(2)
		waitMail(t, box, 2)
		if n := alertJobs(t, s, st); n != 2 {
			t.Fatalf("%d alert jobs after the reset, want 2", n)
		}

		// An hour after the last mail, a failure mails again without a reset.
		clock.add(time.Hour)
		fail(2)
		waitMail(t, box, 3)

		// Test calls and successful calls send none.
		clock.add(2 * time.Hour)
		if _, err := s.Test(ctx, step, nil); err != nil {
			t.Fatal(err)
		}
		tg.respond(jsonAnswer(200, `{}`))
		runCall(s, step, step.Node, nil)
		if n := alertJobs(t, s, st); n != 3 {
			t.Fatalf("%d alert jobs after a test and a success, want 3", n)
		}
	})
}

func TestServiceAlertWithoutSMTP(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		tg := newTarget(t)
		tg.respond(jsonAnswer(502, `{}`))
		q := startQueue(t, st, nil)
		f := newFixture(t, st, fmt.Sprintf(`[{"id": "call", "type": "http", "method": "GET", "url": %q,
			"alert_emails": ["ops@example.com"]}]`, tg.URL))
		f.setRate(t, 1000)
		var logs strings.Builder
		var mu sync.Mutex
		s := newService(t, Config{Store: st, Queue: q, Log: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))})
		step := f.step(t, s, "call")
		for range 3 {
			if res := runCall(s, step, step.Node, nil); !res.Failed {
				t.Fatalf("call did not fail: %+v", res)
			}
		}
		state, err := s.State(context.Background(), step)
		if err != nil || state.LastAlertAt != nil || state.Calls != 3 {
			t.Fatalf("state = %+v, %v; want no alert claimed", state, err)
		}
		if n := alertJobs(t, s, st); n != 0 {
			t.Fatalf("%d alert jobs without SMTP, want 0", n)
		}
		mu.Lock()
		defer mu.Unlock()
		if c := strings.Count(logs.String(), "no alert mail sent"); c != 1 {
			t.Fatalf("the server logged the missing SMTP server %d times, want once:\n%s", c, logs.String())
		}
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestServiceTestAction(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		tg := newTarget(t)
		tg.respond(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = fmt.Fprintf(w, `{"customer": {"id": %q, "tier": "gold"}, "orders": [{"sku": "A1"}, {"sku": "B2"}]}`,
				r.URL.Query().Get("phone"))
		})
		f := newFixture(t, st, fmt.Sprintf(`[
			{"id": "call", "type": "http", "method": "GET", "url": "%s/lookup?phone={{user.phone_no}}",
			 "headers": {"Authorization": "Bearer test-secret"},
			 "save": {"tier": "customer.tier", "first_sku": "orders.0.sku", "missing": "nope"}, "next": "done"},
			{"id": "done", "type": "end"}]`, tg.URL))
		f.setRate(t, 1000)
		s := newService(t, Config{Store: st})
		step := f.step(t, s, "call")
		ctx := context.Background()
		res, err := s.Test(ctx, step, map[string]string{"user.phone_no": "+919876543210"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Failed || res.Response.Status != 200 || res.Request.Method != "GET" ||
			res.Request.URL != tg.URL+"/lookup?phone=%2B919876543210" ||
			res.Request.Header.Get("Authorization") != "Bearer test-secret" || res.DurationMS <= 0 ||
			res.Leaves["customer.id"] != "+919876543210" || res.Leaves["orders.1.sku"] != "B2" || res.LogID != 1 {
			t.Fatalf("test result = %+v", res)
		}
		if want := map[string]string{"tier": "gold", "first_sku": "A1"}; !mapsEqual(res.Attributes, want) {
			t.Fatalf("attributes = %v, want %v", res.Attributes, want)
		}
		// The JSON form holds what the console shows.
		b, _ := json.Marshal(res)
		for _, key := range []string{`"request"`, `"response"`, `"started_at"`, `"duration_ms"`, `"leaves"`, `"attributes"`} {
			if !strings.Contains(string(b), key) {
				t.Fatalf("JSON %s lacks %s", b, key)
			}
		}
		// The test is logged, as a test, redacted, and mapped the structure.
		logs, err := s.Logs(ctx, step)
		if err != nil || len(logs) != 1 || !logs[0].Test || logs[0].RunID != "" {
			t.Fatalf("logs = %+v, %v", logs, err)
		}
		l, err := s.Log(ctx, step, 1)
		if err != nil || l.Request.Header.Get("Authorization") != Redacted {
			t.Fatalf("log = %+v, %v", l, err)
		}
		if state, _ := s.State(ctx, step); !slices.Contains(state.Shape, "$.orders.[].sku string") {
			t.Fatalf("state after the test = %+v", state)
		}
	})
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestServiceStep(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st, `[{"id": "call", "type": "http", "method": "GET", "url": "https://example.com/", "next": "done"},
			{"id": "done", "type": "end"}]`)
		s := newService(t, Config{Store: st})
		ctx := context.Background()
		for _, tc := range []struct {
			flow, node string
			want       error
		}{
			{"f", "call", nil},
			{"F", "call", nil}, // flow keys match case-insensitively
			{"nope", "call", ErrFlowNotFound},
			{"f", "nope", ErrNodeNotFound},
			{"f", "done", ErrNotHTTPNode},
		} {
			got, err := s.Step(ctx, f.cid, f.botID, tc.flow, tc.node)
			if !errors.Is(err, tc.want) || (err == nil && (got.Node.ID != "call" || got.FlowKey != "f" || got.FlowID == 0)) {
				t.Fatalf("Step(%q, %q) = %+v, %v; want %v", tc.flow, tc.node, got, err, tc.want)
			}
		}
		// Another bot's flow is not this bot's.
		if _, err := s.Step(ctx, f.cid, f.botID+1, "f", "call"); !errors.Is(err, ErrFlowNotFound) {
			t.Fatalf("another bot: %v", err)
		}
	})
}

// TestServiceRecordsInGroups: records written in one transaction are numbered in order,
// step by step; only the last 20 of a step are logged; the structure and the alert mail
// are decided record by record.
func TestServiceRecordsInGroups(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		f := newFixture(t, st, `[
			{"id": "call", "type": "http", "method": "GET", "url": "https://example.com/a", "alert_emails": ["ops@example.com"], "next": "other"},
			{"id": "other", "type": "http", "method": "GET", "url": "https://example.com/b"}]`)
		mailer, err := alert.New("smtp://127.0.0.1:1?starttls=no") // never dialled: the queue is not started
		if err != nil {
			t.Fatal(err)
		}
		if err := queue.Migrate(ctx, st); err != nil {
			t.Fatal(err)
		}
		workers := river.NewWorkers()
		river.AddWorker(workers, NewAlertWorker(mailer))
		q, err := queue.New(st, queue.Config{Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		s := newService(t, Config{Store: st, Queue: q, Mailer: mailer})
		call, other := f.step(t, s, "call"), f.step(t, s, "other")
		result := func(body string, status int) *Result {
			r := &Result{StartedAt: time.Now(), Duration: time.Millisecond, Request: Request{Method: "GET", URL: "https://example.com/a"},
				Response: Response{Status: status, Body: body}}
			r.mapJSON([]byte(body))
			if status >= 300 {
				r.fail(KindStatus, fmt.Sprintf("HTTP %d", status))
			}
			return r
		}
		const (
			a = `{"id": 1}`
			b = `{"id": "x"}`
		)
		var batch []*record
		add := func(st Step, res *Result) {
			batch = append(batch, s.newRecord(callInput{customerID: st.CustomerID, flowID: st.FlowID, flowKey: st.FlowKey,
				runID: "run-1", node: st.Node}, res))
		}
		for i := 1; i <= 25; i++ {
			switch {
			case i == 11:
				add(call, result(b, 200))
			case i > 20:
				add(call, result(`{"error": "down"}`, 503))
			default:
				add(call, result(a, 200))
			}
			if i%10 == 0 {
				add(other, result(a, 200))
			}
		}
		if err := st.InTx(ctx, func(tx store.Tx) error { return s.recordTx(ctx, tx, batch) }); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range batch {
			if r.in.node.ID != "call" {
				continue
			}
			n++
			if r.out.logID != int64(n) || r.out.structureChanged != (n == 11) || r.out.alertQueued != (n == 21) {
				t.Fatalf("record %d: %+v", n, r.out)
			}
		}
		logs, err := s.Logs(ctx, call)
		if err != nil {
			t.Fatal(err)
		}
		if len(logs) != 20 || logs[0].ID != 25 || logs[19].ID != 6 || !logs[0].Failed || logs[14].ID != 11 ||
			logs[14].Message != StructureChanged || logs[13].Message != "" {
			t.Fatalf("logs of call: %+v", logs)
		}
		state, err := s.State(ctx, call)
		if err != nil || state.Calls != 25 || !state.StructureChanged || !slices.Contains(state.Shape, "$.id number") ||
			!slices.Contains(state.ChangedShape, "$.id string") || state.LastAlertAt == nil {
			t.Fatalf("state of call: %+v, %v", state, err)
		}
		if logs, err := s.Logs(ctx, other); err != nil || len(logs) != 2 || logs[0].ID != 2 {
			t.Fatalf("logs of other: %+v, %v", logs, err)
		}
		if n := alertJobs(t, s, st); n != 1 {
			t.Fatalf("%d alert jobs for 5 failures in one transaction, want 1", n)
		}
	})
}

// TestServiceSecretHeaders: a header the node marks secret is stored encrypted, sent
// decrypted, and redacted in the logs and the Test action whatever its name says.
func TestServiceSecretHeaders(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			dsn := e.DSN(t)
			testSecretHeaders(t, dsn, storetest.Open(t, dsn))
		})
	}
}

func testSecretHeaders(t *testing.T, dsn string, st *store.Store) {
	tg := newTarget(t)
	var tenant atomic.Value
	tg.respond(func(w http.ResponseWriter, r *http.Request) {
		tenant.Store(r.Header.Get("X-Tenant"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok": true}`)
	})
	f := newFixture(t, st, fmt.Sprintf(`[{"id": "call", "type": "http", "method": "GET", "url": "%s/x",
		"headers": {"X-Tenant": "tenant-secret-{{n}}", "X-Trace": "visible"}, "secret_headers": ["x-tenant"]}]`, tg.URL))
	f.setRate(t, 1000)
	ctx := context.Background()
	rec, err := st.FlowByKey(ctx, f.botID, f.key)
	if err != nil || strings.Contains(string(rec.Document), "tenant-secret") || !strings.Contains(string(rec.Document), "enc:v1:") {
		t.Fatalf("stored document: %s, %v", rec.Document, err)
	}
	s := newService(t, Config{Store: st})
	step := f.step(t, s, "call")
	if res := runCall(s, step, step.Node, map[string]string{"n": "7"}); res.Failed {
		t.Fatalf("call: %+v", res)
	}
	if got := tenant.Load(); got != "tenant-secret-7" {
		t.Fatalf("the target got X-Tenant %q, want the decrypted value", got)
	}
	if !secretIsEncrypted(step.Node.Headers["X-Tenant"]) {
		t.Fatalf("the node's value was decrypted in place: %q", step.Node.Headers["X-Tenant"])
	}
	res, err := s.Test(ctx, step, map[string]string{"n": "8"})
	if err != nil || res.Failed || tenant.Load() != "tenant-secret-8" {
		t.Fatalf("test call: %+v, %v, target got %v", res, err, tenant.Load())
	}
	if res.Request.Header.Get("X-Tenant") != Redacted || res.Request.Header.Get("X-Trace") != "visible" {
		t.Fatalf("the Test action shows headers %v", res.Request.Header)
	}
	for _, id := range []int64{1, 2} {
		l, err := s.Log(ctx, step, id)
		if err != nil || l.Request.Header.Get("X-Tenant") != Redacted || l.Request.Header.Get("X-Trace") != "visible" {
			t.Fatalf("log %d = %+v, %v", id, l.Request.Header, err)
		}
	}

	// A value no configured key opens fails the call, saying why, and sends nothing.
	other := storetest.OpenWithKeys(t, dsn, nil)
	s2 := newService(t, Config{Store: other})
	before := tg.hits.Load()
	res2 := runCall(s2, step, step.Node, nil)
	if !res2.Failed || !strings.Contains(res2.Error, "headers.X-Tenant: the secret value cannot be decrypted") || tg.hits.Load() != before {
		t.Fatalf("call without the key: %+v", res2)
	}
}

func secretIsEncrypted(v string) bool { return strings.HasPrefix(v, "enc:v1:") }
