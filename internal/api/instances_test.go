package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// liveness is how long the engine waits for a silent instance before others claim its
// runs (engine.Config.Liveness's default), plus a heartbeat and a sweep.
const liveness = 10 * time.Second

// TestTwoInstances runs two `parley serve` on one PostgreSQL schema under a steady load
// split across both, kills one with SIGKILL mid-load several times (restarting it), and
// the last time leaves it dead: the survivor must finish the dead one's runs within the
// liveness window. Every accepted run completes; no WhatsApp message reaches the fake
// Graph API twice; no http step's POST is made twice.
func TestTwoInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts servers")
	}
	if storetest.PostgresURL() == "" {
		t.Skip("two instances share a PostgreSQL database; set " + storetest.EnvPostgres)
	}
	parleyBinary(t)
	db := storetest.PostgresDSN(t)

	var mu sync.Mutex
	posts := map[string]int{} // phone → POSTs the target received
	target := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		posts[strings.TrimPrefix(r.URL.Query().Get("p"), "+")]++
		mu.Unlock()
		time.Sleep(20 * time.Millisecond) // calls in flight when a server dies
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok": true}`)
	}
	api := newHolding(t, target, func(*http.Request) bool { return false }, false)
	graph := newFakeGraph(t)
	slowGraph := newHolding(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		graph.serve(w, r)
	}, func(*http.Request) bool { return false }, false)
	c := newCrashEnv(t, db, `{"key": "two", "start": "call", "nodes": [
  {"id": "call", "type": "http", "method": "POST", "url": "`+api.URL+`/hook?p={{user.phone_no}}", "timeout_seconds": 60, "next": "msg"},
  {"id": "msg", "type": "message", "template": {"name": "done", "language": {"code": "en"}}}]}`)
	c.channel(channel.WhatsApp, channel.Config{Adapter: channel.AdapterWhatsApp, BaseURL: slowGraph.URL, PhoneNumberID: waPhoneID,
		Token: waToken, AppSecret: waAppSecret, VerifyToken: waVerifyToken, RatePerSecond: -1})

	_, baseA := serve(t, db)
	var idA string
	if err := c.st.Reader().QueryRow(context.Background(), `SELECT id FROM instances`).Scan(&idA); err != nil {
		t.Fatal(err)
	}
	cmdB, baseB := serve(t, db)
	var bases sync.Map // "a", "b" → base URL; b changes at each restart
	bases.Store("a", baseA)
	bases.Store("b", baseB)

	// The load generator: clients alternate between the instances, each trigger for a
	// new user; a run is accepted when its trigger answered 200 with a run id.
	var (
		accMu    sync.Mutex
		accepted = map[string]string{} // run id → phone
		seq      atomic.Int64
		stop     = make(chan struct{})
		clients  sync.WaitGroup
	)
	for i := range 8 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			inst := []string{"a", "b"}[i%2]
			for {
				select {
				case <-stop:
					return
				default:
				}
				base, _ := bases.Load(inst)
				p := "91990" + strconv.FormatInt(1_000_000+seq.Add(1), 10)
				code, raw, err := c.post(base.(string), botPath("v2.0", c.nb)+"/flow/two", `{"user.channel": "whatsapp", "user.phone_no": "`+p+`"}`)
				var body struct {
					Obj struct {
						RunID string `json:"run_id"`
					} `json:"responseObject"`
				}
				if err == nil && code == 200 && json.Unmarshal(raw, &body) == nil && body.Obj.RunID != "" {
					accMu.Lock()
					accepted[body.Obj.RunID] = p
					accMu.Unlock()
				} else if err != nil {
					time.Sleep(20 * time.Millisecond) // the instance is down: wait for its restart
				}
			}
		}()
	}

	// Three kills with a restart, then a last one without.
	for round := range 4 {
		time.Sleep(1500 * time.Millisecond)
		kill(t, cmdB)
		if round == 3 {
			break
		}
		var next string
		cmdB, next = serve(t, db)
		bases.Store("b", next)
	}
	killedAt := time.Now()
	orphans := c.count(`SELECT COUNT(*) FROM runs WHERE status NOT IN ('completed', 'failed') AND owner <> '` + idA + `'`)
	bases.Store("b", baseA) // the dead instance's clients move to the survivor
	time.Sleep(500 * time.Millisecond)
	close(stop)
	clients.Wait()

	// The survivor claims and finishes the dead instances' runs within the liveness
	// window (plus a heartbeat, a sweep and the runs' own calls).
	deadline := killedAt.Add(liveness + 8*time.Second)
	for {
		open := c.count(`SELECT COUNT(*) FROM runs WHERE status NOT IN ('completed', 'failed')`)
		pending := c.count(`SELECT COUNT(*) FROM messages WHERE status = 'pending'`)
		if open == 0 && pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after the last kill: %d runs unfinished, %d messages pending", time.Since(killedAt).Round(time.Millisecond), open, pending)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d runs accepted; the dead instance left %d unfinished, all finished %s after the kill; %d sends interrupted by the kills (not repeated)",
		len(accepted), orphans, time.Since(killedAt).Round(100*time.Millisecond),
		c.count(`SELECT COUNT(*) FROM messages WHERE status = 'failed' AND error LIKE '%interrupted%'`))
	if len(accepted) < 50 {
		t.Fatalf("only %d runs accepted: the load did not run", len(accepted))
	}
	if orphans == 0 {
		t.Fatal("the last kill left no run unfinished: nothing was taken over")
	}

	// The survivor's /metrics shows its database traffic: statements sent in pipelined
	// batches, fewer round trips than statements.
	m := metricValues(t, baseA+"/metrics")
	if m["parley_db_pipelines_total"] <= 0 || m["parley_db_round_trips_total"] >= m["parley_db_statements_total"] ||
		m["parley_db_group_commit_ops_total"] < m["parley_db_group_commits_total"] || m["parley_db_group_commits_total"] <= 0 {
		t.Errorf("database metrics %v; want pipelined batches, fewer round trips than statements", m)
	}

	sends := map[string]int{}
	for _, call := range graph.sent() {
		sends[call.To]++
	}
	for phone, n := range sends {
		if n > 1 {
			t.Errorf("Graph API got the message for %s %d times", phone, n)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for phone, n := range posts {
		if n > 1 {
			t.Errorf("the http step POSTed for %s %d times", phone, n)
		}
	}
	lost := 0
	for id, p := range accepted {
		r, err := c.st.RunByID(context.Background(), nil, id)
		if err != nil {
			lost++
			t.Errorf("accepted run %s (%s): %v", id, p, err)
			continue
		}
		if r.Status != store.RunCompleted {
			t.Errorf("run %s (%s): %s (%s)", id, p, r.Status, r.Error)
		}
		if posts[p] > 1 || sends[p] > 1 {
			t.Errorf("run %s (%s): %d POSTs, %d messages sent", id, p, posts[p], sends[p])
		}
	}
	if lost > 0 {
		t.Fatalf("%d accepted runs lost", lost)
	}
}

// count runs a COUNT query on the test's database.
func (c *crashEnv) count(query string) int {
	c.t.Helper()
	var n int
	if err := c.st.Reader().QueryRow(context.Background(), query).Scan(&n); err != nil {
		c.t.Fatal(err)
	}
	return n
}

// metricValues reads the parley_db_* counters of a /metrics page.
func metricValues(t *testing.T, url string) map[string]float64 {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(name, "parley_db_") {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metric %q: %v", line, err)
		}
		out[name] = v
	}
	return out
}
