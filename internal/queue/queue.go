// Package queue runs durable background jobs (delayed, scheduled, retried, periodic) on
// River, over whichever database the store uses. River's clients are typed by the
// engine's transaction (*sql.Tx on SQLite, pgx.Tx on PostgreSQL); this package hides
// that behind one Queue so callers enqueue inside a store.Tx either way.
//
// Runs themselves do not go through here: the runs table is their queue (see package
// engine), which measured an order of magnitude faster than a River job per run.
package queue

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/parleyhq/parley/internal/store"
)

// Queue is a started River client for the store's database.
type Queue struct {
	start    func(context.Context) error
	stop     func(context.Context) error
	cancel   func(context.Context) error // stop, cancelling the jobs in progress
	insert   func(context.Context, river.JobArgs, *river.InsertOpts) error
	insertTx func(context.Context, store.Tx, river.JobArgs, *river.InsertOpts) error
}

// Config says what the queue runs.
type Config struct {
	Workers  *river.Workers
	Periodic []*river.PeriodicJob
	// MaxWorkers is how many jobs run at once (default 10).
	MaxWorkers int
	Log        *slog.Logger
}

// riverAdvisoryLock serialises River's migrations between instances starting together.
const riverAdvisoryLock = 0x7061726c6579 // "parley"

// Migrate brings River's own tables up to date.
func Migrate(ctx context.Context, st *store.Store) error {
	if st.Dialect() == store.SQLite {
		m, err := rivermigrate.New(riversqlite.New(st.SQLiteWriter()), nil)
		if err != nil {
			return fmt.Errorf("river migrations: %w", err)
		}
		if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
			return fmt.Errorf("river migrate: %w", err)
		}
		return nil
	}
	pool := st.PgxPool()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("river migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", riverAdvisoryLock); err != nil {
		return fmt.Errorf("river migrate lock: %w", err)
	}
	defer func() { _, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", riverAdvisoryLock) }()
	m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrate: %w", err)
	}
	return nil
}

// New builds a queue client; Start begins working jobs. Call Migrate first.
func New(st *store.Store, cfg Config) (*Queue, error) {
	if cfg.MaxWorkers <= 0 {
		cfg.MaxWorkers = 10
	}
	if cfg.Workers == nil {
		cfg.Workers = river.NewWorkers()
	}
	if cfg.Log != nil {
		cfg.Log = slog.New(cancelledAsInfo{cfg.Log.Handler()})
	}
	rc := &river.Config{
		Queues:       map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.MaxWorkers}},
		Workers:      cfg.Workers,
		PeriodicJobs: cfg.Periodic,
		Logger:       cfg.Log,
		JobTimeout:   2 * time.Minute,
	}
	if st.Dialect() == store.SQLite {
		// The writer pool has one connection, shared with the store: River's writes queue
		// behind ours instead of failing with SQLITE_BUSY.
		c, err := river.NewClient(riversqlite.New(st.SQLiteWriter()), rc)
		if err != nil {
			return nil, fmt.Errorf("river client: %w", err)
		}
		return wrap(c, func(tx store.Tx) *sql.Tx { return tx.Driver().(*sql.Tx) }), nil
	}
	c, err := river.NewClient(riverpgxv5.New(st.PgxPool()), rc)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return wrap(c, func(tx store.Tx) pgx.Tx { return tx.Driver().(pgx.Tx) }), nil
}

// wrap adapts a River client typed by its engine's transaction to Queue.
func wrap[TTx any](c *river.Client[TTx], engineTx func(store.Tx) TTx) *Queue {
	return &Queue{
		start: c.Start, stop: c.Stop, cancel: c.StopAndCancel,
		insert: func(ctx context.Context, a river.JobArgs, o *river.InsertOpts) error {
			_, err := c.Insert(ctx, a, o)
			return err
		},
		insertTx: func(ctx context.Context, tx store.Tx, a river.JobArgs, o *river.InsertOpts) error {
			_, err := c.InsertTx(ctx, engineTx(tx), a, o)
			return err
		},
	}
}

// Start begins working jobs.
func (q *Queue) Start(ctx context.Context) error { return q.start(ctx) }

// Stop waits for running jobs to finish, for three quarters of the time ctx leaves;
// jobs still running then are cancelled (a cancelled job is retried later: the
// retention picks up where it stopped), and waited for until ctx ends.
func (q *Queue) Stop(ctx context.Context) error {
	soft := ctx
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		soft, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(deadline)*3/4))
		defer cancel()
	}
	err := q.stop(soft)
	if err == nil || ctx.Err() != nil {
		return err
	}
	return q.cancel(ctx)
}

// Insert enqueues a job on its own.
func (q *Queue) Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) error {
	if err := q.insert(ctx, args, opts); err != nil {
		return fmt.Errorf("enqueue %s: %w", args.Kind(), err)
	}
	return nil
}

// InsertTx enqueues a job inside tx: it exists if and only if tx commits.
func (q *Queue) InsertTx(ctx context.Context, tx store.Tx, args river.JobArgs, opts *river.InsertOpts) error {
	if err := q.insertTx(ctx, tx, args, opts); err != nil {
		return fmt.Errorf("enqueue %s: %w", args.Kind(), err)
	}
	return nil
}
