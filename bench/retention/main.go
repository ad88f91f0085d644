// Command retention measures the retention deletes: it seeds a database (SQLite in a
// temporary directory, or -db postgres://...) with -rows old finished runs and -rows old
// messages, and as many recent ones of each (which stay), then deletes the old ones in the retention job's batches and prints, per kind, the
// rows deleted per second and how long one batch (one write transaction, which is what
// a writer may have to wait for) took at p50, p99 and most.
//
//	go run ./bench/retention
//	go run ./bench/retention -db 'postgres://postgres@127.0.0.1:5432/test?search_path=bench'
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/parleyhq/parley/internal/queue"
	"github.com/parleyhq/parley/internal/store"
)

func main() {
	db := flag.String("db", "", "database (default: a fresh SQLite file in a temporary directory)")
	rows := flag.Int("rows", 100_000, "old runs, and old messages, to delete")
	batch := flag.Int("batch", queue.RetentionBatch, "rows per batch")
	flag.Parse()
	ctx := context.Background()
	dsn := *db
	if dsn == "" {
		dir, err := os.MkdirTemp("", "parley-bench-retention")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(dir)
		dsn = filepath.Join(dir, "parley.db")
	}
	st, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	old := time.Now().Add(-100 * 24 * time.Hour).UnixMilli()
	for _, q := range []string{
		`INSERT INTO customers (id, name, created_at) VALUES (1, 'bench', $1)`,
		`INSERT INTO bots (id, customer_id, bot_key, name, created_at) VALUES (1, 1, 'bench', 'bench', $1)`,
		`INSERT INTO flows (id, bot_id, flow_key, key_lower, current_version, created_at, updated_at) VALUES (1, 1, 'f', 'f', 1, $1, $1)`,
		`INSERT INTO users (id, bot_id, channel_user_id, channel, created_at, updated_at) VALUES (1, 1, '+1555', 'sandbox', $1, $1)`,
		`WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < CAST($2 AS INTEGER))
			INSERT INTO runs (id, bot_id, flow_id, flow_version, user_id, channel, status, state, created_at, updated_at)
			SELECT 'run-' || n, 1, 1, 1, 1, 'sandbox', 'completed', '{"attrs": {"name": "a user"}}', $1, $1 FROM s`,
		`WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < CAST($2 AS INTEGER))
			INSERT INTO messages (bot_id, user_id, run_id, step, channel, sender, type, text, status, created_at, updated_at)
			SELECT 1, 1, 'run-' || n, 1, 'sandbox', 'bot', 'text', 'a message of a typical length, sent by a flow', 'sent', $1, $1 FROM s`,
	} {
		args := []any{old}
		if strings.Contains(q, "$2") {
			args = append(args, *rows)
		}
		if _, err := st.Writer().Exec(ctx, q, args...); err != nil {
			log.Fatalf("seed: %v", err)
		}
	}
	// The recent ones, inserted after the old as they would have been.
	recent := time.Now().UnixMilli()
	for _, q := range []string{
		`WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < CAST($2 AS INTEGER))
			INSERT INTO runs (id, bot_id, flow_id, flow_version, user_id, channel, status, state, created_at, updated_at)
			SELECT 'new-' || n, 1, 1, 1, 1, 'sandbox', 'completed', '{"attrs": {"name": "a user"}}', $1, $1 FROM s`,
		`WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < CAST($2 AS INTEGER))
			INSERT INTO messages (bot_id, user_id, run_id, step, channel, sender, type, text, status, created_at, updated_at)
			SELECT 1, 1, 'new-' || n, 1, 'sandbox', 'bot', 'text', 'a message of a typical length, sent by a flow', 'sent', $1, $1 FROM s`,
	} {
		if _, err := st.Writer().Exec(ctx, q, recent, *rows); err != nil {
			log.Fatalf("seed: %v", err)
		}
	}
	fmt.Printf("db=%s rows=%d batch=%d\n", st.Dialect(), *rows, *batch)
	fmt.Printf("%-9s %8s %10s %8s %8s %8s %10s\n", "kind", "rows", "rows/s", "p50", "p99", "max", "last (0)")
	for _, k := range []struct {
		name string
		del  func(context.Context, int64, int) (int64, error)
	}{{"messages", st.DeleteOldMessages}, {"runs", st.DeleteFinishedRuns}} {
		var took []time.Duration
		var total int64
		start := time.Now()
		for {
			t0 := time.Now()
			n, err := k.del(ctx, time.Now().Add(-24*time.Hour).UnixMilli(), *batch)
			if err != nil {
				log.Fatal(err)
			}
			took = append(took, time.Since(t0))
			total += n
			if n == 0 {
				break
			}
		}
		elapsed := time.Since(start)
		last := took[len(took)-1] // the batch that found nothing left: a scan of the recent rows
		slices.Sort(took)
		fmt.Printf("%-9s %8d %10.0f %8s %8s %8s %10s\n", k.name, total, float64(total)/elapsed.Seconds(),
			took[len(took)/2].Round(10*time.Microsecond), took[len(took)*99/100].Round(10*time.Microsecond), took[len(took)-1].Round(10*time.Microsecond), last.Round(10*time.Microsecond))
	}
}
