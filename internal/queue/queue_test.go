package queue_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/parleyhq/parley/internal/queue"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

type pingArgs struct{ N int }

func (pingArgs) Kind() string { return "ping" }

type pingWorker struct {
	river.WorkerDefaults[pingArgs]
	sum *atomic.Int64
}

func (w *pingWorker) Work(_ context.Context, j *river.Job[pingArgs]) error {
	w.sum.Add(int64(j.Args.N))
	return nil
}

func TestQueue(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if err := queue.Migrate(ctx, st); err != nil {
			t.Fatal(err)
		}
		if err := queue.Migrate(ctx, st); err != nil { // idempotent
			t.Fatal(err)
		}
		var sum atomic.Int64
		workers := river.NewWorkers()
		river.AddWorker(workers, &pingWorker{sum: &sum})
		river.AddWorker(workers, &queue.CleanupWorker{Store: st, IdempotencyWindow: time.Hour})
		// An idempotency key from two hours ago is expired; a fresh one is kept.
		old := time.Now().Add(-2 * time.Hour).UnixMilli()
		if _, _, err := st.ClaimIdempotencyKey(ctx, st.Writer(), 1, "old", "run-old", old, old-1); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UnixMilli()
		if _, _, err := st.ClaimIdempotencyKey(ctx, st.Writer(), 1, "new", "run-new", now, now-1); err != nil {
			t.Fatal(err)
		}
		q, err := queue.New(st, queue.Config{Workers: workers, Periodic: []*river.PeriodicJob{queue.CleanupJob(time.Hour)}})
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer q.Stop(context.Background())

		// A job enqueued in a transaction that rolls back never runs; one that commits does.
		rollback := errors.New("roll back")
		err = st.InTx(ctx, func(tx store.Tx) error {
			if err := q.InsertTx(ctx, tx, pingArgs{N: 100}, nil); err != nil {
				return err
			}
			return rollback
		})
		if !errors.Is(err, rollback) {
			t.Fatal(err)
		}
		if err := st.InTx(ctx, func(tx store.Tx) error { return q.InsertTx(ctx, tx, pingArgs{N: 1}, nil) }); err != nil {
			t.Fatal(err)
		}
		if err := q.Insert(ctx, pingArgs{N: 10}, nil); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for sum.Load() != 11 {
			if time.Now().After(deadline) {
				t.Fatalf("sum of worked jobs = %d, want 11 (the rolled-back job must not run)", sum.Load())
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The periodic clean-up ran at start.
		for {
			_, claimed, err := st.ClaimIdempotencyKey(ctx, st.Writer(), 1, "old", "run-x", now, now-int64(time.Hour/time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			if claimed {
				break // the old key was deleted (or expired) and could be claimed again
			}
			if time.Now().After(deadline) {
				t.Fatal("the clean-up job did not remove the expired key")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, claimed, _ := st.ClaimIdempotencyKey(ctx, st.Writer(), 1, "new", "run-y", now, now-int64(time.Hour/time.Millisecond)); claimed {
			t.Fatal("a fresh key was lost")
		}
	})
}

type blockArgs struct{}

func (blockArgs) Kind() string { return "block" }

// blockWorker works until its context is cancelled.
type blockWorker struct {
	river.WorkerDefaults[blockArgs]
	started, cancelled chan struct{}
}

func (w *blockWorker) Work(ctx context.Context, _ *river.Job[blockArgs]) error {
	close(w.started)
	<-ctx.Done()
	close(w.cancelled)
	return ctx.Err()
}

// TestQueueStopCancels: a job still running when Stop's time is nearly up is cancelled,
// and Stop returns without an error once it has ended.
func TestQueueStopCancels(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if err := queue.Migrate(ctx, st); err != nil {
			t.Fatal(err)
		}
		w := &blockWorker{started: make(chan struct{}), cancelled: make(chan struct{})}
		workers := river.NewWorkers()
		river.AddWorker(workers, w)
		q, err := queue.New(st, queue.Config{Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := q.Insert(ctx, blockArgs{}, nil); err != nil {
			t.Fatal(err)
		}
		select {
		case <-w.started:
		case <-time.After(30 * time.Second):
			t.Fatal("the job did not start")
		}
		stopCtx, cancel := context.WithTimeout(ctx, 4*time.Second)
		defer cancel()
		if err := q.Stop(stopCtx); err != nil {
			t.Fatalf("stop: %v", err)
		}
		select {
		case <-w.cancelled:
		default:
			t.Fatal("stop returned, the job was not cancelled")
		}
	})
}
