package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/channel/registry"
	"github.com/parleyhq/parley/internal/msg"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// graphRequest is one call the fake Graph API received.
type graphRequest struct {
	Path string
	Auth string
	Body map[string]any
	At   time.Time
}

// fakeGraph is a Graph API /messages endpoint answering with Meta's success shape.
type fakeGraph struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []graphRequest
}

func newFakeGraph(t testing.TB) *fakeGraph {
	f := &fakeGraph{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			http.Error(w, `{"error":{"message":"bad json","code":100}}`, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, graphRequest{Path: r.URL.Path, Auth: r.Header.Get("Authorization"), Body: body, At: time.Now()})
		n := len(f.reqs)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"messaging_product":"whatsapp","contacts":[{"input":%q,"wa_id":%q}],"messages":[{"id":"wamid.T%d"}]}`,
			body["to"], body["to"], n)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeGraph) requests() []graphRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]graphRequest(nil), f.reqs...)
}

func newBot(t *testing.T, st *store.Store, key string) int64 {
	t.Helper()
	ctx := context.Background()
	c, _, err := st.EnsureCustomer(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.CreateBot(ctx, c.ID, key, "bot "+key)
	if err != nil {
		t.Fatal(err)
	}
	return b.ID
}

func waConfig(base string, rate float64) channel.Config {
	return channel.Config{Adapter: "whatsapp", BaseURL: base, PhoneNumberID: "104242", Token: "test-token", AppSecret: "app-secret",
		RatePerSecond: rate}
}

func TestSandboxByDefault(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		bot := newBot(t, st, "aaaaaaaaaaaaaaaa")
		reg := registry.New(st, registry.Options{})
		for _, ch := range []string{"whatsapp", "rcs"} {
			s, err := reg.Sender(ctx, bot, ch)
			if err != nil || s.External() {
				t.Fatalf("Sender(%s) = %T, %v; want the sandbox", ch, s, err)
			}
			cfg, err := reg.Get(ctx, bot, ch)
			if err != nil || cfg != (channel.Config{Adapter: "sandbox"}) {
				t.Fatalf("Get(%s) = %+v, %v; want the sandbox", ch, cfg, err)
			}
		}
		if _, err := reg.Sender(ctx, bot, "sms"); err == nil {
			t.Fatal("Sender(sms) succeeded")
		}
	})
}

func TestSetAndCache(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		bot := newBot(t, st, "aaaaaaaaaaaaaaaa")
		// Two registries over one database stand for two processes.
		here := registry.New(st, registry.Options{CacheTTL: time.Hour})
		there := registry.New(st, registry.Options{CacheTTL: time.Hour})
		if _, err := there.Get(ctx, bot, "whatsapp"); err != nil { // cache the sandbox
			t.Fatal(err)
		}
		cfg := waConfig("http://127.0.0.1:9", 0)
		if err := here.Set(ctx, bot, "whatsapp", cfg); err != nil {
			t.Fatal(err)
		}
		if got, _ := here.Get(ctx, bot, "whatsapp"); got != cfg {
			t.Fatalf("Get after Set = %+v, want %+v", got, cfg)
		}
		if s, _ := here.Sender(ctx, bot, "whatsapp"); s == nil || !s.External() {
			t.Fatalf("Sender after Set = %T, want the WhatsApp adapter", s)
		}
		if got, _ := there.Get(ctx, bot, "whatsapp"); got.Adapter != "sandbox" {
			t.Fatalf("another process saw the change within its TTL: %+v", got)
		}
		there.Forget(bot, "whatsapp")
		if got, _ := there.Get(ctx, bot, "whatsapp"); got != cfg {
			t.Fatalf("Get after Forget = %+v, want %+v", got, cfg)
		}

		// A short TTL picks changes up by itself.
		quick := registry.New(st, registry.Options{CacheTTL: 20 * time.Millisecond})
		if got, _ := quick.Get(ctx, bot, "whatsapp"); got != cfg {
			t.Fatalf("Get = %+v", got)
		}
		if err := here.Set(ctx, bot, "whatsapp", channel.Config{Adapter: "sandbox"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(40 * time.Millisecond)
		if got, _ := quick.Get(ctx, bot, "whatsapp"); got.Adapter != "sandbox" {
			t.Fatalf("Get after the TTL = %+v, want the sandbox", got)
		}

		if err := here.Set(ctx, bot, "whatsapp", channel.Config{Adapter: "rcs"}); !errors.Is(err, registry.ErrInvalidConfig) {
			t.Fatalf("Set(invalid) = %v, want ErrInvalidConfig", err)
		}
	})
}

func TestUnusableStoredSettings(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		bot := newBot(t, st, "aaaaaaaaaaaaaaaa")
		// Written behind the registry's back, as a hand-edited database would be.
		if err := st.SaveChannelConfig(ctx, bot, "whatsapp", []byte(`{"adapter":"whatsapp","phone_number_id":"1"}`)); err != nil {
			t.Fatal(err)
		}
		_, err := registry.New(st, registry.Options{}).Sender(ctx, bot, "whatsapp")
		var ce *channel.Error
		if !errors.As(err, &ce) || ce.Kind != channel.KindNotConfigured || !strings.Contains(ce.Message, "token") {
			t.Fatalf("Sender = %v, want a not_configured error naming the token", err)
		}
	})
}

func TestWhatsAppWindow(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		graph := newFakeGraph(t)
		bot := newBot(t, st, "aaaaaaaaaaaaaaaa")
		now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
		reg := registry.New(st, registry.Options{Now: func() time.Time { return now }})
		if err := reg.Set(ctx, bot, "whatsapp", waConfig(graph.URL, registry.Unlimited)); err != nil {
			t.Fatal(err)
		}
		s, err := reg.Sender(ctx, bot, "whatsapp")
		if err != nil {
			t.Fatal(err)
		}
		ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
		text := msg.Content{Text: "hello"}
		tmpl := msg.Content{Template: &msg.Template{Name: "order_update", Language: msg.TemplateLang{Code: "en"}}}
		tests := []struct {
			name       string
			last       *time.Time
			content    msg.Content
			wantClosed bool
		}{
			{"text to a user who never wrote", nil, text, true},
			{"text 25 hours after the last message", ago(25 * time.Hour), text, true},
			{"text exactly 24 hours after", ago(24 * time.Hour), text, true},
			{"text 23 hours after", ago(23 * time.Hour), text, false},
			{"buttons a minute after", ago(time.Minute), msg.Content{Text: "pick", Buttons: []msg.Button{{Title: "a"}}}, false},
			{"template to a user who never wrote", nil, tmpl, false},
			{"template 3 days after", ago(72 * time.Hour), tmpl, false},
		}
		for _, tt := range tests {
			before := len(graph.requests())
			sent, err := s.Send(ctx, channel.Recipient{Phone: "+919812300001", ChannelUserID: "919812300001", LastInbound: tt.last}, tt.content, "k")
			calls := len(graph.requests()) - before
			if tt.wantClosed {
				var ce *channel.Error
				if !errors.As(err, &ce) || ce.Kind != channel.KindWindowClosed || ce.Retryable || !strings.Contains(ce.Message, "24-hour") {
					t.Fatalf("%s: err = %v, want a non-retryable window_closed error", tt.name, err)
				}
				if calls != 0 {
					t.Fatalf("%s: the provider was called %d times", tt.name, calls)
				}
				continue
			}
			if err != nil || !strings.HasPrefix(sent.ProviderMessageID, "wamid.") || calls != 1 {
				t.Fatalf("%s: Send = %+v, %v after %d calls; want one accepted send", tt.name, sent, err, calls)
			}
		}
	})
}

func TestTemplateIndexIsSentAsString(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		graph := newFakeGraph(t)
		bot := newBot(t, st, "aaaaaaaaaaaaaaaa")
		reg := registry.New(st, registry.Options{})
		if err := reg.Set(ctx, bot, "whatsapp", waConfig(graph.URL, 0)); err != nil {
			t.Fatal(err)
		}
		s, err := reg.Sender(ctx, bot, "whatsapp")
		if err != nil {
			t.Fatal(err)
		}
		comps := []map[string]any{
			{"type": "body", "parameters": []any{map[string]any{"type": "text", "text": "John"}}},
			{"type": "button", "sub_type": "quick_reply", "index": float64(0), "parameters": []any{map[string]any{"type": "payload", "payload": "a"}}},
			{"type": "button", "sub_type": "quick_reply", "index": json.Number("1"), "parameters": []any{map[string]any{"type": "payload", "payload": "b"}}},
			{"type": "button", "sub_type": "quick_reply", "index": "2", "parameters": []any{map[string]any{"type": "payload", "payload": "c"}}},
		}
		tmpl := &msg.Template{Name: "n", Namespace: "ns", Language: msg.TemplateLang{Code: "en", Policy: "deterministic"}, Components: comps}
		if _, err := s.Send(ctx, channel.Recipient{ChannelUserID: "919812300001"}, msg.Content{Template: tmpl}, "k"); err != nil {
			t.Fatal(err)
		}
		reqs := graph.requests()
		if len(reqs) != 1 {
			t.Fatalf("%d requests", len(reqs))
		}
		r := reqs[0]
		if r.Path != "/v21.0/104242/messages" || r.Auth != "Bearer test-token" {
			t.Fatalf("request %s with %q", r.Path, r.Auth)
		}
		got := r.Body["template"].(map[string]any)["components"].([]any)
		for i, want := range []any{nil, "0", "1", "2"} {
			if idx := got[i].(map[string]any)["index"]; idx != want {
				t.Errorf("component %d index = %#v, want %#v", i, idx, want)
			}
		}
		if comps[1]["index"] != float64(0) {
			t.Fatal("the caller's template was changed in place")
		}
	})
}

func TestLocalPacingRefusesALongQueue(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		graph := newFakeGraph(t)
		bot := newBot(t, st, "aaaaaaaaaaaaaaaa")
		frozen := time.Now()
		reg := registry.New(st, registry.Options{Pacing: registry.PacingLocal, MaxPacingWait: 150 * time.Millisecond,
			Now: func() time.Time { return frozen }})
		if err := reg.Set(ctx, bot, "whatsapp", waConfig(graph.URL, 10)); err != nil {
			t.Fatal(err)
		}
		s, err := reg.Sender(ctx, bot, "whatsapp")
		if err != nil {
			t.Fatal(err)
		}
		tmpl := msg.Content{Template: &msg.Template{Name: "n", Language: msg.TemplateLang{Code: "en"}}}
		to := channel.Recipient{ChannelUserID: "919812300001"}
		start := time.Now()
		for i := range 2 { // slots at +0 and +100 ms
			if _, err := s.Send(ctx, to, tmpl, "k"); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		if d := time.Since(start); d < 90*time.Millisecond {
			t.Fatalf("two sends at 10/s took %v, want about 100 ms", d)
		}
		_, err = s.Send(ctx, to, tmpl, "k") // slot at +200 ms, beyond the 150 ms wait
		var ce *channel.Error
		if !errors.As(err, &ce) || ce.Kind != channel.KindRateLimited || !ce.Retryable || ce.RetryAfter < 150*time.Millisecond {
			t.Fatalf("third send = %v, want a retryable rate_limited error with RetryAfter ≥ 150ms", err)
		}
		if n := len(graph.requests()); n != 2 {
			t.Fatalf("provider got %d requests, want 2", n)
		}
	})
}

// TestSharedPacingAcrossInstances runs two registries (two server instances) against one
// database: together they keep the configured rate.
func TestSharedPacingAcrossInstances(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		graph := newFakeGraph(t)
		bot := newBot(t, st, "aaaaaaaaaaaaaaaa")
		const rate, perWorker, workers = 50.0, 10, 4
		var regs []*registry.Registry
		for range 2 {
			regs = append(regs, registry.New(st, registry.Options{Pacing: registry.PacingShared}))
		}
		if err := regs[0].Set(ctx, bot, "whatsapp", waConfig(graph.URL, rate)); err != nil {
			t.Fatal(err)
		}
		tmpl := msg.Content{Template: &msg.Template{Name: "n", Language: msg.TemplateLang{Code: "en"}}}
		var wg sync.WaitGroup
		start := time.Now()
		for i := range workers {
			s, err := regs[i%2].Sender(ctx, bot, "whatsapp")
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range perWorker {
					if _, err := s.Send(ctx, channel.Recipient{ChannelUserID: "919812300001"}, tmpl, "k"); err != nil {
						t.Errorf("send: %v", err)
						return
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		n := workers * perWorker
		min := time.Duration(float64(n-1) / rate * float64(time.Second))
		if elapsed < min-20*time.Millisecond || elapsed > 3*min {
			t.Fatalf("%d sends at %v/s across two instances took %v, want about %v", n, rate, elapsed, min)
		}
		if got := len(graph.requests()); got != n {
			t.Fatalf("provider got %d requests, want %d", got, n)
		}
	})
}

// fakeRBM answers RBM's capability check (404 for numbers ending in 0) and accepts agent
// messages.
func newFakeRBM(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "0/capabilities"):
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND"}}`)
		case strings.HasSuffix(r.URL.Path, "/capabilities"):
			_, _ = io.WriteString(w, `{"features":["RICHCARD_STANDALONE"]}`)
		default:
			_, _ = io.WriteString(w, `{"name":"phones/x/agentMessages/y"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRCSSenderProbes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		rbm := newFakeRBM(t)
		bot := newBot(t, st, "aaaaaaaaaaaaaaaa")
		reg := registry.New(st, registry.Options{})
		if err := reg.Set(ctx, bot, "rcs", channel.Config{Adapter: "rcs", BaseURL: rbm.URL, AgentID: "agent", Token: "t"}); err != nil {
			t.Fatal(err)
		}
		s, err := reg.Sender(ctx, bot, "rcs")
		if err != nil {
			t.Fatal(err)
		}
		p, ok := s.(channel.Prober)
		if !ok {
			t.Fatalf("the RCS sender %T is not a channel.Prober", s)
		}
		for phone, want := range map[string]bool{"+919812300001": true, "+919812300000": false} {
			got, err := p.Reachable(ctx, channel.Recipient{Phone: phone})
			if err != nil || got != want {
				t.Fatalf("Reachable(%s) = %v, %v; want %v", phone, got, err, want)
			}
		}
		// RCS has no customer-service window: a first message goes out.
		if _, err := s.Send(ctx, channel.Recipient{Phone: "+919812300001"}, msg.Content{Text: "hi"}, "k"); err != nil {
			t.Fatal(err)
		}
		// WhatsApp's sender has no capability check.
		if err := reg.Set(ctx, bot, "whatsapp", waConfig(rbm.URL, 0)); err != nil {
			t.Fatal(err)
		}
		w, _ := reg.Sender(ctx, bot, "whatsapp")
		if _, ok := w.(channel.Prober); ok {
			t.Fatalf("the WhatsApp sender %T claims to be a channel.Prober", w)
		}
	})
}
