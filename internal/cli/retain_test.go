package cli_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/cli"
	"github.com/parleyhq/parley/internal/secret"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// seedRetention stores, for a bot, records on either side of a 30-day retention (7 days
// for HTTP logs): old finished ones, which must go, and recent or unfinished ones, which
// must stay. The old runs and the old broadcast's recipients are more than one batch.
func seedRetention(t *testing.T, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	old := now.Add(-40 * 24 * time.Hour).UnixMilli()
	recent := now.Add(-24 * time.Hour).UnixMilli()
	week := now.Add(-10 * 24 * time.Hour).UnixMilli()
	far := now.Add(24 * time.Hour).UnixMilli()
	stmts := []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO customers (id, name, created_at) VALUES (1, 'acme', $1)`, []any{old}},
		{`INSERT INTO bots (id, customer_id, bot_key, name, created_at) VALUES (1, 1, 'bot1', 'bot', $1)`, []any{old}},
		{`INSERT INTO flows (id, bot_id, flow_key, key_lower, current_version, created_at, updated_at) VALUES (1, 1, 'f', 'f', 1, $1, $1)`, []any{old}},
		{`INSERT INTO users (id, bot_id, channel_user_id, channel, created_at, updated_at) VALUES (1, 1, '+1555', 'sandbox', $1, $1)`, []any{old}},
		// 1200 old finished runs (three batches), and one of each kind that stays.
		{`WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 1200)
			INSERT INTO runs (id, bot_id, flow_id, flow_version, user_id, channel, status, created_at, updated_at)
			SELECT 'old-' || n, 1, 1, 1, 1, 'sandbox', CASE WHEN n % 2 = 0 THEN 'completed' ELSE 'failed' END, $1, $1 FROM s`, []any{old}},
		{`INSERT INTO runs (id, bot_id, flow_id, flow_version, user_id, channel, status, created_at, updated_at)
			VALUES ('keep-waiting', 1, 1, 1, 1, 'sandbox', 'waiting', $1, $1), ('keep-recent', 1, 1, 1, 1, 'sandbox', 'completed', $2, $2)`, []any{old, recent}},
		// Messages: old ones go, unless their run still waits; recent ones stay.
		{`INSERT INTO messages (bot_id, user_id, run_id, step, channel, sender, type, text, status, created_at, updated_at) VALUES
			(1, 1, 'old-2', 1, 'sandbox', 'bot', 'text', 'gone: old, run finished', 'sent', $1, $1),
			(1, 1, NULL, NULL, 'sandbox', 'user', 'text', 'gone: old', 'received', $1, $1),
			(1, 1, 'keep-waiting', 1, 'sandbox', 'bot', 'text', 'kept: its run waits', 'sent', $1, $1),
			(1, 1, NULL, NULL, 'sandbox', 'user', 'text', 'kept: recent', 'received', $2, $2)`, []any{old, recent}},
		{`INSERT INTO http_steps (flow_id, node_id, calls) VALUES (1, 'call', 2)`, nil},
		{`INSERT INTO http_step_logs (flow_id, node_id, slot, seq, at, duration_us, method, url, status, detail) VALUES
			(1, 'call', 1, 1, $1, 5, 'GET', 'http://x', 200, '{}'), (1, 'call', 2, 2, $2, 5, 'GET', 'http://x', 200, '{}')`, []any{week, recent}},
		{`INSERT INTO broadcasts (id, bot_id, api_version, content, channels, status, publish_at, recipients, created_at, updated_at, finished_at) VALUES
			(1, 1, 1, '[]', '[]', 'PUBLISHED', $1, 1200, $1, $1, $1),
			(2, 1, 1, '[]', '[]', 'CANCELLED', $2, 1, $2, $2, $2),
			(3, 1, 1, '[]', '[]', 'SCHEDULED', $3, 1, $1, $1, NULL)`, []any{old, recent, far}},
		{`INSERT INTO broadcast_requests (broadcast_id, request) VALUES (1, '{}'), (2, '{}'), (3, '{}')`, nil},
		{`WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 1200)
			INSERT INTO broadcast_recipients (broadcast_id, seq, channel_user_id, status, updated_at) SELECT 1, n, '+1' || n, 'sent', $1 FROM s`, []any{old}},
		{`INSERT INTO broadcast_recipients (broadcast_id, seq, channel_user_id, status, updated_at) VALUES (2, 1, '+1', 'sent', $1), (3, 1, '+1', 'queued', $1)`, []any{recent}},
	}
	for _, s := range stmts {
		if _, err := st.Writer().Exec(ctx, s.sql, s.args...); err != nil {
			t.Fatalf("seed: %v\n%s", err, s.sql)
		}
	}
}

// TestServeRetain: `parley serve --retain` deletes, through its periodic job, old
// finished runs, messages, HTTP-step logs and finished broadcasts (with their
// recipients), and keeps recent records, waiting runs and their messages, and
// broadcasts not yet published.
func TestServeRetain(t *testing.T) {
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			db := e.DSN(t)
			st := storetest.Open(t, db)
			seedRetention(t, st)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var stderr syncBuffer
			exited := make(chan int, 1)
			go func() {
				exited <- cli.Run(ctx, []string{"serve", "--db", db, "--addr", "127.0.0.1:0", "--secret-key", secret.NewKey(),
					"--retain", "runs=30d,messages=30d,http_logs=7d,broadcasts=30d"},
					cli.Env{Stdout: io.Discard, Stderr: &stderr, Getenv: func(string) string { return "" }})
			}()
			count := func(query string) int {
				t.Helper()
				var n int
				if err := st.Reader().QueryRow(context.Background(), query).Scan(&n); err != nil {
					t.Fatalf("%s: %v", query, err)
				}
				return n
			}
			gone := []string{
				`SELECT COUNT(*) FROM runs WHERE id LIKE 'old-%'`,
				`SELECT COUNT(*) FROM messages WHERE text LIKE 'gone:%'`,
				`SELECT COUNT(*) FROM http_step_logs WHERE seq = 1`,
				`SELECT COUNT(*) FROM broadcasts WHERE id = 1`,
				`SELECT COUNT(*) FROM broadcast_recipients WHERE broadcast_id = 1`,
				`SELECT COUNT(*) FROM broadcast_requests WHERE broadcast_id = 1`,
			}
			deadline := time.Now().Add(60 * time.Second)
			for _, q := range gone {
				for count(q) != 0 {
					select {
					case code := <-exited:
						t.Fatalf("serve exited with %d: %s", code, stderr.String())
					default:
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s: %d rows left", q, count(q))
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			for q, want := range map[string]int{
				`SELECT COUNT(*) FROM runs WHERE id IN ('keep-waiting', 'keep-recent')`:  2,
				`SELECT COUNT(*) FROM messages WHERE text LIKE 'kept:%'`:                 2,
				`SELECT COUNT(*) FROM http_step_logs WHERE seq = 2`:                      1,
				`SELECT COUNT(*) FROM broadcasts WHERE id IN (2, 3)`:                     2,
				`SELECT COUNT(*) FROM broadcast_recipients WHERE broadcast_id IN (2, 3)`: 2,
				`SELECT COUNT(*) FROM broadcast_requests WHERE broadcast_id IN (2, 3)`:   2,
				`SELECT calls FROM http_steps`:                                           2,
			} {
				if got := count(q); got != want {
					t.Errorf("%s = %d, want %d", q, got, want)
				}
			}
			cancel()
			if code := <-exited; code != 0 {
				t.Fatalf("serve exited with %d: %s", code, stderr.String())
			}
			if s := stderr.String(); !strings.Contains(s, `"msg":"retention deleted old records","kind":"runs","count":1200`) {
				t.Errorf("no log of the deleted runs in:\n%s", s)
			}
		})
	}
}

// TestServeFlagsInvalid: a bad --retain or --shutdown-grace (or their variables) is a
// usage error.
func TestServeFlagsInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"days without d", []string{"--retain", "runs=30"}, nil, []string{"--retain", "runs"}},
		{"unknown kind", []string{"--retain", "runs=30d,logs=7d"}, nil, []string{"--retain", `"logs=7d"`}},
		{"no duration", []string{"--retain", "runs"}, nil, []string{"--retain", `"runs"`}},
		{"under a day", []string{"--retain", "messages=12h"}, nil, []string{"--retain", "at least 1d"}},
		{"twice", []string{"--retain", "runs=30d,runs=40d"}, nil, []string{"--retain", "twice"}},
		{"negative", []string{"--retain", "broadcasts=-3d"}, nil, []string{"--retain", "broadcasts"}},
		{"retain variable", nil, map[string]string{"PARLEY_RETAIN": "http_logs=xd"}, []string{"--retain", "http_logs"}},
		{"grace not a duration", []string{"--shutdown-grace", "30"}, nil, []string{"--shutdown-grace", `"30"`}},
		{"grace zero", []string{"--shutdown-grace", "0s"}, nil, []string{"--shutdown-grace", "positive"}},
		{"grace variable", nil, map[string]string{"PARLEY_SHUTDOWN_GRACE": "-5s"}, []string{"--shutdown-grace", `"-5s"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--db", storetest.SQLiteDSN(t), "--addr", "127.0.0.1:0"}, tc.args...)
			var stderr bytes.Buffer
			code := cli.Run(context.Background(), args, cli.Env{Stdout: io.Discard, Stderr: &stderr, Getenv: func(k string) string { return tc.env[k] }})
			if code != 2 {
				t.Fatalf("exit %d, stderr %q; want 2", code, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Fatalf("stderr %q does not mention %s", stderr.String(), w)
				}
			}
		})
	}
}

// syncBuffer is a bytes.Buffer a server writes its logs to while the test reads them.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
