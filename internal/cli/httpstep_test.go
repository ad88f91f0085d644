package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/cli"
	"github.com/parleyhq/parley/internal/httpstep"
	"github.com/parleyhq/parley/internal/secret"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// jsonTarget answers every request with body and counts the requests.
func jsonTarget(t *testing.T, body string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, strings.ReplaceAll(body, "$ID", r.URL.Query().Get("id")))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func writeFlow(t *testing.T, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "flow.json")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHTTPStepCommands(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			db := e.DSN(t)
			target, hits := jsonTarget(t, `{"order": {"id": "$ID", "state": "paid"}}`)
			var nb newBot
			run(t, &nb, "bot", "create", "--db", db, "--customer", "acme", "--name", "demo")
			cid := fmt.Sprint(nb.CustomerID)
			flowFile := writeFlow(t, fmt.Sprintf(`{"key": "orders", "start": "call", "nodes": [
				{"id": "call", "type": "http", "method": "GET", "url": "%s/orders?id={{order_id}}&key=cli-secret",
				 "save": {"order_state": "order.state"}, "next": "done"},
				{"id": "done", "type": "end"}]}`, target.URL))
			run(t, nil, "flow", "import", "--db", db, "--customer", cid, "--bot", nb.BotKey, flowFile)
			step := []string{"--db", db, "--customer", cid, "--bot", nb.BotKey, "--flow", "orders", "--node", "call"}
			cmd := func(sub string, extra ...string) []string {
				return append(append([]string{"httpstep", sub}, step...), extra...)
			}

			var res struct {
				Request    httpstep.Request  `json:"request"`
				Response   httpstep.Response `json:"response"`
				Failed     bool              `json:"failed"`
				ErrorKind  string            `json:"error_kind"`
				Error      string            `json:"error"`
				Leaves     map[string]string `json:"leaves"`
				Attributes map[string]string `json:"attributes"`
				DurationMS float64           `json:"duration_ms"`
			}
			// Loopback is refused unless allowed.
			run(t, &res, cmd("test", "--attr", "order_id=A 1")...)
			if !res.Failed || res.ErrorKind != "blocked" || hits.Load() != 0 {
				t.Fatalf("test without --http-allow: %+v, %d hits", res, hits.Load())
			}
			res.Failed, res.ErrorKind, res.Error = false, "", ""
			run(t, &res, cmd("test", "--attr", "order_id=A 1", "--attr", "unused=x", "--http-allow", "127.0.0.1/32")...)
			if res.Failed || res.Response.Status != 200 || res.Request.URL != target.URL+"/orders?id=A+1&key=cli-secret" ||
				res.Leaves["order.id"] != "A 1" || res.Attributes["order_state"] != "paid" || len(res.Attributes) != 1 || hits.Load() != 1 {
				t.Fatalf("test: %+v", res)
			}

			var logs struct {
				Logs []struct {
					ID   int64  `json:"id"`
					Test bool   `json:"test"`
					URL  string `json:"url"`
				} `json:"logs"`
			}
			run(t, &logs, cmd("logs")...)
			if len(logs.Logs) != 2 || logs.Logs[0].ID != 2 || !logs.Logs[0].Test || strings.Contains(logs.Logs[0].URL, "cli-secret") {
				t.Fatalf("logs: %+v", logs)
			}
			var full struct {
				ID       int64             `json:"id"`
				Request  httpstep.Request  `json:"request"`
				Response httpstep.Response `json:"response"`
			}
			run(t, &full, cmd("logs", "--id", "2")...)
			if full.ID != 2 || full.Response.Status != 200 || !strings.Contains(full.Request.URL, "key="+httpstep.Redacted) {
				t.Fatalf("log 2: %+v", full)
			}
			var state struct {
				Calls            int64    `json:"calls"`
				Shape            []string `json:"shape"`
				StructureChanged bool     `json:"structure_changed"`
			}
			run(t, &state, cmd("state")...)
			if state.Calls != 2 || len(state.Shape) == 0 || state.StructureChanged {
				t.Fatalf("state: %+v", state)
			}
			run(t, &state, cmd("remap")...)
			run(t, &state, cmd("reset-alert")...)
			if state.Calls != 2 {
				t.Fatalf("state after reset-alert: %+v", state)
			}

			for _, tc := range []struct {
				args []string
				code int
				msg  string
			}{
				{[]string{"httpstep", "test", "--db", db, "--customer", cid, "--bot", nb.BotKey, "--flow", "orders"}, 2, "--node is required"},
				{cmd("test", "--attr", "no-equals"), 2, "want name=value"},
				{cmd("test", "--http-allow", "not a cidr/99"), 2, "--http-allow"},
				{cmd("test", "--http-rate", "0"), 2, "--http-rate"},
				{cmd("logs", "--id", "-1"), 2, "--id"},
				{cmd("logs", "--id", "99"), 1, "has no log 99"},
				{cmd("frob"), 2, "unknown subcommand"},
				{append(cmd("state")[:len(cmd("state"))-1], "done"), 1, "not an http node"},
				{append(cmd("state")[:len(cmd("state"))-1], "nope"), 1, "node not found"},
			} {
				runFails(t, tc.code, tc.msg, tc.args...)
			}
		})
	}
}

// TestServeHTTPFlags: serve refuses bad http-step settings before opening anything.
func TestServeHTTPFlags(t *testing.T) {
	db := storetest.SQLiteDSN(t)
	for _, tc := range []struct {
		args []string
		env  map[string]string
		code int
		msg  string
	}{
		{[]string{"--http-rate", "-3"}, nil, 2, "--http-rate"},
		{nil, map[string]string{"PARLEY_HTTP_RATE": "lots"}, 2, "--http-rate"},
		{[]string{"--http-allow", "127.0.0.1/40"}, nil, 2, "--http-allow"},
		{nil, map[string]string{"PARLEY_HTTP_ALLOW": "10.0.0.0/8, bad host!"}, 2, "--http-allow"},
		{[]string{"--smtp-url", "ftp://mail.example.com"}, nil, 1, "--smtp-url"},
		{nil, map[string]string{"PARLEY_SMTP_URL": "smtp://user:hunter2@mail.example.com?bogus=1"}, 1, "--smtp-url"},
		// Not an http-step setting, but refused the same way.
		{[]string{"--max-running", "-2"}, nil, 2, "--max-running"},
		{nil, map[string]string{"PARLEY_MAX_RUNNING": "lots"}, 2, "PARLEY_MAX_RUNNING"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"serve", "--db", db, "--addr", "127.0.0.1:0"}, tc.args...)
		code := cli.Run(context.Background(), args, cli.Env{Stdout: &stdout, Stderr: &stderr,
			Getenv: func(k string) string { return tc.env[k] }})
		if code != tc.code || !strings.Contains(stderr.String(), tc.msg) || strings.Contains(stderr.String(), "hunter2") {
			t.Errorf("serve %v with %v: exit %d, stderr %q; want exit %d mentioning %s", tc.args, tc.env, code, stderr.String(), tc.code, tc.msg)
		}
	}
	// -h lists the flags without the SMTP password from the environment.
	var stdout, stderr bytes.Buffer
	cli.Run(context.Background(), []string{"serve", "-h"}, cli.Env{Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string {
			if k == "PARLEY_SMTP_URL" {
				return "smtp://user:hunter2@mail.example.com"
			}
			return ""
		}})
	if !strings.Contains(stderr.String(), "-smtp-url") || !strings.Contains(stderr.String(), "-http-allow") || strings.Contains(stderr.String(), "hunter2") {
		t.Fatalf("serve -h: %s", stderr.String())
	}
}

// serverProcess is a `parley serve` started by the test.
type serverProcess struct {
	cmd  *exec.Cmd
	addr string
}

// startServe runs `parley serve` with args and waits until it listens.
func startServe(t *testing.T, bin string, args ...string) *serverProcess {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--log-level", "info"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProcess{cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			var line struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if !sent && json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				addrc <- line.Addr
				sent = true
			}
		}
		if !sent {
			close(addrc)
		}
	}()
	select {
	case addr, ok := <-addrc:
		if !ok {
			t.Fatal("parley serve exited before listening")
		}
		p.addr = addr
	case <-time.After(60 * time.Second):
		t.Fatal("parley serve did not listen within 60 s")
	}
	return p
}

// TestHTTPRateLimitAcrossInstances: two servers sharing one PostgreSQL database let
// exactly the account's 10 calls within 60 s through between them.
func TestHTTPRateLimitAcrossInstances(t *testing.T) {
	if storetest.PostgresURL() == "" {
		t.Skipf("%s is not set: the cross-instance rate limit needs PostgreSQL", storetest.EnvPostgres)
	}
	bin := parleyBinary(t)
	db := storetest.PostgresDSN(t)
	target, hits := jsonTarget(t, `{"ok": true}`)
	out, err := exec.Command(bin, "bot", "create", "--db", db, "--customer", "acme", "--name", "demo").Output()
	if err != nil {
		t.Fatalf("bot create: %v", err)
	}
	var nb newBot
	if err := json.Unmarshal(out, &nb); err != nil {
		t.Fatal(err)
	}
	flowFile := writeFlow(t, fmt.Sprintf(`{"key": "ping", "start": "call", "nodes": [
		{"id": "call", "type": "http", "method": "POST", "url": "%s/ping", "body": {"mode": "json", "content": "{\"n\": \"{{n}}\"}"},
		 "on_failure": "continue", "next": "done"},
		{"id": "done", "type": "end"}]}`, target.URL))
	if out, err := exec.Command(bin, "flow", "import", "--db", db, "--customer", fmt.Sprint(nb.CustomerID), "--bot", nb.BotKey,
		flowFile).CombinedOutput(); err != nil {
		t.Fatalf("flow import: %v %s", err, out)
	}
	// On PostgreSQL a server needs the key that encrypts secrets; instances share it.
	key := secret.NewKey()
	servers := []*serverProcess{
		startServe(t, bin, "--db", db, "--http-allow", "127.0.0.1/32", "--secret-key", key),
		startServe(t, bin, "--db", db, "--http-allow", "127.0.0.1/32", "--secret-key", key),
	}

	// The limit holds within any 60 s: all 50 calls fall within the first's 60 s.
	start := time.Now()
	const triggers = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	limited, completed := 0, 0
	var problems []string
	for i := range triggers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv := servers[i%2]
			url := fmt.Sprintf("http://%s/bot-api/v2.0/customer/%d/bot/%s/flow/ping?wait=true", srv.addr, nb.CustomerID, nb.BotKey)
			body := fmt.Sprintf(`{"user.phone_no": "+9198765%05d", "n": "%d"}`, i, i)
			req, _ := http.NewRequest("POST", url, strings.NewReader(body))
			req.Header.Set("Authorization", "Basic "+nb.APIKey)
			res, err := http.DefaultClient.Do(req)
			var v struct {
				ResponseObject struct {
					Status string `json:"status"`
					Steps  []struct {
						Node  string `json:"node"`
						Error string `json:"error"`
					} `json:"steps"`
				} `json:"responseObject"`
			}
			if err == nil {
				defer res.Body.Close()
				err = json.NewDecoder(res.Body).Decode(&v)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				problems = append(problems, err.Error())
			case v.ResponseObject.Status != "completed" || len(v.ResponseObject.Steps) == 0:
				problems = append(problems, fmt.Sprintf("run %+v", v.ResponseObject))
			default:
				completed++
				if v.ResponseObject.Steps[0].Error == httpstep.RateLimited {
					limited++
				}
			}
		}()
	}
	wg.Wait()
	if len(problems) > 0 {
		t.Fatalf("%d triggers went wrong, first: %s", len(problems), problems[0])
	}
	if time.Since(start) > 50*time.Second {
		t.Fatalf("the triggers took %s: the first calls may have left the window, the test proves nothing", time.Since(start))
	}
	if hits.Load() != 10 || limited != 40 || completed != triggers {
		t.Fatalf("%d calls reached the target and %d of %d runs were refused; want 10 and 40", hits.Load(), limited, completed)
	}
}
