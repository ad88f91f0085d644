// Package engine runs flows. It is the only place that moves a run forward, whether the
// push comes from the API trigger, an inbound message, a timeout or recovery after a
// crash.
//
// The runs table is the durable queue. Accepting a trigger commits the user and the run
// (owned by this instance) and hands the run to an in-process worker, which executes nodes
// in memory and commits at the points that matter: before an external effect that must
// not repeat, after it, and when the run parks or ends. Workers take runs from
// per-customer queues in turn, and a run waiting on the outside world (an HTTP call, a
// provider send and its pacing) waits off the workers (see sched.go and outside.go).
// Commits from all workers go through a group-commit batcher. Each instance heartbeats; runs owned by an instance
// whose heartbeat stopped are claimed by the others (or by the same server after a
// restart), and parked runs whose wake-up time came are claimed by whoever sweeps first.
//
// Messages sent outside any run (the template API, broadcasts) go through the engine too,
// under the same rule (see SendBatch): stored as pending before the provider call, owned
// by the instance, and claimed by the sweeper like an orphaned run if it dies.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/phone"
	"github.com/parleyhq/parley/internal/store"
)

// Config tunes an Engine. Zero values mean the defaults.
type Config struct {
	// InstanceID names this server among those sharing the database (random by default).
	InstanceID string
	// Workers is how many runs execute at once (default 64).
	Workers int
	// MaxRunning is how many runs of one customer execute at once, for customers whose
	// account does not say (max_running); default (and at most): Workers. Workers serve
	// customers in turn whatever the cap (see sched.go).
	MaxRunning int
	// MaxCalls bounds one customer's outside calls in flight: HTTP steps, provider sends
	// with their pacing waits, capability checks (default 64). They hold no worker.
	MaxCalls int
	// AcceptTimeout bounds how long Trigger waits for a run to be stored when the
	// trigger does not wait for the run to end (default 10 s); one that does is bounded
	// by its own wait (see Trigger).
	AcceptTimeout time.Duration
	// Limits reads a customer's own cap on runs executing at once (nil: none); it is
	// read at most once a second per customer. Default: the store's max_running.
	Limits func(ctx context.Context, customerID int64) (*int, error)
	// Heartbeat is how often the instance reports it is alive (default 2 s).
	Heartbeat time.Duration
	// Liveness is how long after its last heartbeat an instance is presumed dead and its
	// runs are taken over (default 10 s).
	Liveness time.Duration
	// Sweep is how often parked runs that are due and orphaned runs are looked for
	// (default 500 ms).
	Sweep time.Duration
	// MaxSteps bounds the nodes one run executes without waiting (default 1000), so a
	// cycle through jumps cannot spin forever.
	MaxSteps int
	// BatchWriters and BatchSize tune the group commit; zero takes store.NewBatcher's
	// defaults (1 writer on SQLite, 2 on PostgreSQL; 128 operations per commit).
	BatchWriters, BatchSize int

	Channels ChannelResolver
	HTTP     HTTPCaller
	Log      *slog.Logger
	Registry prometheus.Registerer

	// stepHook, when set (tests), runs after every committed step; returning an error
	// stops the worker at once without writing anything more, as a crash would.
	stepHook func(runID, node string) error
	// loadHook, when set (tests), runs before the engine reads what a run it claimed
	// needs (its row, user and bot); an error stands for the store failing there.
	loadHook func(runID string) error
	// sendHook, when set (tests), runs before ("before") and after ("after") every
	// provider call of a one-off send; an error stops the engine there as a crash would.
	sendHook func(stage, key string) error
}

// ChannelResolver finds the sender serving a bot's channel.
type ChannelResolver interface {
	Sender(ctx context.Context, botID int64, channelName string) (channel.Sender, error)
}

// Engine executes runs.
type Engine struct {
	st    *store.Store
	cfg   Config
	log   *slog.Logger
	batch *store.Batcher
	flows *flowCache
	m     *metrics

	sched   *scheduler
	caps    *capCache
	started time.Time

	waitMu  sync.Mutex
	waiters map[string][]chan RunView

	workMu   sync.RWMutex // guards closing work against enqueue
	stopping bool
	stopOnce sync.Once
	cancel   context.CancelFunc
	loops    sync.WaitGroup // heartbeat and sweeper
	workers  sync.WaitGroup
	sending  sync.WaitGroup // one-off sends in progress (see SendBatch)
	crashed  chan struct{}  // closed by a stepHook error: simulate a crash
}

// New returns an Engine; Start begins work.
func New(st *store.Store, cfg Config) *Engine {
	if cfg.InstanceID == "" {
		cfg.InstanceID = uuid.NewString()
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.MaxRunning <= 0 || cfg.MaxRunning > cfg.Workers {
		cfg.MaxRunning = cfg.Workers
	}
	if cfg.MaxCalls <= 0 {
		cfg.MaxCalls = 64
	}
	if cfg.AcceptTimeout <= 0 {
		cfg.AcceptTimeout = 10 * time.Second
	}
	if cfg.Limits == nil {
		cfg.Limits = func(ctx context.Context, customerID int64) (*int, error) {
			c, err := st.Customer(ctx, customerID)
			if errors.Is(err, store.ErrNotFound) {
				return nil, nil
			}
			return c.MaxRunning, err
		}
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 2 * time.Second
	}
	if cfg.Liveness <= 0 {
		cfg.Liveness = 10 * time.Second
	}
	if cfg.Sweep <= 0 {
		cfg.Sweep = 500 * time.Millisecond
	}
	if cfg.MaxSteps <= 0 {
		cfg.MaxSteps = 1000
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	// Errors can carry a user's phone number (a wrapped store error, a provider's
	// refusal); mask it in every log line.
	cfg.Log = slog.New(phone.RedactingHandler(cfg.Log.Handler()))
	if cfg.Channels == nil {
		cfg.Channels = SandboxOnly{}
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	m := newMetrics(cfg.Registry)
	return &Engine{
		st:    st,
		cfg:   cfg,
		log:   cfg.Log,
		flows: newFlowCache(st),
		m:     m,
		sched: newScheduler(cfg.MaxRunning, cfg.MaxCalls, func(ready, outside int) {
			m.queued.Set(float64(ready))
			m.outside.Set(float64(outside))
		}),
		caps:    newCapCache(cfg.Limits, time.Second),
		waiters: map[string][]chan RunView{},
		crashed: make(chan struct{}),
	}
}

// InstanceID names this engine among the instances sharing the database.
func (e *Engine) InstanceID() string { return e.cfg.InstanceID }

// Start registers the instance and starts the workers, the heartbeat and the sweeper.
func (e *Engine) Start(ctx context.Context) error {
	e.started = time.Now()
	if err := e.st.Heartbeat(ctx, e.cfg.InstanceID, e.started.UnixMilli(), e.started.UnixMilli()); err != nil {
		return fmt.Errorf("start engine: %w", err)
	}
	e.batch = e.st.NewBatcher(e.cfg.BatchWriters, e.cfg.BatchSize)
	e.followInstances(ctx, e.started)
	loopCtx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	for range e.cfg.Workers {
		e.workers.Add(1)
		go e.worker()
	}
	e.loops.Add(2)
	go e.heartbeatLoop(loopCtx)
	go e.sweepLoop(loopCtx)
	return nil
}

// Stop finishes the runs in hand (each up to its next commit point; outside calls in
// flight are waited for, and no new one starts: a run about to make one is stored as it
// is and released) and the one-off sends in progress, releases the rest to other
// instances and deregisters. Nothing accepted is lost: unfinished runs stay in the
// database and are resumed by whoever claims them.
func (e *Engine) Stop(ctx context.Context) error {
	var err error
	e.stopOnce.Do(func() {
		if e.cancel == nil {
			return
		}
		e.cancel()
		e.loops.Wait()
		e.workMu.Lock()
		e.stopping = true
		e.sched.close()
		e.workMu.Unlock()
		done := make(chan struct{})
		go func() { e.workers.Wait(); e.sending.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			// The busy workers still write through the batcher: it closes when they are
			// done. Their runs stay theirs (not released, the instance not removed), so
			// no other instance takes one over while a call of it may be in flight; once
			// this instance's heartbeat is stale, they are claimed as a crashed one's.
			go func() { <-done; e.batch.Close() }()
			err = fmt.Errorf("stop engine: workers still busy: %w", ctx.Err())
			return
		}
		e.batch.Close()
		select {
		case <-e.crashed:
			return // a simulated crash leaves everything as a killed process would
		default:
		}
		bg := context.Background()
		err = errors.Join(err, e.st.ReleaseRuns(bg, e.cfg.InstanceID), e.st.ReleaseSends(bg, e.cfg.InstanceID),
			e.st.RemoveInstance(bg, e.cfg.InstanceID, time.Now().Add(-time.Hour).UnixMilli()))
	})
	return err
}

func (e *Engine) heartbeatLoop(ctx context.Context) {
	defer e.loops.Done()
	t := time.NewTicker(e.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.crashed:
			return
		case now := <-t.C:
			if err := e.st.Heartbeat(ctx, e.cfg.InstanceID, e.started.UnixMilli(), now.UnixMilli()); err != nil && ctx.Err() == nil {
				e.log.Error("heartbeat", "err", err)
			}
			e.followInstances(ctx, now)
		}
	}
}

// followInstances has the group commit's writers take turns while other instances
// share the database (store.Batcher.SetTakeTurns).
func (e *Engine) followInstances(ctx context.Context, now time.Time) {
	if e.st.Dialect() != store.Postgres {
		return // one writer anyway
	}
	n, err := e.st.LiveInstances(ctx, now.Add(-e.cfg.Liveness).UnixMilli())
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("count live instances", "err", err)
		}
		return
	}
	e.batch.SetTakeTurns(n > 1)
}

func (e *Engine) sweepLoop(ctx context.Context) {
	defer e.loops.Done()
	t := time.NewTicker(e.cfg.Sweep)
	defer t.Stop()
	for {
		if n, err := e.sweep(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("sweep", "err", err)
		} else if n > 0 {
			e.log.Info("claimed runs", "count", n)
		}
		if n, err := e.sweepSends(ctx, time.Now()); err != nil && ctx.Err() == nil {
			e.log.Error("sweep sends", "err", err)
		} else if n > 0 {
			e.log.Info("claimed interrupted sends", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-e.crashed:
			return
		case <-t.C:
		}
	}
}

// sweep claims due and orphaned runs and queues them for the workers. Every run it
// claims is either queued, failed (when no instance could ever run it) or released
// again: a claimed run left alone would stay owned by this live instance, and nobody
// would claim it while the instance lives.
func (e *Engine) sweep(ctx context.Context) (int, error) {
	const limit = 256
	now := time.Now()
	due, err := e.st.ClaimDueRuns(ctx, e.cfg.InstanceID, now.UnixMilli(), limit)
	if err != nil {
		return 0, err
	}
	e.startClaimed(ctx, due)
	orphans, err := e.st.ClaimOrphanRuns(ctx, e.cfg.InstanceID, now.UnixMilli(), now.Add(-e.cfg.Liveness).UnixMilli(), limit)
	if err != nil {
		return len(due), err
	}
	e.startClaimed(ctx, orphans)
	return len(due) + len(orphans), nil
}

// startClaimed loads runs this instance claimed and queues them. A run that fails to
// load is released for a later sweep to claim again, unless it can never run (its state
// is unreadable, its user or bot is gone): that run is failed with the reason, since
// releasing it would only have it claimed and released again forever.
func (e *Engine) startClaimed(ctx context.Context, ids []string) {
	for _, id := range ids {
		r, err := e.loadRun(ctx, id)
		switch {
		case err == nil:
			e.enqueue(ctx, r) // false when stopping: Stop releases the run
		case errors.Is(err, errUnrunnable):
			e.log.Error("claimed run cannot run", "run", id, "err", err)
			reason := "the stored run cannot be executed: " + err.Error()
			if ferr := e.st.FailRun(ctx, id, e.cfg.InstanceID, reason, time.Now().UnixMilli()); ferr != nil {
				e.log.Error("fail run", "run", id, "err", ferr)
				_ = e.release(id)
				continue
			}
			e.m.finished.WithLabelValues(store.RunFailed).Inc()
		default:
			e.log.Error("load claimed run", "run", id, "err", err)
			_ = e.release(id)
		}
	}
}

// release gives up a run this instance claimed but cannot go on with, so that a sweep
// (here or on another instance) claims it again and resumes it from its last commit.
func (e *Engine) release(runID string) error {
	err := e.st.ReleaseRun(context.Background(), runID, e.cfg.InstanceID)
	if err != nil {
		e.log.Error("release run", "run", runID, "err", err)
	}
	return err
}

// enqueue hands r to the workers, under its customer's cap; false when the engine is
// stopping (a stored run then stays in the database, and Stop releases it for the next
// owner). It never blocks on the workers.
func (e *Engine) enqueue(ctx context.Context, r *run) bool {
	return e.sched.add(r, e.caps.maxRunning(ctx, r.customerID, e.cfg.MaxRunning, e.log))
}

func (e *Engine) worker() {
	defer e.workers.Done()
	for {
		r, ok := e.sched.next()
		if !ok {
			return
		}
		switch {
		case e.isCrashed():
			e.accepted(r, errAborted) // a crashed engine does nothing more
			e.dropSlot(r)
			e.sched.finish(r, true)
		case !r.inserted && r.abandoned():
			e.dropSlot(r) // its trigger stopped waiting: it must never be stored
			e.sched.finish(r, true)
		default:
			// After detached the run is no longer this worker's: finish reads only its
			// customer, which never changes.
			e.sched.finish(r, e.execute(r) != detached)
		}
	}
}

// notify hands v to everyone waiting for the run to settle.
func (e *Engine) notify(runID string, v RunView) {
	e.waitMu.Lock()
	ws := e.waiters[runID]
	delete(e.waiters, runID)
	e.waitMu.Unlock()
	for _, w := range ws {
		w <- v // buffered: never blocks
	}
}

func (e *Engine) subscribe(runID string) chan RunView {
	ch := make(chan RunView, 1)
	e.waitMu.Lock()
	e.waiters[runID] = append(e.waiters[runID], ch)
	e.waitMu.Unlock()
	return ch
}

func (e *Engine) unsubscribe(runID string, ch chan RunView) {
	e.waitMu.Lock()
	defer e.waitMu.Unlock()
	ws := e.waiters[runID]
	for i, w := range ws {
		if w == ch {
			e.waiters[runID] = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(e.waiters[runID]) == 0 {
		delete(e.waiters, runID)
	}
}

type metrics struct {
	started     prometheus.Counter
	finished    *prometheus.CounterVec
	queued      prometheus.Gauge
	outside     prometheus.Gauge
	notAccepted prometheus.Counter
	steps       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		started: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_runs_started_total", Help: "Runs accepted."}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_runs_finished_total",
			Help: "Runs that ended, by status."}, []string{"status"}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_runs_in_memory_queue",
			Help: "Runs handed to this instance's workers and not yet picked up."}),
		outside: prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_runs_outside",
			Help: "Runs waiting on an outside call (HTTP step, provider send, pacing) or for a call slot, holding no worker."}),
		notAccepted: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_triggers_not_accepted_total",
			Help: "Triggers given up before their run was stored (too busy, or the client left): nothing started."}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_run_steps_total",
			Help: "Nodes executed, by node type."}, []string{"type"}),
	}
	reg.MustRegister(m.started, m.finished, m.queued, m.outside, m.notAccepted, m.steps)
	return m
}
