package queue

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/parleyhq/parley/internal/store"
)

// Retention says how long each kind of record is kept; zero keeps it for ever.
type Retention struct {
	Runs       time.Duration
	Messages   time.Duration
	HTTPLogs   time.Duration
	Broadcasts time.Duration
}

// MinRetention is the shortest retention accepted: runs must outlive their 24-hour
// idempotency keys, and shorter ones are more likely a typo than a policy.
const MinRetention = 24 * time.Hour

// retentionKinds names the kinds in --retain, in the order they are cleaned.
var retentionKinds = []string{"runs", "messages", "http_logs", "broadcasts"}

func (r *Retention) field(kind string) *time.Duration {
	switch kind {
	case "runs":
		return &r.Runs
	case "messages":
		return &r.Messages
	case "http_logs":
		return &r.HTTPLogs
	case "broadcasts":
		return &r.Broadcasts
	}
	return nil
}

// Enabled reports whether anything is ever deleted.
func (r Retention) Enabled() bool {
	return r.Runs > 0 || r.Messages > 0 || r.HTTPLogs > 0 || r.Broadcasts > 0
}

// ParseRetention reads "runs=30d,messages=90d,http_logs=7d,broadcasts=30d": any of the
// kinds, each with a number of days ("30d") or a Go duration ("36h"), at least a day.
// An empty string keeps everything.
func ParseRetention(s string) (Retention, error) {
	var r Retention
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		kind, val, ok := strings.Cut(part, "=")
		kind = strings.TrimSpace(kind)
		f := r.field(kind)
		if !ok || f == nil {
			return Retention{}, fmt.Errorf("%q: want kind=duration with kind one of %s", part, strings.Join(retentionKinds, ", "))
		}
		if seen[kind] {
			return Retention{}, fmt.Errorf("%s given twice", kind)
		}
		seen[kind] = true
		d, err := parseDays(strings.TrimSpace(val))
		if err != nil {
			return Retention{}, fmt.Errorf("%s: %w", kind, err)
		}
		if d < MinRetention {
			return Retention{}, fmt.Errorf("%s=%s: keep at least 1d", kind, val)
		}
		*f = d
	}
	return r, nil
}

// parseDays reads "30d" as 30 days, anything else as a Go duration.
func parseDays(v string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 100*365 {
			return 0, fmt.Errorf("%q: want a number of days such as 30d, or a duration such as 36h", v)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q: want a number of days such as 30d, or a duration such as 36h", v)
	}
	return d, nil
}

// String writes r back in --retain's syntax, kinds kept for ever left out.
func (r Retention) String() string {
	var parts []string
	for _, k := range retentionKinds {
		d := *r.field(k)
		switch {
		case d == 0:
		case d%(24*time.Hour) == 0:
			parts = append(parts, fmt.Sprintf("%s=%dd", k, d/(24*time.Hour)))
		default:
			parts = append(parts, k+"="+d.String())
		}
	}
	return strings.Join(parts, ",")
}

// RetentionArgs is the periodic job that deletes records past their retention.
type RetentionArgs struct{}

// Kind names the job.
func (RetentionArgs) Kind() string { return "retention" }

// Retention batching: small batches keep each write transaction short, and the pause
// between them lets the engine's writers in (SQLite has a single writer).
const (
	RetentionBatch = 500
	RetentionPause = 50 * time.Millisecond
)

// RetentionWorker deletes finished runs, messages, HTTP-step logs and finished
// broadcasts older than their retention, in batches of Batch rows with Pause between.
type RetentionWorker struct {
	river.WorkerDefaults[RetentionArgs]
	Store  *store.Store
	Retain Retention
	Batch  int           // RetentionBatch when not positive
	Pause  time.Duration // RetentionPause when zero
	Log    *slog.Logger
}

// Timeout lets a large backlog take longer than the queue's usual job timeout; what is
// left when it ends is deleted by the next run.
func (w *RetentionWorker) Timeout(*river.Job[RetentionArgs]) time.Duration { return 30 * time.Minute }

// Work runs one pass over every kind with a retention.
func (w *RetentionWorker) Work(ctx context.Context, _ *river.Job[RetentionArgs]) error {
	batch, pause := w.Batch, w.Pause
	if batch <= 0 {
		batch = RetentionBatch
	}
	if pause == 0 {
		pause = RetentionPause
	}
	now := time.Now()
	deletes := map[string]func(context.Context, int64, int) (int64, error){
		"runs": w.Store.DeleteFinishedRuns, "messages": w.Store.DeleteOldMessages,
		"http_logs": w.Store.DeleteOldHTTPStepLogs, "broadcasts": w.Store.DeleteOldBroadcasts,
	}
	for _, kind := range retentionKinds {
		keep := *w.Retain.field(kind)
		if keep <= 0 {
			continue
		}
		before := now.Add(-keep).UnixMilli()
		var total int64
		for {
			n, err := deletes[kind](ctx, before, batch)
			if err != nil {
				return err
			}
			total += n
			if n == 0 {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(pause):
			}
		}
		if total > 0 && w.Log != nil {
			w.Log.Info("retention deleted old records", "kind", kind, "count", total)
		}
	}
	return nil
}

// RetentionJob schedules the retention pass every interval, and once at start. River
// runs periodic jobs on its elected leader only, so several instances do not repeat it.
func RetentionJob(interval time.Duration) *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return RetentionArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}
