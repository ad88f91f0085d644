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
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/bench/internal/loadgen"
	"github.com/parleyhq/parley/internal/app"
	"github.com/parleyhq/parley/internal/auth"
)

// httpFlow is the benchmarked flow; baseFlow is the same without the http node.
const (
	httpFlow = `{"key": "bench_http", "start": "tier", "nodes": [
  {"id": "tier", "type": "decision", "branches": [{"when": {"attribute": "tier", "op": "eq", "value": "vip"}, "next": "order"}], "else": "order"},
  {"id": "order", "type": "http", "name": "Order status", "method": "%s", "url": "%s/orders/{{order_id}}",
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
	method := flag.String("method", "GET", "the http node's method (POST: not repeatable, so committed as pending before the call)")
	oneUser := flag.Bool("one-user", false, "every trigger for the same user (its row is written by every run)")
	instances := flag.Int("instances", 1, "Parley instances in this process on the same database (PostgreSQL), triggered in turn")
	flag.Parse()
	defer loadgen.Profile(*cpuProfile)()

	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/orders/")
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"order": {"id": %q, "status": "shipped", "items": [{"sku": "A1", "qty": 2}]}, "eta_days": 2}`, id)
	}))
	defer target.Close()

	ctx := context.Background()
	srv := loadgen.Start(ctx, app.Config{DB: loadgen.WithAppName(*db), Workers: *workers, HTTPAllow: []string{"127.0.0.1/32"}, HTTPRate: *rate},
		[]string{fmt.Sprintf(httpFlow, *method, target.URL), baseFlow},
		func(s *app.Server, nb auth.NewBot) error {
			return s.Store().SetCustomerHTTPRate(ctx, nb.CustomerID, rate)
		})
	defer srv.Stop()
	urls := []string{srv.FlowURL}
	for range *instances - 1 {
		urls = append(urls, srv.Join(ctx))
	}

	fmt.Printf("db=%s wait=true method=%s one-user=%v instances=%d duration=%s per level and flow, account rate %d/min\n",
		srv.Store().Dialect(), *method, *oneUser, len(urls), *duration, *rate)
	fmt.Printf("%-11s %-12s %8s %12s %9s %9s %9s %8s  %s\n", "concurrency", "flow", "runs", "completed/s", "mean", "p50", "p99", "errors", loadgen.UsageHeader)
	var phone atomic.Int64
	// With one user, every run still writes the user's row: the http node saves an
	// attribute.
	seq := func() int64 {
		if *oneUser {
			return 1
		}
		return phone.Add(1)
	}
	// Every trigger answers when its run has ended, so a trigger counted is a run
	// completed; one whose answer lacks want (the http node's "HTTP 200") is an error.
	completedWith := func(want string) func([]byte) bool {
		return func(b []byte) bool {
			return strings.Contains(string(b), `"status":"completed"`) && strings.Contains(string(b), want)
		}
	}
	for _, c := range loadgen.Levels(*levels) {
		direct := loadgen.Run(ctx, c, *duration/2, func() (*http.Request, func([]byte) bool) {
			req, _ := http.NewRequestWithContext(ctx, "GET", target.URL+"/orders/1", nil)
			req.Header.Set("Authorization", "Bearer bench-token")
			return req, nil
		})
		row(c, "target alone", direct, "")
		var baseRes loadgen.Result
		if *baseline {
			before := loadgen.Sample(ctx, srv)
			baseRes = loadgen.Run(ctx, c, *duration, inTurn(urls, func(u string) loadgen.Next {
				return loadgen.Trigger(ctx, u+"bench_base?wait=true", srv.Bot.APIKey, seq, completedWith(`"outcome":"set"`))
			}))
			row(c, "no http step", baseRes, loadgen.Sample(ctx, srv).Sub(before).PerRun(baseRes.N))
		}
		before := loadgen.Sample(ctx, srv)
		res := loadgen.Run(ctx, c, *duration, inTurn(urls, func(u string) loadgen.Next {
			return loadgen.Trigger(ctx, u+"bench_http?wait=true", srv.Bot.APIKey, seq, completedWith(`"outcome":"HTTP 200"`))
		}))
		row(c, "http step", res, loadgen.Sample(ctx, srv).Sub(before).PerRun(res.N))
		if *baseline {
			// Means add up where percentiles do not: the step's mean cost is the difference
			// of the flows' means, and its overhead that less the target's mean.
			fmt.Printf("%-11d step overhead over the target: mean %s, p50 %s (http step − no http step − target alone)\n", c,
				loadgen.Round(res.Mean()-baseRes.Mean()-direct.Mean()), loadgen.Round(res.P(50)-baseRes.P(50)-direct.P(50)))
		}
	}
}

// inTurn sends the requests to the instances' flow URLs in turn.
func inTurn(urls []string, trigger func(url string) loadgen.Next) loadgen.Next {
	var nexts []loadgen.Next
	for _, u := range urls {
		nexts = append(nexts, trigger(u))
	}
	return loadgen.InTurn(nexts...)
}

func row(c int, name string, r loadgen.Result, usage string) {
	fmt.Printf("%-11d %-12s %8d %12.0f %9s %9s %9s %8d  %s\n", c, name, r.N, r.PerSecond(),
		loadgen.Round(r.Mean()), loadgen.Round(r.P(50)), loadgen.Round(r.P(99)), r.Errors, usage)
}
