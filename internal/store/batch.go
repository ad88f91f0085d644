package store

import (
	"context"
	"errors"
	"hash/fnv"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/internal/lowprio"
)

// Batcher commits many small write operations in few transactions ("group commit"):
// under load every commit carries whatever operations queued up meanwhile, and at low
// load an operation commits alone, at once. This is what lets the run table serve as a
// durable queue at thousands of runs per second on one SQLite writer.
//
// Operations come in two lanes. Interactive ones (runs, triggers, inbound messages) go
// first; bulk ones (a broadcast's fan-out) fill each transaction's remaining room, at
// most maxBulk of them, so a flood of bulk work never makes an interactive operation
// wait behind more than a transaction's small share of it. Background work (a fan-out,
// which no caller waits for) also leaves SQLite's writer free half the time while runs
// and triggers come (restAfter). On PostgreSQL, which takes transactions side by side,
// bulk work has a writer of its own instead, and interactive operations never wait
// behind it at all.
//
// An interactive operation may carry a key (DoKeyed): all operations with the same key
// go to the same writer, so they share or follow each other's transactions and never
// wait for one another's row locks (a run's commits lock its user's row; with every
// trigger for one user, writers in parallel would queue up behind that one row).
type Batcher struct {
	st      *Store
	ops     chan *batchOp
	keyed   []chan *batchOp // one per writer
	bulk    chan *batchOp
	maxOps  int
	maxBulk int
	wg      sync.WaitGroup
	closeMu sync.RWMutex
	closed  bool
	// With takeTurns the writers commit one at a time (turn), each taking all that
	// queued up while the other committed (SetTakeTurns).
	takeTurns atomic.Bool
	turn      sync.Mutex
	// bulkShared is true when the writers of interactive work commit bulk work too
	// (SQLite's one writer): only then does background work rest (restAfter).
	bulkShared bool
	// lastInteractive is when the last interactive operation came (UnixNano), kept
	// only when bulkShared, for restAfter.
	lastInteractive atomic.Int64
}

type batchOp struct {
	fn   func(ctx context.Context, tx Tx) error
	done chan error
	// background bulk work rests between transactions while runs and triggers come
	// (DoBackground).
	background bool
}

// ErrClosed is returned by a Batcher that has been closed.
var ErrClosed = errors.New("store: batcher closed")

// NewBatcher starts writers goroutines that commit up to maxOps operations per
// transaction, of which at most maxBulk/16 (and at least one) bulk ones. Zero takes the
// defaults: 1 writer on SQLite (it has a single writer anyway), 2 on PostgreSQL: one
// commits while the other gathers, and a transaction is one round trip whatever it
// carries, so fewer, fuller transactions cost the server less CPU per run than many in
// parallel (BENCHMARKS.md; and see SetTakeTurns); 128 operations. On PostgreSQL one
// more writer commits the bulk lane, apart from the others.
func (s *Store) NewBatcher(writers, maxOps int) *Batcher {
	if writers <= 0 {
		writers = 1
		if s.dialect == Postgres {
			writers = 2
		}
	}
	if maxOps <= 0 {
		maxOps = 128
	}
	b := &Batcher{st: s, ops: make(chan *batchOp, 4096), bulk: make(chan *batchOp, 256), maxOps: maxOps, maxBulk: max(1, maxOps/16)}
	// A writer of its own for bulk work took a third off another bot's trigger p99
	// during a 100,000-recipient fan-out on PostgreSQL (bench/broadcast, BENCHMARKS.md).
	// SQLite has one writer connection, so there the writers share the lanes.
	bulkApart := s.dialect == Postgres
	b.bulkShared = !bulkApart
	interactiveBulk := b.bulk
	if bulkApart {
		interactiveBulk = nil
	}
	for range writers {
		own := make(chan *batchOp, 1024)
		b.keyed = append(b.keyed, own)
		b.wg.Add(1)
		go b.loop(own, b.ops, interactiveBulk)
	}
	if bulkApart {
		b.wg.Add(1)
		go b.loop(nil, nil, b.bulk)
	}
	return b
}

// SetTakeTurns makes the writers commit one at a time (on), or side by side (off, the
// default). Two writers side by side keep one instance's commits going while one of them
// waits on the database; with several instances sharing PostgreSQL, the database
// already has their commits side by side, and one transaction at a time per instance,
// carrying all that queued up meanwhile, costs it less CPU per run (two instances in one
// process on 2 cores, bench/trigger: 8.6–9.0 runs a commit against 5.7–5.8 side by
// side, PostgreSQL 209–308 µs a run against 270–293). Either way a key's operations
// keep to one writer. The engine turns it on while other instances are alive.
func (b *Batcher) SetTakeTurns(on bool) { b.takeTurns.Store(on) }

// TakingTurns reports whether the writers commit one at a time.
func (b *Batcher) TakingTurns() bool { return b.takeTurns.Load() }

// Do runs fn inside a shared transaction and returns once that transaction committed (nil)
// or fn's own error. fn may run twice (after another operation's failure rolled back the
// shared transaction), so it must only touch the database and its own result variables.
// ctx is not used for cancellation: fn runs under the writer's context, and Do always
// waits for the outcome even if ctx ends. One caller giving up (a client that hung up)
// must not roll back the transaction it shares with other callers' operations, and must
// not leave the caller unsure whether its operation committed.
func (b *Batcher) Do(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error {
	return b.submit(b.ops, fn, false)
}

// DoKeyed is Do for an operation that must not run in parallel with others of the same
// key (they lock the same rows): such operations all go to one writer.
func (b *Batcher) DoKeyed(ctx context.Context, key string, fn func(ctx context.Context, tx Tx) error) error {
	if len(b.keyed) == 1 {
		return b.submit(b.ops, fn, false)
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return b.submit(b.keyed[h.Sum32()%uint32(len(b.keyed))], fn, false)
}

// DoBulk is Do for bulk work that a caller waits for (a broadcast's recipients, stored
// before its API call answers), which yields to interactive operations: keep each fn
// small (a few rows), since a transaction takes only a few bulk operations.
func (b *Batcher) DoBulk(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error {
	return b.submit(b.bulk, fn, false)
}

// DoBackground is DoBulk for work that no one waits for (a broadcast's fan-out): while
// runs or triggers come, SQLite's writer also rests between its transactions (see
// restAfter).
func (b *Batcher) DoBackground(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error {
	return b.submit(b.bulk, fn, true)
}

func (b *Batcher) submit(lane chan *batchOp, fn func(ctx context.Context, tx Tx) error, background bool) error {
	b.closeMu.RLock()
	if b.closed {
		b.closeMu.RUnlock()
		return ErrClosed
	}
	op := &batchOp{fn: fn, done: make(chan error, 1), background: background}
	if b.bulkShared && lane != b.bulk {
		b.lastInteractive.Store(time.Now().UnixNano())
	}
	lane <- op
	b.closeMu.RUnlock()
	return <-op.done
}

// Close commits what is queued and stops the writers.
func (b *Batcher) Close() {
	b.closeMu.Lock()
	if !b.closed {
		b.closed = true
		close(b.ops)
		close(b.bulk)
		for _, c := range b.keyed {
			close(c)
		}
	}
	b.closeMu.Unlock()
	b.wg.Wait()
}

// loop is one writer, serving the lanes it is given (nil: not this writer's).
func (b *Batcher) loop(own, ops, bulk chan *batchOp) {
	defer b.wg.Done()
	// A writer of bulk work alone neither takes turns with the others nor commits early
	// for them: they wait for nothing of its.
	interactiveWriter := own != nil || ops != nil
	// A writer of bulk work alone (PostgreSQL's) runs at background priority (see
	// lowprio). SQLite's one writer does not: a transaction of bulk work holds the
	// database's only writer, and on a thread of lower priority the runs and triggers
	// waiting for it waited, on busy cores, for the kernel to schedule that thread
	// (stalls of 3–14 ms, BENCHMARKS.md). Best effort: a thread whose priority cannot be
	// lowered commits as fast, only without yielding the cores.
	if !interactiveWriter {
		_ = lowprio.Pin()
	}
	batch := make([]*batchOp, 0, b.maxOps)
	// carried holds bulk operations a transaction gave up when interactive ones came:
	// they go first into the next transactions, in order.
	var carried []*batchOp
	var rest time.Duration // before the next bulk-only transaction (restAfter)
	for ops != nil || bulk != nil || own != nil || len(carried) > 0 {
		batch = batch[:0]
		// Interactive operations first; wait for any lane only when all are empty.
		own = drain(own, &batch, 1)
		ops = drain(ops, &batch, 1)
		if len(batch) == 0 && len(carried) == 0 {
			if ops == nil && bulk == nil && own == nil {
				break
			}
			op, isBulk := next(&own, &ops, &bulk, nil)
			switch {
			case op == nil:
				continue
			case isBulk:
				carried = append(carried, op)
			default:
				batch = append(batch, op)
			}
		}
		if len(batch) == 0 && rest > 0 {
			// Bulk work alone comes next: rest first, unless runs or triggers come.
			t := time.NewTimer(rest)
			var none chan *batchOp
			if op, _ := next(&own, &ops, &none, t.C); op != nil {
				batch = append(batch, op)
			}
			t.Stop()
			rest = 0
		}
		takingTurns := interactiveWriter && b.takeTurns.Load()
		if takingTurns {
			b.turn.Lock()
		}
		own = drain(own, &batch, b.maxOps)
		ops = drain(ops, &batch, b.maxOps)
		interactive := len(batch)
		// A transaction that commits runs or triggers carries one bulk operation at most,
		// so that they wait for as little bulk work as possible.
		limit := b.maxBulk
		if interactive > 0 {
			limit = 1
		}
		limit = min(b.maxOps, interactive+limit)
		taken := min(len(carried), limit-interactive)
		batch = append(batch, carried[:taken]...)
		carried = carried[taken:]
		bulk = drain(bulk, &batch, limit)
		var yield func() bool
		if interactive == 0 && interactiveWriter {
			// A bulk-only transaction commits early when runs or triggers come, rather
			// than make them wait for all its operations.
			yield = func() bool { return len(b.ops) > 0 || len(own) > 0 }
		}
		began := time.Now()
		left := b.commit(batch, yield)
		if interactive == 0 && b.bulkShared && slices.ContainsFunc(batch[:len(batch)-len(left)], func(op *batchOp) bool { return op.background }) {
			rest = b.restAfter(began)
		}
		if len(left) > 0 {
			carried = append(slices.Clone(left), carried...)
		}
		if takingTurns {
			b.turn.Unlock()
		}
		b.st.finishCheckpoint()
	}
}

// restAfter is how long SQLite's writer rests after a transaction of background work
// alone that began at began: as long as the transaction took, while runs or triggers
// have come within busyWindow; not at all on a server with nothing else to do. The
// writer is then busy with such work half the time at most, so half of the runs and
// triggers find it free, and the cores are less busy: another bot's trigger p99 during
// a 100,000-recipient fan-out fell by about a fifth (from a median 2.34× idle to 1.85×
// over some thirty runs each), the fan-out from about 30,000 to 18,000 recipients a
// second (bench/broadcast, BENCHMARKS.md). PostgreSQL's writer of bulk work does not
// rest: runs and triggers never wait for it, and resting halved the fan-out for no clear
// gain.
func (b *Batcher) restAfter(began time.Time) time.Duration {
	now := time.Now()
	if now.Sub(time.Unix(0, b.lastInteractive.Load())) > busyWindow {
		return 0
	}
	return now.Sub(began)
}

// busyWindow is how recently runs or triggers must have come for background work to
// rest between its transactions.
const busyWindow = 100 * time.Millisecond

// next waits for an operation from own or ops (interactive), from bulk, or until stop
// fires; a nil channel is never ready. It returns nil when stop fired or a lane was
// found closed (that lane is then set to nil).
func next(own, ops, bulk *chan *batchOp, stop <-chan time.Time) (op *batchOp, isBulk bool) {
	var ok bool
	select {
	case op, ok = <-*own:
		if !ok {
			*own = nil
		}
	case op, ok = <-*ops:
		if !ok {
			*ops = nil
		}
	case op, ok = <-*bulk:
		if !ok {
			*bulk = nil
		}
		isBulk = true
	case <-stop:
	}
	return op, isBulk
}

// drain moves operations already waiting in lane into batch until it holds limit; it
// returns nil when lane is closed and empty.
func drain(lane chan *batchOp, batch *[]*batchOp, limit int) chan *batchOp {
	for lane != nil && len(*batch) < limit {
		select {
		case op, ok := <-lane:
			if !ok {
				return nil
			}
			*batch = append(*batch, op)
		default:
			return lane
		}
	}
	return lane
}

// commit runs batch in one transaction. yield, when set, is asked before each operation
// after the first: when it says so, the transaction commits the operations run so far,
// and commit returns the others, not run.
func (b *Batcher) commit(batch []*batchOp, yield func() bool) (rest []*batchOp) {
	ctx := context.Background()
	b.st.batchCommits.Add(1)
	if len(batch) == 1 {
		b.st.batchOps.Add(1)
		batch[0].done <- b.st.InTx(ctx, func(tx Tx) error { return batch[0].fn(ctx, tx) })
		return nil
	}
	var run int // how many operations the transaction ran
	err := b.st.InTx(ctx, func(tx Tx) error {
		run = len(batch)
		for i, op := range batch {
			if i > 0 && yield != nil && yield() {
				run = i
				return nil
			}
			if err := op.fn(ctx, tx); err != nil {
				return err
			}
		}
		return nil
	})
	batch, rest = batch[:run], batch[run:]
	b.st.batchOps.Add(int64(len(batch)))
	if err == nil {
		for _, op := range batch {
			op.done <- nil
		}
		return rest
	}
	// One operation failed (or the commit did): give every operation its own transaction
	// so each gets its own outcome; the failing one is expected to fail again.
	for _, op := range batch {
		op.done <- b.st.InTx(ctx, func(tx Tx) error { return op.fn(ctx, tx) })
	}
	return rest
}
