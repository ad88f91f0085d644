package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/api"
	"github.com/parleyhq/parley/internal/engine"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// logBuffer collects JSON log lines written from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines decodes the log lines written so far.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// blockingHTTP is an http node's caller that holds every call until released.
type blockingHTTP struct {
	started chan struct{}
	release chan struct{}
}

func (b *blockingHTTP) Call(ctx context.Context, call engine.HTTPCall) engine.HTTPResult {
	b.started <- struct{}{}
	<-b.release
	return engine.HTTPResult{Status: 200}
}

// TestClientGoneIsNotAnError: a trigger whose client hangs up while it waits for the run
// is logged at INFO with status 499 — not as an ERROR 500 — and no log line carries the
// user's phone number, though it came in the query string, the path and wrapped store
// errors ("user 919876543210: context canceled").
func TestClientGoneIsNotAnError(t *testing.T) {
	const digits = "919876543210"
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		logs := &logBuffer{}
		caller := &blockingHTTP{started: make(chan struct{}, 4), release: make(chan struct{})}
		e := newEnv(t, st, func(t *testing.T, cfg *engine.Config, deps *api.Deps) {
			deps.Log = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			cfg.Log = deps.Log
			cfg.HTTP = caller
		})
		e.importFlow(e.a, `{"key": "slow", "start": "call", "nodes": [
			{"id": "call", "type": "http", "method": "GET", "url": "https://crm.example.com/orders", "next": "done"},
			{"id": "done", "type": "end"}]}`)
		t.Cleanup(func() { close(caller.release) })

		// 1. The client gives up while the run is in its http step.
		for _, path := range []string{
			botPath("v1.0", e.a) + "/flow/slow?wait=true&user.phone_no=%2B" + digits + "&secret_note=" + digits,
			botPath("v2.0", e.a) + "/flow/slow?wait=true",
		} {
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "POST", e.srv.URL+path, strings.NewReader(`{"user.phone_no": "+`+digits+`"}`))
			req.Header.Set("Authorization", "Basic "+e.a.APIKey)
			done := make(chan error, 1)
			go func() {
				res, err := http.DefaultClient.Do(req)
				if err == nil {
					res.Body.Close()
				}
				done <- err
			}()
			select {
			case <-caller.started:
			case <-time.After(10 * time.Second):
				t.Fatal("the run did not reach its http step")
			}
			cancel()
			if err := <-done; err == nil {
				t.Fatal("the request was answered although the client cancelled it")
			}
		}

		// 2. The client has gone before the handler reads the database.
		conv := httptest.NewRequest("GET", botPath("v1.0", e.a)+"/channel-user/"+digits+"/conversations", nil)
		conv.Header.Set("Authorization", "Basic "+e.a.APIKey)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		w := httptest.NewRecorder()
		e.srv.Config.Handler.ServeHTTP(w, conv.WithContext(ctx))
		if w.Code != api.StatusClientClosedRequest {
			t.Fatalf("conversations for a gone client: HTTP %d %s", w.Code, w.Body)
		}

		// Each request is logged once it is answered.
		deadline := time.Now().Add(10 * time.Second)
		for {
			n := 0
			for _, l := range logs.lines(t) {
				if l["msg"] == "request" && l["status"] == float64(499) {
					if l["level"] != "INFO" {
						t.Fatalf("a gone client is logged at %v: %v", l["level"], l)
					}
					n++
				}
			}
			if n == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d request lines with status 499, want 3; log:\n%s", n, logs)
			}
			time.Sleep(20 * time.Millisecond)
		}
		out := logs.String()
		if strings.Contains(out, `"level":"ERROR"`) {
			t.Fatalf("an ERROR was logged:\n%s", out)
		}
		if strings.Contains(out, "98765") {
			t.Fatalf("a phone number was logged:\n%s", out)
		}
		if !strings.Contains(out, "3210") {
			t.Fatalf("the masked numbers keep their last 4 digits:\n%s", out)
		}
	})
}
