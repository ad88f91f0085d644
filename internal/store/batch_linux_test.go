package store_test

import (
	"context"
	"runtime"
	"syscall"
	"testing"

	"github.com/parleyhq/parley/internal/lowprio"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// TestBatcherBulkRunsInTheBackground checks the priority each lane's operations run at:
// on PostgreSQL, bulk work on its own writer's thread, whose nice value is raised by
// lowprio.Nice; everything else, and everything on SQLite's one writer (whose bulk
// transactions hold up the runs and triggers behind them), at the normal one.
func TestBatcherBulkRunsInTheBackground(t *testing.T) {
	runtime.LockOSThread()
	base := nice()
	runtime.UnlockOSThread()
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		batch := st.NewBatcher(0, 0)
		defer batch.Close()
		bulkNice := base
		if st.Dialect() == store.Postgres {
			bulkNice = min(19, base+lowprio.Nice)
		}
		for _, tc := range []struct {
			lane string
			do   func(context.Context, func(context.Context, store.Tx) error) error
			want int
		}{
			{"interactive", batch.Do, base},
			{"bulk", batch.DoBulk, bulkNice},
			{"keyed", func(ctx context.Context, fn func(context.Context, store.Tx) error) error {
				return batch.DoKeyed(ctx, "1/919876543210", fn)
			}, base},
			{"background", batch.DoBackground, bulkNice},
		} {
			var got int
			if err := tc.do(ctx, func(ctx context.Context, tx store.Tx) error { got = nice(); return nil }); err != nil {
				t.Fatalf("%s: %v", tc.lane, err)
			}
			if got != tc.want {
				t.Errorf("%s operation ran at nice value %d; want %d", tc.lane, got, tc.want)
			}
		}
	})
}

// nice is the calling thread's nice value (the system call answers 20 - nice).
func nice() int {
	raw, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil {
		return -100
	}
	return 20 - raw
}
