package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/catalog"
	"github.com/parleyhq/parley/internal/engine"
	"github.com/parleyhq/parley/internal/httpstep"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// TestHTTPStepInRuns runs flows whose http nodes call a real target through the
// httpstep service: saved leaves, {{node.error}} and {{node.status}}, and both fallbacks.
func TestHTTPStepInRuns(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		var answer atomic.Pointer[http.HandlerFunc]
		var lastPath atomic.Pointer[string]
		tg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := r.URL.EscapedPath()
			lastPath.Store(&p)
			(*answer.Load())(w, r)
		}))
		defer tg.Close()
		c, _, _ := st.EnsureCustomer(ctx, "acme")
		b, err := st.CreateBot(ctx, c.ID, "0011223344556677", "bot")
		if err != nil {
			t.Fatal(err)
		}
		rate := 1000
		if err := st.SetCustomerHTTPRate(ctx, c.ID, &rate); err != nil {
			t.Fatal(err)
		}
		doc := fmt.Sprintf(`{"key": "f", "start": "call", "nodes": [
			{"id": "call", "type": "http", "method": "POST", "url": "%[1]s/orders/{{order_id}}",
			 "body": {"mode": "json", "content": "{\"note\": \"{{note}}\"}"},
			 "save": {"order_status": "status", "echo": "note"}, "on_failure": "continue", "next": "after"},
			{"id": "after", "type": "set", "set": {"err": "{{call.error}}", "code": "{{call.status}}"}, "next": "strict"},
			{"id": "strict", "type": "http", "method": "GET", "url": "%[1]s/strict", "on_failure": "stop", "next": "done"},
			{"id": "done", "type": "set", "set": {"finished": "yes"}}]}`, tg.URL)
		if _, err := catalog.Import(ctx, st, b.ID, []byte(doc)); err != nil {
			t.Fatal(err)
		}
		client, err := httpstep.NewClient(httpstep.Options{Allow: []string{"127.0.0.1/32"}})
		if err != nil {
			t.Fatal(err)
		}
		defer client.CloseIdleConnections()
		svc, err := httpstep.NewService(httpstep.Config{Store: st, Client: client})
		if err != nil {
			t.Fatal(err)
		}
		defer svc.Close()
		eng := engine.New(st, engine.Config{Workers: 4, Sweep: 20 * time.Millisecond, HTTP: svc})
		if err := eng.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer eng.Stop(context.Background())

		for i, tc := range []struct {
			name   string
			answer http.HandlerFunc
			status string
			attrs  map[string]string // expected user attributes ("" = absent, but err may be "")
			errSub string
		}{
			{
				name: "success saves and continues",
				answer: func(w http.ResponseWriter, r *http.Request) {
					var in struct{ Note string }
					_ = json.NewDecoder(r.Body).Decode(&in)
					w.Header().Set("Content-Type", "application/json")
					_, _ = fmt.Fprintf(w, `{"status": "shipped", "note": %q}`, in.Note)
				},
				status: "completed",
				attrs:  map[string]string{"order_status": "shipped", "echo": `say "hi"`, "err": "", "code": "200", "finished": "yes"},
			},
			{
				name: "failure continues with the error, then stop ends the run as failed",
				answer: func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(503)
					_, _ = w.Write([]byte(`{"status": "down"}`))
				},
				status: "failed",
				attrs:  map[string]string{"order_status": "", "echo": "", "err": "HTTP 503 Service Unavailable", "code": "503", "finished": ""},
				errSub: "http node strict: HTTP 503 Service Unavailable",
			},
		} {
			t.Run(tc.name, func(t *testing.T) {
				answer.Store(&tc.answer)
				digits := fmt.Sprintf("9198765%05d", i)
				v, err := eng.Trigger(ctx, engine.TriggerRequest{BotID: b.ID, CustomerID: c.ID, FlowKey: "f", Channel: "whatsapp",
					Phone: "+" + digits, Digits: digits, Attrs: map[string]string{"order_id": "A 1", "note": `say "hi"`},
					Wait: 10 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				if v.Status != tc.status || !strings.Contains(v.Error, tc.errSub) {
					t.Fatalf("run %+v; want %s with error %q", v, tc.status, tc.errSub)
				}
				u, err := st.UserByChannelID(ctx, b.ID, digits)
				if err != nil {
					t.Fatal(err)
				}
				for k, want := range tc.attrs {
					if got, ok := u.Attrs[k]; got != want || (want == "" && ok && k != "err") {
						t.Fatalf("attribute %s = %q (present %v), want %q; all: %v", k, got, ok, want, u.Attrs)
					}
				}
				if p := lastPath.Load(); tc.status == "completed" && *p != "/strict" {
					t.Fatalf("last request to %s; want the strict step's", *p)
				}
				step, err := svc.Step(ctx, c.ID, b.ID, "f", "call")
				if err != nil {
					t.Fatal(err)
				}
				logs, err := svc.Logs(ctx, step)
				if err != nil || len(logs) == 0 || logs[0].RunID != v.RunID {
					t.Fatalf("logs = %+v, %v; want the run's call first", logs, err)
				}
			})
		}
	})
}
