// Command trigger is the API-trigger load benchmark: it starts a Parley server in this
// process (SQLite in a temporary directory, or --db postgres://...), installs a 3-node
// flow (decision → message → end) on the sandbox channel, and fires v2 triggers over
// loopback HTTP at increasing concurrency. For each level it prints accepted triggers/s,
// completed runs/s and the p50/p99 trigger latency. The load generator shares the
// machine's cores with the server, as the targets require.
//
//	go run ./bench/trigger                      # SQLite, answer at once
//	go run ./bench/trigger -wait                # SQLite, answer when the run ended
//	go run ./bench/trigger -db postgres://postgres@127.0.0.1:5432/test?search_path=bench
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/internal/app"
	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/catalog"
)

const benchFlow = `{"key": "bench", "start": "tier", "nodes": [
  {"id": "tier", "type": "decision", "branches": [{"when": {"attribute": "tier", "op": "eq", "value": "vip"}, "next": "msg"}], "else": "msg"},
  {"id": "msg", "type": "message", "text": "Hi {{user.user_name}}, order {{order_id}} is on its way", "next": "done"},
  {"id": "done", "type": "end"}]}`

func main() {
	db := flag.String("db", "", "database (default: a fresh SQLite file in a temporary directory)")
	levels := flag.String("concurrency", "1,4,16,64", "client concurrency levels, comma-separated")
	duration := flag.Duration("duration", 5*time.Second, "load time per level")
	wait := flag.Bool("wait", false, "trigger with ?wait=true (the answer comes when the run ended)")
	workers := flag.Int("workers", 0, "engine workers (0: the server default)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	traceFile := flag.String("trace", "", "write an execution trace of the whole run to this file")
	flag.Parse()
	if *traceFile != "" {
		f, err := os.Create(*traceFile)
		if err != nil {
			log.Fatal(err)
		}
		if err := trace.Start(f); err != nil {
			log.Fatal(err)
		}
		defer trace.Stop()
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}

	if *db == "" {
		dir, err := os.MkdirTemp("", "parley-bench")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(dir)
		*db = filepath.Join(dir, "bench.db")
	}
	app.TuneGC() // as `parley serve` does
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	srv, err := app.Open(ctx, app.Config{Addr: "127.0.0.1:0", DB: *db, Workers: *workers, Ready: ready})
	if err != nil {
		log.Fatal(err)
	}
	nb, err := auth.New(srv.Store(), 0).CreateBot(ctx, fmt.Sprintf("bench-%d", time.Now().UnixNano()), "bench")
	if err != nil {
		log.Fatal(err)
	}
	b, err := srv.Store().Bot(ctx, nb.CustomerID, nb.BotKey)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := catalog.Import(ctx, srv.Store(), b.ID, []byte(benchFlow)); err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	base := "http://" + <-ready
	url := fmt.Sprintf("%s/bot-api/v2.0/customer/%d/bot/%s/flow/bench", base, nb.CustomerID, nb.BotKey)
	if *wait {
		url += "?wait=true"
	}

	fmt.Printf("db=%s wait=%v duration=%s per level\n", srv.Store().Dialect(), *wait, *duration)
	fmt.Printf("%-11s %10s %12s %14s %9s %9s %8s\n", "concurrency", "triggers", "accepted/s", "completed/s", "p50", "p99", "errors")
	var phone atomic.Int64
	for _, s := range strings.Split(*levels, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 {
			log.Fatalf("bad concurrency %q", s)
		}
		res := load(ctx, url, nb.APIKey, c, *duration, &phone)
		// Completed runs/s: from the first trigger until every accepted run has ended.
		for {
			done, err := srv.Store().CountRuns(ctx, "completed")
			if err != nil {
				log.Fatal(err)
			}
			if done >= int(phone.Load()) {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		allDone := time.Since(res.start)
		fmt.Printf("%-11d %10d %12.0f %14.0f %9s %9s %8d\n", c, res.n, float64(res.n)/res.elapsed.Seconds(),
			float64(res.n)/allDone.Seconds(), res.p(50).Round(10*time.Microsecond), res.p(99).Round(10*time.Microsecond), res.errors)
	}
	cancel()
	if err := <-served; err != nil {
		log.Print(err)
	}
	srv.Close()
}

type result struct {
	n, errors int
	start     time.Time
	elapsed   time.Duration
	lat       []time.Duration
}

func (r result) p(q int) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[(len(r.lat)-1)*q/100]
}

// load runs c clients back to back for d and collects latencies.
func load(ctx context.Context, url, key string, c int, d time.Duration, phone *atomic.Int64) result {
	tr := &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	var mu sync.Mutex
	res := result{start: time.Now()}
	deadline := res.start.Add(d)
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			errs := 0
			for time.Now().Before(deadline) {
				n := phone.Add(1)
				body := fmt.Sprintf(`{"user.channel": "whatsapp", "user.phone_no": "91%010d", "tier": "vip", "order_id": "%d"}`, 7000000000+n, n)
				req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
				req.Header.Set("Authorization", "Basic "+key)
				req.Header.Set("Content-Type", "application/json")
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs++
					phone.Add(-1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs++
					phone.Add(-1)
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errors += errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(res.start)
	res.n = len(res.lat)
	slices.Sort(res.lat)
	return res
}
