// Command trigger is the API-trigger load benchmark: it starts a Parley server in this
// process (SQLite in a temporary directory, or --db postgres://...), installs a 3-node
// flow (decision → message → end) on the sandbox channel, and fires v2 triggers over
// loopback HTTP at increasing concurrency. For each level it prints accepted triggers/s,
// completed runs/s and the p50/p99 trigger latency, with what a run cost: this process's
// CPU, PostgreSQL's CPU, round trips and statements (see BENCHMARKS.md). The load
// generator shares the machine's cores with the server, as the targets require.
//
//	go run ./bench/trigger                      # SQLite, answer at once
//	go run ./bench/trigger -wait                # SQLite, answer when the run ended
//	go run ./bench/trigger -db 'postgres://postgres@127.0.0.1:5432/test?search_path=bench'
//	go run ./bench/trigger -db 'postgres://...' -instances 2   # two instances, one schema
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"runtime/trace"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/bench/internal/loadgen"
	"github.com/parleyhq/parley/internal/app"
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
	instances := flag.Int("instances", 1, "Parley instances in this process on the same database (PostgreSQL), the load split evenly")
	logFile := flag.String("log", "", "write the server's JSON logs (info level, a line per request) to this file; default: none")
	flag.Parse()
	defer loadgen.Profile(*cpuProfile)()
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

	ctx := context.Background()
	cfg := app.Config{DB: loadgen.WithAppName(*db), Workers: *workers}
	if *logFile != "" {
		f, err := os.Create(*logFile)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		cfg.Log = slog.New(slog.NewJSONHandler(f, nil))
	}
	srv := loadgen.Start(ctx, cfg, []string{benchFlow}, nil)
	defer srv.Stop()
	urls := []string{srv.FlowURL}
	for range *instances - 1 {
		urls = append(urls, srv.Join(ctx))
	}
	query := ""
	if *wait {
		query = "?wait=true"
	}

	fmt.Printf("db=%s wait=%v instances=%d duration=%s per level\n", srv.Store().Dialect(), *wait, len(urls), *duration)
	fmt.Printf("%-11s %10s %12s %14s %9s %9s %8s  %s\n", "concurrency", "triggers", "accepted/s", "completed/s", "p50", "p99", "errors", loadgen.UsageHeader)
	var phone atomic.Int64
	accepted := 0
	for _, c := range loadgen.Levels(*levels) {
		before := loadgen.Sample(ctx, srv)
		// Triggers go to the instances in turn.
		var nexts []loadgen.Next
		for _, u := range urls {
			nexts = append(nexts, loadgen.Trigger(ctx, u+"bench"+query, srv.Bot.APIKey, func() int64 { return phone.Add(1) }, nil))
		}
		res := loadgen.Run(ctx, c, *duration, loadgen.InTurn(nexts...))
		// Completed runs/s: from the first trigger until every accepted run has ended.
		accepted += res.N
		for {
			done, err := srv.Store().CountRuns(ctx, "completed")
			if err != nil {
				log.Fatal(err)
			}
			if done >= accepted {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		allDone := time.Since(res.Start)
		use := loadgen.Sample(ctx, srv).Sub(before)
		fmt.Printf("%-11d %10d %12.0f %14.0f %9s %9s %8d  %s\n", c, res.N, res.PerSecond(),
			float64(res.N)/allDone.Seconds(), loadgen.Round(res.P(50)), loadgen.Round(res.P(99)), res.Errors, use.PerRun(res.N))
	}
}
