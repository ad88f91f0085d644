package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/app"
	"github.com/parleyhq/parley/internal/cli"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// run executes a parley command in process and decodes its JSON output into out.
func run(t *testing.T, out any, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), args, cli.Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }})
	if code != 0 {
		t.Fatalf("parley %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	if out != nil {
		if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
			t.Fatalf("parley %s printed %q: %v", strings.Join(args, " "), stdout.String(), err)
		}
	}
}

func runFails(t *testing.T, wantCode int, wantErr string, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), args, cli.Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }})
	if code != wantCode || !strings.Contains(stderr.String(), wantErr) {
		t.Fatalf("parley %s: exit %d, stderr %q; want exit %d mentioning %q", strings.Join(args, " "), code, stderr.String(), wantCode, wantErr)
	}
}

type newBot struct {
	CustomerID int64  `json:"customer_id"`
	BotKey     string `json:"bot_key"`
	APIKey     string `json:"api_key"`
}

func TestCommands(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			db := e.DSN(t)
			var nb newBot
			run(t, &nb, "bot", "create", "--db", db, "--customer", "acme", "--name", "demo")
			if nb.CustomerID < 10001 || len(nb.BotKey) != 16 || len(nb.APIKey) != 44 {
				t.Fatalf("bot create = %+v", nb)
			}
			var again newBot
			run(t, &again, "bot", "create", "--db", db, "--customer", "acme", "--name", "second")
			if again.CustomerID != nb.CustomerID || again.BotKey == nb.BotKey {
				t.Fatalf("second bot of the same customer = %+v", again)
			}
			cid := fmt.Sprint(nb.CustomerID)
			var keys struct {
				Keys []struct {
					ID        int64   `json:"id"`
					RevokedAt *string `json:"revoked_at"`
				} `json:"keys"`
			}
			run(t, &keys, "key", "list", "--db", db, "--customer", cid, "--bot", nb.BotKey)
			if len(keys.Keys) != 1 {
				t.Fatalf("key list = %+v", keys)
			}
			id := fmt.Sprint(keys.Keys[0].ID)
			var created, regen struct {
				ID     int64  `json:"id"`
				APIKey string `json:"api_key"`
			}
			run(t, &created, "key", "create", "--db", db, "--customer", cid, "--bot", nb.BotKey)
			run(t, &regen, "key", "regenerate", "--db", db, "--customer", cid, "--bot", nb.BotKey, "--id", id)
			if fmt.Sprint(regen.ID) != id || regen.APIKey == nb.APIKey || created.APIKey == "" {
				t.Fatalf("create %+v regenerate %+v", created, regen)
			}
			run(t, nil, "key", "revoke", "--db", db, "--customer", cid, "--bot", nb.BotKey, "--id", id)
			run(t, &keys, "key", "list", "--db", db, "--customer", cid, "--bot", nb.BotKey)
			if len(keys.Keys) != 2 || keys.Keys[0].RevokedAt == nil || keys.Keys[1].RevokedAt != nil {
				t.Fatalf("after revoke: %+v", keys)
			}

			flowFile := filepath.Join(t.TempDir(), "flow.json")
			if err := os.WriteFile(flowFile, []byte(`{"name": "Hi", "start": "m", "nodes": [{"id": "m", "type": "message", "text": "hi"}]}`), 0o600); err != nil {
				t.Fatal(err)
			}
			var imported struct {
				FlowKey string `json:"flow_key"`
				Version int    `json:"version"`
			}
			run(t, &imported, "flow", "import", "--db", db, "--customer", cid, "--bot", nb.BotKey, flowFile)
			if len(imported.FlowKey) != 32 || strings.ToUpper(imported.FlowKey) != imported.FlowKey || imported.Version != 1 {
				t.Fatalf("flow import = %+v; want a generated 32-hex key", imported)
			}
			var exported map[string]any
			run(t, &exported, "flow", "export", "--db", db, "--customer", cid, "--bot", nb.BotKey, "--key", strings.ToLower(imported.FlowKey))
			if exported["key"] != imported.FlowKey || exported["name"] != "Hi" {
				t.Fatalf("flow export = %v", exported)
			}
			var valid map[string]any
			run(t, &valid, "flow", "validate", flowFile)
			if valid["valid"] != true {
				t.Fatalf("flow validate = %v", valid)
			}
			var account map[string]any
			run(t, &account, "account", "set", "--db", db, "--customer", cid, "--http-rate", "25")
			if account["http_rate"] != float64(25) {
				t.Fatalf("account set = %v", account)
			}
			// Each setting changes alone; 0 restores the server default.
			for _, tc := range []struct {
				args             []string
				rate, maxRunning any
			}{
				{[]string{"--max-running", "3"}, float64(25), float64(3)},
				{[]string{"--http-rate", "40"}, float64(40), float64(3)},
				{[]string{"--max-running", "0"}, float64(40), nil},
				{[]string{"--http-rate", "0", "--max-running", "7"}, nil, float64(7)},
			} {
				account = nil
				run(t, &account, append([]string{"account", "set", "--db", db, "--customer", cid}, tc.args...)...)
				if account["http_rate"] != tc.rate || account["max_running"] != tc.maxRunning {
					t.Fatalf("account set %v = %v; want http_rate %v, max_running %v", tc.args, account, tc.rate, tc.maxRunning)
				}
			}
			runFails(t, 2, "nothing to set", "account", "set", "--db", db, "--customer", cid)
			runFails(t, 2, "--max-running", "account", "set", "--db", db, "--customer", cid, "--max-running", "-1")
		})
	}
}

func TestCommandErrors(t *testing.T) {
	db := storetest.SQLiteDSN(t)
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"start": "a", "nodes": [{"id": "a", "type": "nope"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	runFails(t, 2, "unknown command", "frobnicate")
	runFails(t, 2, "--customer", "bot", "create", "--db", db, "--name", "x")
	runFails(t, 2, "unknown subcommand", "key", "rotate")
	runFails(t, 2, "--id is required", "key", "revoke", "--db", db, "--customer", "1", "--bot", "b")
	runFails(t, 1, "has no bot", "key", "list", "--db", db, "--customer", "1", "--bot", "b")
	runFails(t, 1, "not a valid flow", "flow", "validate", bad)
	runFails(t, 1, "no such file", "flow", "validate", filepath.Join(t.TempDir(), "missing.json"))
	runFails(t, 2, "flag provided but not defined", "bot", "create", "--bogus")
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// parleyBinary builds cmd/parley once per test binary.
func parleyBinary(t *testing.T) string {
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "parley-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "parley")
		out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/parley").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// TestServerAndCLIShareSQLite runs the CLI as separate processes against the SQLite file
// a running server is writing to: neither sees "database is locked".
func TestServerAndCLIShareSQLite(t *testing.T) {
	bin := parleyBinary(t)
	db := storetest.SQLiteDSN(t)
	out, err := exec.Command(bin, "bot", "create", "--db", db, "--customer", "acme", "--name", "demo").Output()
	if err != nil {
		t.Fatalf("bot create: %v", err)
	}
	var nb newBot
	if err := json.Unmarshal(out, &nb); err != nil {
		t.Fatal(err)
	}
	flowFile := filepath.Join(t.TempDir(), "flow.json")
	_ = os.WriteFile(flowFile, []byte(`{"key": "hi", "start": "m", "nodes": [{"id": "m", "type": "message", "text": "hi {{n}}"}]}`), 0o600)
	if out, err := exec.Command(bin, "flow", "import", "--db", db, "--customer", fmt.Sprint(nb.CustomerID), "--bot", nb.BotKey, flowFile).CombinedOutput(); err != nil {
		t.Fatalf("flow import: %v %s", err, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	srv, err := app.Open(ctx, app.Config{Addr: "127.0.0.1:0", DB: db, Ready: ready})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		srv.Close()
	}()
	base := "http://" + <-ready
	trigger := fmt.Sprintf("%s/bot-api/v2.0/customer/%d/bot/%s/flow/hi", base, nb.CustomerID, nb.BotKey)

	stop := make(chan struct{})
	var triggers sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	for w := range 4 {
		triggers.Add(1)
		go func() {
			defer triggers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"user.phone_no": "9198765%02d%03d", "n": "%d"}`, w, i%1000, i)
				req, _ := http.NewRequest("POST", trigger, strings.NewReader(body))
				req.Header.Set("Authorization", "Basic "+nb.APIKey)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
					return
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("trigger: %d %s", res.StatusCode, b))
					mu.Unlock()
				}
			}
		}()
	}
	// Meanwhile, CLI processes write to the same file.
	deadline := time.Now().Add(3 * time.Second)
	n := 0
	for time.Now().Before(deadline) {
		out, err := exec.Command(bin, "key", "create", "--db", db, "--customer", fmt.Sprint(nb.CustomerID), "--bot", nb.BotKey).CombinedOutput()
		if err != nil {
			t.Errorf("key create beside the server: %v: %s", err, out)
			break
		}
		var k struct {
			APIKey string `json:"api_key"`
		}
		if err := json.Unmarshal(out, &k); err != nil || k.APIKey == "" {
			t.Errorf("key create printed %q", out)
			break
		}
		// The key made by the CLI works on the running server.
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/bot-api/v1.0/customer/%d/bot/%s/users?attribute_name=n&attribute_value=1", base, nb.CustomerID, nb.BotKey), nil)
		req.Header.Set("Authorization", "Basic "+k.APIKey)
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 200 {
			t.Errorf("CLI-made key on the server: %v %v", res, err)
			break
		}
		res.Body.Close()
		n++
	}
	close(stop)
	triggers.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d trigger errors, first: %s", len(errs), errs[0])
	}
	if n < 3 {
		t.Fatalf("only %d CLI runs in 3 s", n)
	}
}
