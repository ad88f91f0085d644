package cli_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/cli"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// bigFlow is a valid flow document of about size bytes (a long name-free message text
// spread over many nodes).
func bigFlow(size int) string {
	var b strings.Builder
	b.WriteString(`{"key": "big", "start": "n0", "nodes": [`)
	text := strings.Repeat("x", 4000)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id": "n%d", "type": "message", "text": %q, "next": "n%d"}`, i, text, i+1)
		if b.Len() >= size {
			fmt.Fprintf(&b, `, {"id": "n%d", "type": "end"}`, i+1)
		}
	}
	b.WriteString("]}")
	return b.String()
}

// TestFlowSizeLimit: `parley flow import` and `flow validate` refuse a document over
// 1 MiB, as the admin API does, and take one just under it.
func TestFlowSizeLimit(t *testing.T) {
	db := storetest.SQLiteDSN(t)
	var nb newBot
	run(t, &nb, "bot", "create", "--db", db, "--customer", "acme", "--name", "demo")
	cid := fmt.Sprint(nb.CustomerID)
	huge := writeFlow(t, bigFlow(2<<20))
	runFails(t, 1, "limit of a flow document", "flow", "import", "--db", db, "--customer", cid, "--bot", nb.BotKey, huge)
	runFails(t, 1, "limit of a flow document", "flow", "validate", huge)
	fits := writeFlow(t, bigFlow(1<<20-8000))
	run(t, nil, "flow", "validate", fits)
	run(t, nil, "flow", "import", "--db", db, "--customer", cid, "--bot", nb.BotKey, fits)
}

// TestNameLimitsCLI: `parley bot create` applies the admin API's name rules.
func TestNameLimitsCLI(t *testing.T) {
	db := storetest.SQLiteDSN(t)
	runFails(t, 1, "customer name", "bot", "create", "--db", db, "--customer", strings.Repeat("a", 201), "--name", "x")
	runFails(t, 1, "bot name", "bot", "create", "--db", db, "--customer", "acme", "--name", strings.Repeat("a", 201))
	runFails(t, 1, "bot name", "bot", "create", "--db", db, "--customer", "acme", "--name", "a\x00b")
	run(t, nil, "bot", "create", "--db", db, "--customer", strings.Repeat("a", 200), "--name", strings.Repeat("b", 200))
}

// TestServeMetricsAddr: with --metrics-addr (or PARLEY_METRICS_ADDR), /metrics is served
// on its own listener and no longer on the API's.
func TestServeMetricsAddr(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"flag", []string{"--metrics-addr", "127.0.0.1:0"}, nil},
		{"environment", nil, map[string]string{"PARLEY_METRICS_ADDR": "127.0.0.1:0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pr, pw := io.Pipe()
			args := append([]string{"serve", "--db", storetest.SQLiteDSN(t), "--addr", "127.0.0.1:0"}, tc.args...)
			exited := make(chan int, 1)
			go func() {
				exited <- cli.Run(ctx, args, cli.Env{Stdout: io.Discard, Stderr: pw, Getenv: func(k string) string { return tc.env[k] }})
				pw.Close()
			}()
			listening := make(chan map[string]any, 1)
			go func() {
				sc := bufio.NewScanner(pr)
				for sc.Scan() {
					var line map[string]any
					if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "listening" {
						listening <- line
					}
				}
			}()
			var line map[string]any
			select {
			case line = <-listening:
			case code := <-exited:
				t.Fatalf("serve exited with %d before listening", code)
			case <-time.After(30 * time.Second):
				t.Fatal("serve did not listen")
			}
			api, _ := line["addr"].(string)
			metrics, _ := line["metrics_addr"].(string)
			if api == "" || metrics == "" || api == metrics {
				t.Fatalf("listening line %v", line)
			}
			get := func(url string) (int, string) {
				res, err := http.Get(url)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				b, _ := io.ReadAll(res.Body)
				return res.StatusCode, string(b)
			}
			if code, _ := get("http://" + api + "/healthz"); code != 200 {
				t.Fatalf("healthz: %d", code)
			}
			if code, body := get("http://" + metrics + "/metrics"); code != 200 || !strings.Contains(body, `parley_http_requests_total{code="200",method="GET",route="GET /healthz"} 1`) {
				t.Fatalf("metrics listener: %d %s", code, body)
			}
			if code, body := get("http://" + api + "/metrics"); code != 404 {
				t.Fatalf("the API's listener still serves /metrics: %d %s", code, body)
			}
			cancel()
			if code := <-exited; code != 0 {
				t.Fatalf("serve exited with %d", code)
			}
		})
	}
}
