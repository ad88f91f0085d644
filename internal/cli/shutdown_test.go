package cli_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/cli"
	"github.com/parleyhq/parley/internal/secret"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// servedCLI is `parley serve` running in process.
type servedCLI struct {
	addr   string
	logs   *syncBuffer
	cancel context.CancelFunc
	exited chan int // receives serve's exit code once
	done   bool     // the exit code was received
}

// serveCLI starts `parley serve` through cli.Run and waits until it listens.
func serveCLI(t *testing.T, env map[string]string, args ...string) *servedCLI {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &servedCLI{logs: &syncBuffer{}, cancel: cancel, exited: make(chan int, 1)}
	go func() {
		s.exited <- cli.Run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...),
			cli.Env{Stdout: io.Discard, Stderr: s.logs, Getenv: func(k string) string { return env[k] }})
	}()
	t.Cleanup(func() {
		if !s.done {
			s.stop(t)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(s.logs.String()))
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				s.addr = line.Addr
				return s
			}
		}
		select {
		case code := <-s.exited:
			s.done = true
			t.Fatalf("serve exited with %d: %s", code, s.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("serve did not listen: %s", s.logs.String())
	return nil
}

// stop cancels serve and returns its exit code.
func (s *servedCLI) stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	select {
	case code := <-s.exited:
		s.done = true
		return code
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not stop: %s", s.logs.String())
	}
	return -1
}

// TestServeShutdownInFlight: runs are in the middle of a slow HTTP-step call and a
// client holds a request open when serve is told to stop. The open request cannot take
// the engine's share of --shutdown-grace: the calls in flight are waited for, the runs
// are stored and released without an error, and the next server finishes them, each call
// made exactly once.
func TestServeShutdownInFlight(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			db := e.DSN(t)
			env := map[string]string{"PARLEY_SECRET_KEY": secret.NewKey()}
			const callTime = 4500 * time.Millisecond
			var mu sync.Mutex
			calls := map[string]int{} // "run n, call c" → calls received
			arrived := make(chan struct{}, 100)
			target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				calls[r.URL.Query().Get("n")+"/"+r.URL.Query().Get("c")]++
				mu.Unlock()
				arrived <- struct{}{}
				select {
				case <-time.After(callTime):
				case <-r.Context().Done():
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"ok": true}`)
			}))
			t.Cleanup(target.Close)

			var nb newBot
			mustRun(t, env, &nb, "bot", "create", "--db", db, "--customer", "acme", "--name", "demo")
			flowFile := writeFlow(t, fmt.Sprintf(`{"key": "slow", "start": "one", "nodes": [
				{"id": "one", "type": "http", "method": "GET", "url": "%[1]s/x?n={{n}}&c=1", "on_failure": "stop", "next": "two"},
				{"id": "two", "type": "http", "method": "GET", "url": "%[1]s/x?n={{n}}&c=2", "on_failure": "stop", "next": "done"},
				{"id": "done", "type": "end"}]}`, target.URL))
			mustRun(t, env, nil, "flow", "import", "--db", db, "--customer", fmt.Sprint(nb.CustomerID), "--bot", nb.BotKey, flowFile)
			serveArgs := []string{"--db", db, "--http-allow", "127.0.0.1/32", "--http-rate", "100000", "--shutdown-grace", "8s"}

			srv := serveCLI(t, env, serveArgs...)
			const runs = 10
			var ids []string
			for i := range runs {
				req, _ := http.NewRequest("POST", fmt.Sprintf("http://%s/bot-api/v2.0/customer/%d/bot/%s/flow/slow", srv.addr, nb.CustomerID, nb.BotKey),
					strings.NewReader(fmt.Sprintf(`{"user.phone_no": "+9198765%05d", "n": "%d"}`, i, i)))
				req.Header.Set("Authorization", "Basic "+nb.APIKey)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var body struct {
					Obj struct {
						RunID string `json:"run_id"`
					} `json:"responseObject"`
				}
				_ = json.NewDecoder(res.Body).Decode(&body)
				res.Body.Close()
				if res.StatusCode != 200 || body.Obj.RunID == "" {
					t.Fatalf("trigger %d: %d %+v", i, res.StatusCode, body)
				}
				ids = append(ids, body.Obj.RunID)
			}
			for range runs {
				<-arrived // every run is in its first call
			}
			// A client sends half a request and never the rest: the HTTP server's graceful
			// shutdown would wait for it beyond the whole grace.
			slow, err := net.Dial("tcp", srv.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer slow.Close()
			if _, err := io.WriteString(slow, "GET /healthz HTTP/1.1\r\nHost: x\r\n"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond) // let the server read it
			if code := srv.stop(t); code != 0 {
				t.Fatalf("serve exited with %d: %s", code, srv.logs.String())
			}
			logs := srv.logs.String()
			if strings.Contains(logs, `"level":"ERROR"`) || strings.Contains(logs, store.ErrClosed.Error()) {
				t.Fatalf("errors logged by the shutdown:\n%s", logs)
			}
			if !strings.Contains(logs, "requests still in flight") {
				t.Fatalf("the held request did not outlast the HTTP server's share:\n%s", logs)
			}

			// The first calls were waited for; the runs, about to make their second, were
			// stored as they were and released.
			st := storetest.Open(t, db)
			ctx := context.Background()
			for _, id := range ids {
				r, err := st.RunByID(ctx, nil, id)
				unfinished := r.Status == store.RunQueued || r.Status == store.RunRunning
				if err != nil || !unfinished || r.Owner != nil || r.Node != "two" {
					t.Fatalf("run %s after the shutdown: %s at %q owned by %v (%v); want unfinished at two, released", id, r.Status, r.Node, r.Owner, err)
				}
			}

			next := serveCLI(t, env, serveArgs...)
			deadline := time.Now().Add(60 * time.Second)
			for _, id := range ids {
				for {
					r, err := st.RunByID(ctx, nil, id)
					if err != nil {
						t.Fatal(err)
					}
					if r.Status == store.RunCompleted {
						break
					}
					if r.Status == store.RunFailed || time.Now().After(deadline) {
						t.Fatalf("run %s after the restart: %s (%s)", id, r.Status, r.Error)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			if code := next.stop(t); code != 0 {
				t.Fatalf("the second serve exited with %d: %s", code, next.logs.String())
			}
			mu.Lock()
			defer mu.Unlock()
			for i := range runs {
				for c := 1; c <= 2; c++ {
					if got := calls[fmt.Sprintf("%d/%d", i, c)]; got != 1 {
						t.Errorf("run %d, call %d: made %d times, want once", i, c, got)
					}
				}
			}
		})
	}
}
