// Command fairness measures tenant isolation: it starts a Parley server in this process
// (SQLite in a temporary directory, or --db postgres://...) with two customers. The
// first floods HTTP steps whose target (a local server) never answers: -flood clients
// trigger back to back, half with ?wait_ms (GET and POST flows alike), half answered at
// once. The second customer's clients trigger a trivial flow with ?wait=true. The second
// customer's latency is sampled in alternating rounds with the flood paused and running,
// so that both see the same background load of the machine, and the program prints
// its p50/p99 idle and flooded, with the flood's own answers: accepted, refused with
// 503 ("nothing was started"), and the latest answer against its cap.
//
//	go run ./bench/fairness
//	go run ./bench/fairness -db 'postgres://postgres@127.0.0.1:5432/test?search_path=bench'
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/bench/internal/loadgen"
	"github.com/parleyhq/parley/internal/app"
	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/catalog"
)

const (
	slowFlow = `{"key": "slow_%[1]s", "start": "call", "nodes": [
  {"id": "call", "type": "http", "method": %[2]q, "url": "%[3]s/hang", "timeout_seconds": %[4]d, "next": "done"},
  {"id": "done", "type": "end"}]}`
	quickFlow = `{"key": "quick", "start": "tier", "nodes": [
  {"id": "tier", "type": "decision", "branches": [{"when": {"attribute": "tier", "op": "eq", "value": "vip"}, "next": "set"}], "else": "set"},
  {"id": "set", "type": "set", "set": {"seen": "yes"}, "next": "done"},
  {"id": "done", "type": "end"}]}`
	// acceptTimeout is the server's bound on a trigger that does not wait (engine's
	// default AcceptTimeout).
	acceptTimeout = 10 * time.Second
	// capSlack is what an answer may take past its cap (the HTTP exchange).
	capSlack = 500 * time.Millisecond
)

type floodAnswer struct {
	status int
	took   time.Duration
	cap    time.Duration
}

func main() {
	db := flag.String("db", "", "database (default: a fresh SQLite file in a temporary directory)")
	flood := flag.Int("flood", 64, "clients of the flooding customer")
	clients := flag.Int("clients", 4, "clients of the second customer")
	rounds := flag.Int("rounds", 5, "rounds of idle and flooded sampling")
	round := flag.Duration("round", 2*time.Second, "sampling time per round and phase")
	waitMS := flag.Int("wait-ms", 2000, "the flood's wait_ms (half of its clients)")
	timeout := flag.Int("timeout", 10, "the http node's timeout_seconds (the silent target's calls end then)")
	workers := flag.Int("workers", 0, "engine workers (0: the server default)")
	maxRunning := flag.Int("max-running", 0, "the server's --max-running (0: the default)")
	flag.Parse()

	release := make(chan struct{})
	var calls atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer target.Close()

	ctx := context.Background()
	var second auth.NewBot
	srv := loadgen.Start(ctx, app.Config{DB: *db, Workers: *workers, MaxRunning: *maxRunning, HTTPAllow: []string{"127.0.0.1/32"}},
		[]string{fmt.Sprintf(slowFlow, "get", "GET", target.URL, *timeout), fmt.Sprintf(slowFlow, "post", "POST", target.URL, *timeout)},
		func(s *app.Server, nb auth.NewBot) error {
			rate := 100_000_000
			if err := s.Store().SetCustomerHTTPRate(ctx, nb.CustomerID, &rate); err != nil {
				return err
			}
			var err error
			if second, err = auth.New(s.Store(), 0).CreateBot(ctx, fmt.Sprintf("bench-second-%d", time.Now().UnixNano()), "second"); err != nil {
				return err
			}
			b, err := s.Store().Bot(ctx, second.CustomerID, second.BotKey)
			if err != nil {
				return err
			}
			_, err = catalog.Import(ctx, s.Store(), b.ID, []byte(quickFlow))
			return err
		})
	base := srv.FlowURL[:strings.Index(srv.FlowURL, "/bot-api/")]
	quickURL := fmt.Sprintf("%s/bot-api/v2.0/customer/%d/bot/%s/flow/quick?wait=true", base, second.CustomerID, second.BotKey)
	var phone atomic.Int64
	seq := func() int64 { return phone.Add(1) }

	// The flood, paused or running.
	var on atomic.Bool
	stop := make(chan struct{})
	var mu sync.Mutex
	var answers []floodAnswer
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *flood}, Timeout: 2 * time.Minute}
	for i := range *flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := srv.FlowURL + "slow_" + []string{"get", "post"}[i%2]
			limit := acceptTimeout
			if i%4 < 2 {
				url += fmt.Sprintf("?wait_ms=%d", *waitMS)
				limit = max(time.Duration(*waitMS)*time.Millisecond, time.Second)
			}
			next := loadgen.Trigger(ctx, url, srv.Bot.APIKey, seq, nil)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !on.Load() {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				req, _ := next()
				t0 := time.Now()
				res, err := client.Do(req)
				if err != nil {
					log.Printf("flood trigger: %v", err)
					continue
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				a := floodAnswer{status: res.StatusCode, took: time.Since(t0), cap: limit}
				if a.status != 200 && a.status != 503 {
					log.Printf("flood trigger: %d %s", a.status, b)
				}
				mu.Lock()
				answers = append(answers, a)
				mu.Unlock()
			}
		}()
	}

	ok := func(b []byte) bool {
		var env struct {
			Obj struct {
				Status string `json:"status"`
			} `json:"responseObject"`
		}
		return json.Unmarshal(b, &env) == nil && env.Obj.Status == "completed"
	}
	quick := loadgen.Trigger(ctx, quickURL, second.APIKey, seq, ok)
	loadgen.Run(ctx, *clients, time.Second, quick) // warm up
	var idle, flooded loadgen.Result
	merge := func(into *loadgen.Result, r loadgen.Result) {
		into.N += r.N
		into.Errors += r.Errors
		into.Elapsed += r.Elapsed
		into.Lat = append(into.Lat, r.Lat...)
	}
	for i := range *rounds {
		on.Store(false)
		merge(&idle, loadgen.Run(ctx, *clients, *round, quick))
		on.Store(true)
		if i == 0 {
			time.Sleep(2 * time.Second) // the flood takes its call slots and queues for more
		}
		merge(&flooded, loadgen.Run(ctx, *clients, *round, quick))
	}
	on.Store(false)
	close(stop)
	wg.Wait()
	slices.Sort(idle.Lat)
	slices.Sort(flooded.Lat)

	fmt.Printf("db=%s flood=%d clients (half wait_ms=%d, half answered at once; GET and POST to a target that never answers, timeout %d s)\n",
		srv.Store().Dialect(), *flood, *waitMS, *timeout)
	fmt.Printf("second customer: %d clients, trivial flow with ?wait=true, %d rounds of %s idle and %s flooded\n", *clients, *rounds, *round, *round)
	fmt.Printf("%-8s %8s %10s %9s %9s %8s\n", "phase", "runs", "runs/s", "p50", "p99", "errors")
	for _, p := range []struct {
		name string
		r    loadgen.Result
	}{{"idle", idle}, {"flooded", flooded}} {
		fmt.Printf("%-8s %8d %10.0f %9s %9s %8d\n", p.name, p.r.N, p.r.PerSecond(), loadgen.Round(p.r.P(50)), loadgen.Round(p.r.P(99)), p.r.Errors)
	}
	fmt.Printf("flooded p99 / idle p99: %.2f×\n", float64(flooded.P(99))/float64(idle.P(99)))
	var accepted, refused, late int
	var worst time.Duration
	for _, a := range answers {
		switch a.status {
		case 200:
			accepted++
		case 503:
			refused++
		}
		if a.took > a.cap+capSlack {
			late++
		}
		worst = max(worst, a.took-a.cap)
	}
	fmt.Printf("flood: %d triggers, %d accepted, %d refused with 503 (nothing started), %d answered past their cap (+%s); the latest answer, against its cap: %+.0f ms; %d calls to the silent target\n",
		len(answers), accepted, refused, late, capSlack, float64(worst.Microseconds())/1000, calls.Load())
	close(release) // the calls in flight end, so the shutdown need not wait for their timeout
	srv.Stop()
}
