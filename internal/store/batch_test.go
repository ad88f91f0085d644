package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// TestBatcherOutlivesTheCaller holds Do to its documented contract: a caller whose context
// has ended still gets its operation committed and learns that it was, because the
// transaction is shared with other callers.
func TestBatcherOutlivesTheCaller(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		c, _, err := st.EnsureCustomer(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		b, err := st.CreateBot(ctx, c.ID, "0123456789abcdef", "demo")
		if err != nil {
			t.Fatal(err)
		}
		batch := st.NewBatcher(0, 0)
		defer batch.Close()

		gone, cancel := context.WithCancel(ctx)
		cancel()
		err = batch.Do(gone, func(ctx context.Context, tx store.Tx) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			_, err := st.UpsertUser(ctx, tx, store.UserUpsert{BotID: b.ID, ChannelUserID: "919876543210", Channel: "whatsapp",
				Attrs: map[string]string{"order": "42"}})
			return err
		})
		if err != nil {
			t.Fatalf("Do with an ended context = %v; want the operation committed", err)
		}
		u, err := st.UserByChannelID(ctx, b.ID, "919876543210")
		if err != nil || u.Attrs["order"] != "42" {
			t.Fatalf("user after Do = %+v, %v; want it stored", u, err)
		}
	})
}

// TestBatcherBulkYields floods the bulk lane, then submits one interactive operation: it
// commits ahead of the queued bulk work, behind at most two transactions' share of it.
// On PostgreSQL the bulk writer commits on while the interactive one does, so the count
// says nothing there (one run in ten saw 9–11); TestBatcherBulkHasItsOwnWriter covers it.
func TestBatcherBulkYields(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		if st.Dialect() == store.Postgres {
			t.Skip("on PostgreSQL the bulk lane has a writer of its own")
		}
		ctx := context.Background()
		b := st.NewBatcher(1, 32) // one writer; at most 2 bulk operations a transaction
		defer b.Close()
		var committed atomic.Int64
		var wg sync.WaitGroup
		const bulk = 60
		for range bulk {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := b.DoBulk(ctx, func(ctx context.Context, tx store.Tx) error {
					time.Sleep(2 * time.Millisecond) // a chunk of rows
					return nil
				})
				if err != nil {
					t.Error(err)
				}
				committed.Add(1)
			}()
		}
		for committed.Load() == 0 {
			time.Sleep(time.Millisecond) // the bulk lane is busy
		}
		if err := b.Do(ctx, func(ctx context.Context, tx store.Tx) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if n := committed.Load(); n > 8 {
			t.Fatalf("the interactive operation waited for %d of %d bulk operations", n, bulk)
		}
		wg.Wait()
		if n := committed.Load(); n != bulk {
			t.Fatalf("%d of %d bulk operations committed", n, bulk)
		}
	})
}

// TestBatcherBulkTransactionCommitsEarly starts a transaction of several bulk operations,
// then submits an interactive one while the first bulk operation runs: the transaction
// commits after that operation instead of running the others first. This is SQLite's
// writer, shared by both lanes; on PostgreSQL bulk work has a writer of its own
// (TestBatcherBulkHasItsOwnWriter).
func TestBatcherBulkTransactionCommitsEarly(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		if st.Dialect() == store.Postgres {
			t.Skip("on PostgreSQL the bulk lane has a writer of its own")
		}
		ctx := context.Background()
		b := st.NewBatcher(1, 128) // at most 8 bulk operations a transaction
		defer b.Close()
		// Hold the writer so that the bulk operations queue up and share one transaction.
		holding, release := make(chan struct{}), make(chan struct{})
		held := make(chan error, 1)
		go func() {
			held <- b.Do(ctx, func(ctx context.Context, tx store.Tx) error { close(holding); <-release; return nil })
		}()
		<-holding
		const bulk = 8
		var ran atomic.Int64
		firstRunning := make(chan struct{})
		var wg sync.WaitGroup
		for range bulk {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := b.DoBulk(ctx, func(ctx context.Context, tx store.Tx) error {
					if ran.Add(1) == 1 {
						close(firstRunning)
					}
					time.Sleep(20 * time.Millisecond) // a chunk of rows
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		time.Sleep(50 * time.Millisecond) // the bulk operations are queued
		close(release)
		if err := <-held; err != nil {
			t.Fatal(err)
		}
		<-firstRunning
		var before int64
		if err := b.Do(ctx, func(ctx context.Context, tx store.Tx) error { before = ran.Load(); return nil }); err != nil {
			t.Fatal(err)
		}
		if before > 1 {
			t.Fatalf("the interactive operation ran after %d of %d bulk operations; want after the first", before, bulk)
		}
		wg.Wait()
		if n := ran.Load(); n < bulk {
			t.Fatalf("%d of %d bulk operations ran", n, bulk)
		}
	})
}

// TestBatcherBulkHasItsOwnWriter: on PostgreSQL an interactive operation commits while
// bulk work is in the middle of an operation, even with one interactive writer and the
// writers taking turns (the bulk writer takes no turn), instead of waiting for it.
func TestBatcherBulkHasItsOwnWriter(t *testing.T) {
	if storetest.PostgresURL() == "" {
		t.Skipf("%s is not set: this test needs PostgreSQL", storetest.EnvPostgres)
	}
	st := storetest.Open(t, storetest.PostgresDSN(t))
	ctx := context.Background()
	b := st.NewBatcher(1, 0)
	defer b.Close()
	b.SetTakeTurns(true)
	running, finish := make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	bulkDone := make(chan error, 1)
	go func() {
		bulkDone <- b.DoBulk(ctx, func(ctx context.Context, tx store.Tx) error {
			close(running)
			<-finish
			finished.Store(true)
			return nil
		})
	}()
	<-running
	interactiveDone := make(chan error, 1)
	go func() { interactiveDone <- b.Do(ctx, func(ctx context.Context, tx store.Tx) error { return nil }) }()
	var err error
	select {
	case err = <-interactiveDone:
		if finished.Load() {
			t.Error("the interactive operation committed after the bulk one")
		}
	case <-time.After(5 * time.Second):
		t.Error("the interactive operation waits for the bulk operation in progress")
		close(finish)
		err = <-interactiveDone
	}
	if err != nil {
		t.Error(err)
	}
	if !finished.Load() {
		close(finish)
	}
	if err := <-bulkDone; err != nil {
		t.Error(err)
	}
}

// TestBatcherWritersTakeTurns: writers taking turns never have two transactions open at
// once, and still carry every operation; side by side they do overlap (which shows the
// test can see an overlap). PostgreSQL only: SQLite's writer connection serializes the
// transactions whatever the Batcher does.
func TestBatcherWritersTakeTurns(t *testing.T) {
	if storetest.PostgresURL() == "" {
		t.Skipf("%s is not set: this test needs PostgreSQL", storetest.EnvPostgres)
	}
	st := storetest.Open(t, storetest.PostgresDSN(t))
	ctx := context.Background()
	// most is the largest number of transactions seen open at once over 200 operations.
	most := func(turns bool) int64 {
		batch := st.NewBatcher(2, 0)
		defer batch.Close()
		batch.SetTakeTurns(turns)
		var open, most atomic.Int64
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Go(func() {
				err := batch.DoKeyed(ctx, fmt.Sprint(i), func(ctx context.Context, tx store.Tx) error {
					n := open.Add(1)
					defer open.Add(-1)
					for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
					}
					_, err := tx.Exec(ctx, "SELECT pg_sleep(0.0005)")
					return err
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		return most.Load()
	}
	if got := most(true); got != 1 {
		t.Errorf("taking turns, %d transactions were open at once; want 1", got)
	}
	overlapped := false
	for range 5 {
		if most(false) > 1 {
			overlapped = true
			break
		}
	}
	if !overlapped {
		t.Error("side by side, the writers' transactions never overlapped")
	}
}

// TestBatcherBackgroundRests: SQLite's writer rests after a transaction of background
// work (a fan-out's) for as long as it took, but only while runs or triggers come, and
// never after bulk work a caller waits for (a broadcast's accept).
func TestBatcherBackgroundRests(t *testing.T) {
	const hold = 400 * time.Millisecond // the first transaction's length, and so the rest
	for _, tc := range []struct {
		name     string
		lane     func(*store.Batcher, context.Context, func(context.Context, store.Tx) error) error
		triggers bool // an interactive operation comes near the end of the first transaction
		wantRest bool
	}{
		{"background while triggers come", (*store.Batcher).DoBackground, true, true},
		{"background on an idle server", (*store.Batcher).DoBackground, false, false},
		{"bulk a caller waits for", (*store.Batcher).DoBulk, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := storetest.Open(t, storetest.SQLiteDSN(t))
			ctx := context.Background()
			batch := st.NewBatcher(0, 0)
			defer batch.Close()
			do := func(ctx context.Context, fn func(context.Context, store.Tx) error) error {
				return tc.lane(batch, ctx, fn)
			}
			triggered := make(chan error, 1)
			var once sync.Once
			var firstEnded time.Time
			err := do(ctx, func(ctx context.Context, tx store.Tx) error {
				time.Sleep(hold - 30*time.Millisecond)
				if tc.triggers {
					once.Do(func() {
						go func() { triggered <- batch.Do(ctx, func(context.Context, store.Tx) error { return nil }) }()
					})
				}
				time.Sleep(30 * time.Millisecond)
				firstEnded = time.Now()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if tc.triggers {
				if err := <-triggered; err != nil {
					t.Fatal(err)
				}
			}
			var secondBegan time.Time
			if err := do(ctx, func(context.Context, store.Tx) error { secondBegan = time.Now(); return nil }); err != nil {
				t.Fatal(err)
			}
			waited := secondBegan.Sub(firstEnded)
			if tc.wantRest && waited < hold-100*time.Millisecond {
				t.Errorf("the next transaction began %v after the first; want a rest of about %v", waited, hold)
			}
			if !tc.wantRest && waited > hold/2 {
				t.Errorf("the next transaction began %v after the first; want no rest", waited)
			}
		})
	}
}

// TestBatcherTriggersEndARest: an interactive operation that comes while SQLite's writer
// rests from background work commits at once, ahead of the background work waiting.
func TestBatcherTriggersEndARest(t *testing.T) {
	const hold = 400 * time.Millisecond
	st := storetest.Open(t, storetest.SQLiteDSN(t))
	ctx := context.Background()
	batch := st.NewBatcher(0, 0)
	defer batch.Close()
	noop := func(context.Context, store.Tx) error { return nil }
	triggered := make(chan error, 1)
	var once sync.Once
	err := batch.DoBackground(ctx, func(ctx context.Context, tx store.Tx) error {
		time.Sleep(hold - 30*time.Millisecond)
		once.Do(func() { go func() { triggered <- batch.Do(ctx, noop) }() })
		time.Sleep(30 * time.Millisecond)
		return nil
	})
	if err == nil {
		err = <-triggered
	}
	if err != nil {
		t.Fatal(err)
	}
	// The writer now rests for about hold.
	var order []string
	var mu sync.Mutex
	ran := func(what string) func(context.Context, store.Tx) error {
		return func(context.Context, store.Tx) error {
			mu.Lock()
			defer mu.Unlock()
			order = append(order, what)
			return nil
		}
	}
	background := make(chan error, 1)
	go func() { background <- batch.DoBackground(ctx, ran("background")) }()
	time.Sleep(50 * time.Millisecond)
	began := time.Now()
	if err := batch.Do(ctx, ran("trigger")); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > hold/2 {
		t.Errorf("the trigger's operation took %v; want it committed at once, not after the rest", took)
	}
	if err := <-background; err != nil {
		t.Fatal(err)
	}
	if len(order) != 2 || order[0] != "trigger" {
		t.Errorf("operations ran in the order %v; want the trigger's first", order)
	}
}
