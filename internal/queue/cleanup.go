package queue

import (
	"context"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/parleyhq/parley/internal/store"
)

// CleanupArgs is the periodic housekeeping job.
type CleanupArgs struct{}

// Kind names the job.
func (CleanupArgs) Kind() string { return "cleanup" }

// CleanupWorker expires idempotency keys older than their window, console sessions past
// their expiry and HTTP-step rate-limit claims past the limit's window, and forgets
// long-dead instances.
type CleanupWorker struct {
	river.WorkerDefaults[CleanupArgs]
	Store             *store.Store
	IdempotencyWindow time.Duration
	Log               *slog.Logger
}

// Work runs one clean-up.
func (w *CleanupWorker) Work(ctx context.Context, _ *river.Job[CleanupArgs]) error {
	n, err := w.Store.DeleteExpiredIdempotencyKeys(ctx, time.Now().Add(-w.IdempotencyWindow).UnixMilli())
	if err != nil {
		return err
	}
	if n > 0 && w.Log != nil {
		w.Log.Info("expired idempotency keys", "count", n)
	}
	if _, err := w.Store.DeleteExpiredConsoleSessions(ctx, time.Now()); err != nil {
		return err
	}
	// Claims are kept a minute past the window, for clocks a little apart.
	if err := w.Store.DeleteExpiredHTTPClaims(ctx, time.Now().UnixMilli()-2*store.HTTPRateWindow); err != nil {
		return err
	}
	return w.Store.RemoveInstance(ctx, "", time.Now().Add(-24*time.Hour).UnixMilli())
}

// CleanupJob schedules the clean-up every interval, and once at start.
func CleanupJob(interval time.Duration) *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return CleanupArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}
