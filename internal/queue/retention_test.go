package queue_test

import (
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/queue"
)

// TestParseRetention: the accepted forms of --retain (the refused ones are in the CLI's
// tests).
func TestParseRetention(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		in   string
		want queue.Retention
	}{
		{"", queue.Retention{}},
		{"runs=30d,messages=90d,http_logs=7d,broadcasts=30d", queue.Retention{Runs: 30 * day, Messages: 90 * day, HTTPLogs: 7 * day, Broadcasts: 30 * day}},
		{" messages = 36h , ", queue.Retention{Messages: 36 * time.Hour}},
		{"http_logs=1d", queue.Retention{HTTPLogs: day}},
	} {
		got, err := queue.ParseRetention(tc.in)
		if err != nil || got != tc.want {
			t.Fatalf("ParseRetention(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if back, err := queue.ParseRetention(got.String()); err != nil || back != got {
			t.Fatalf("%q written back as %q, read as %+v, %v", tc.in, got.String(), back, err)
		}
		if got.Enabled() != (tc.want != queue.Retention{}) {
			t.Fatalf("ParseRetention(%q).Enabled() = %v", tc.in, got.Enabled())
		}
	}
}
