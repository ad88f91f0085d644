// Command httpstep is the HTTP-step load benchmark: it starts a Parley server in this
// process (SQLite in a temporary directory, or --db postgres://...) and a local JSON
// target (an httptest server), installs a flow decision → http (GET the target, save a
// leaf) → end, raises the account's rate limit out of the way, and fires v2 triggers with
// ?wait=true over loopback HTTP at each concurrency level. For each level it prints
// completed runs/s and the p50/p99 trigger latency, beside the same flow without the
// http node and the target's own latency (direct GETs at the same concurrency), so the
// step's overhead over the target can be read off. The load generator and the target
// share the machine's cores with the server, as the targets require.
//
//	go run ./bench/httpstep                     # SQLite, 16 clients
//	go run ./bench/httpstep -concurrency 1,16,64
//	go run ./bench/httpstep -db postgres://postgres@127.0.0.1:5432/test?search_path=bench
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
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

// httpFlow is the benchmarked flow; baseFlow is the same without the http node.
const (
	httpFlow = `{"key": "bench_http", "start": "tier", "nodes": [
  {"id": "tier", "type": "decision", "branches": [{"when": {"attribute": "tier", "op": "eq", "value": "vip"}, "next": "order"}], "else": "order"},
  {"id": "order", "type": "http", "name": "Order status", "method": "GET", "url": "%s/orders/{{order_id}}",
   "headers": {"Authorization": "Bearer bench-token"}, "save": {"order_status": "order.status"}, "timeout_seconds": 10, "next": "done"},
  {"id": "done", "type": "end"}]}`
	baseFlow = `{"key": "bench_base", "start": "tier", "nodes": [
  {"id": "tier", "type": "decision", "branches": [{"when": {"attribute": "tier", "op": "eq", "value": "vip"}, "next": "set"}], "else": "set"},
  {"id": "set", "type": "set", "set": {"order_status": "shipped"}, "next": "done"},
  {"id": "done", "type": "end"}]}`
)

func main() {
	db := flag.String("db", "", "database (default: a fresh SQLite file in a temporary directory)")
	levels := flag.String("concurrency", "16", "client concurrency levels, comma-separated")
	duration := flag.Duration("duration", 5*time.Second, "load time per level and flow")
	workers := flag.Int("workers", 0, "engine workers (0: the server default)")
	rate := flag.Int("rate", 100_000_000, "the account's HTTP-step calls per minute (raised out of the way)")
	baseline := flag.Bool("baseline", true, "also load the flow without the http node, for the step's overhead")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
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

	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/orders/")
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"order": {"id": %q, "status": "shipped", "items": [{"sku": "A1", "qty": 2}]}, "eta_days": 2}`, id)
	}))
	defer target.Close()

	app.TuneGC() // as `parley serve` does
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	srv, err := app.Open(ctx, app.Config{Addr: "127.0.0.1:0", DB: *db, Workers: *workers, Ready: ready,
		HTTPAllow: []string{"127.0.0.1/32"}, HTTPRate: *rate})
	if err != nil {
		log.Fatal(err)
	}
	nb, err := auth.New(srv.Store(), 0).CreateBot(ctx, fmt.Sprintf("bench-%d", time.Now().UnixNano()), "bench")
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Store().SetCustomerHTTPRate(ctx, nb.CustomerID, rate); err != nil {
		log.Fatal(err)
	}
	b, err := srv.Store().Bot(ctx, nb.CustomerID, nb.BotKey)
	if err != nil {
		log.Fatal(err)
	}
	for _, doc := range []string{fmt.Sprintf(httpFlow, target.URL), baseFlow} {
		if _, err := catalog.Import(ctx, srv.Store(), b.ID, []byte(doc)); err != nil {
			log.Fatal(err)
		}
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	base := fmt.Sprintf("http://%s/bot-api/v2.0/customer/%d/bot/%s/flow/", <-ready, nb.CustomerID, nb.BotKey)

	fmt.Printf("db=%s wait=true duration=%s per level and flow, account rate %d/min\n", srv.Store().Dialect(), *duration, *rate)
	fmt.Printf("%-11s %-12s %8s %12s %9s %9s %9s %8s\n", "concurrency", "flow", "runs", "completed/s", "mean", "p50", "p99", "errors")
	var phone atomic.Int64
	for _, s := range strings.Split(*levels, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 {
			log.Fatalf("bad concurrency %q", s)
		}
		direct := load(ctx, c, *duration/2, func(int64) (*http.Request, func([]byte) bool) {
			req, _ := http.NewRequestWithContext(ctx, "GET", target.URL+"/orders/1", nil)
			req.Header.Set("Authorization", "Bearer bench-token")
			return req, func([]byte) bool { return true }
		})
		row(c, "target alone", direct)
		var baseRes result
		if *baseline {
			baseRes = triggers(ctx, base+"bench_base?wait=true", nb.APIKey, c, *duration, &phone, `"outcome":"set"`)
			row(c, "no http step", baseRes)
		}
		res := triggers(ctx, base+"bench_http?wait=true", nb.APIKey, c, *duration, &phone, `"outcome":"HTTP 200"`)
		row(c, "http step", res)
		if *baseline {
			// Means add up where percentiles do not: the step's mean cost is the difference
			// of the flows' means, and its overhead that less the target's mean.
			fmt.Printf("%-11d step overhead over the target: mean %s, p50 %s (http step − no http step − target alone)\n", c,
				(res.mean() - baseRes.mean() - direct.mean()).Round(10*time.Microsecond),
				(res.p(50) - baseRes.p(50) - direct.p(50)).Round(10*time.Microsecond))
		}
	}
	cancel()
	if err := <-served; err != nil {
		log.Print(err)
	}
	srv.Close()
}

func row(c int, name string, r result) {
	fmt.Printf("%-11d %-12s %8d %12.0f %9s %9s %9s %8d\n", c, name, r.n, float64(r.n)/r.elapsed.Seconds(),
		r.mean().Round(10*time.Microsecond), r.p(50).Round(10*time.Microsecond), r.p(99).Round(10*time.Microsecond), r.errors)
}

// triggers loads one flow: every trigger answers when its run has ended, so a trigger
// counted is a run completed. A run whose answer lacks want (the http node's "HTTP 200",
// say) counts as an error.
func triggers(ctx context.Context, url, key string, c int, d time.Duration, phone *atomic.Int64, want string) result {
	return load(ctx, c, d, func(n int64) (*http.Request, func([]byte) bool) {
		n = phone.Add(1)
		body := fmt.Sprintf(`{"user.channel": "whatsapp", "user.phone_no": "91%010d", "tier": "vip", "order_id": "%d"}`, 7000000000+n, n)
		req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
		req.Header.Set("Authorization", "Basic "+key)
		req.Header.Set("Content-Type", "application/json")
		return req, func(b []byte) bool {
			return strings.Contains(string(b), `"status":"completed"`) && strings.Contains(string(b), want)
		}
	})
}

type result struct {
	n, errors int
	elapsed   time.Duration
	lat       []time.Duration
	firstErr  string
}

func (r result) mean() time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	var sum time.Duration
	for _, l := range r.lat {
		sum += l
	}
	return sum / time.Duration(len(r.lat))
}

func (r result) p(q int) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[(len(r.lat)-1)*q/100]
}

// load runs c clients back to back for d; next makes each request and the check of its
// answer.
func load(ctx context.Context, c int, d time.Duration, next func(int64) (*http.Request, func([]byte) bool)) result {
	tr := &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	var mu sync.Mutex
	var res result
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			errs, firstErr := 0, ""
			for i := int64(0); time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				req, ok := next(i)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs++
					firstErr = err.Error()
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !ok(b) {
					errs++
					firstErr = fmt.Sprintf("%d %s", resp.StatusCode, b)
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errors += errs
			if firstErr != "" && res.firstErr == "" {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.n = len(res.lat)
	slices.Sort(res.lat)
	if res.firstErr != "" {
		if len(res.firstErr) > 300 {
			res.firstErr = res.firstErr[:300]
		}
		log.Printf("first error: %s", res.firstErr)
	}
	return res
}
