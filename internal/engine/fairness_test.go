package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/catalog"
	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// heldHTTP is an HTTP caller whose calls wait until released; arrived hears each call.
type heldHTTP struct {
	hold    chan struct{}
	arrived chan string
	mu      sync.Mutex
	calls   []string // run ids, in the order the calls came
}

func newHeldHTTP() *heldHTTP {
	return &heldHTTP{hold: make(chan struct{}), arrived: make(chan string, 64)}
}

func (h *heldHTTP) Call(_ context.Context, c HTTPCall) HTTPResult {
	h.mu.Lock()
	h.calls = append(h.calls, c.RunID)
	h.mu.Unlock()
	h.arrived <- c.RunID
	<-h.hold
	return HTTPResult{Status: 200}
}

func (h *heldHTTP) made() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

const (
	quickFlow = `{"key": "quick", "start": "s", "nodes": [{"id": "s", "type": "set", "set": {"seen": "yes"}, "next": "e"}, {"id": "e", "type": "end"}]}`
	getFlow   = `{"key": "get", "start": "call", "nodes": [
  {"id": "call", "type": "http", "method": "GET", "url": "https://crm.example.com/x", "next": "e"}, {"id": "e", "type": "end"}]}`
	postFlow = `{"key": "post", "start": "call", "nodes": [
  {"id": "call", "type": "http", "method": "POST", "url": "https://crm.example.com/x", "next": "e"}, {"id": "e", "type": "end"}]}`
	sendFlow = `{"key": "send", "start": "m", "nodes": [{"id": "m", "type": "message", "text": "hello", "next": "e"}, {"id": "e", "type": "end"}]}`
)

func (b *bundle) triggerCtx(ctx context.Context, flowKey, digits string, wait time.Duration) (RunView, error) {
	return b.eng.Trigger(ctx, TriggerRequest{BotID: b.botID, CustomerID: b.cid, FlowKey: flowKey, Channel: channel.WhatsApp,
		Phone: "+" + digits, Digits: digits, Attrs: map[string]string{}, Wait: wait})
}

// TestOutsideCallsHoldNoWorker: with a single worker, a run waiting on an HTTP step's
// call or a provider's send (which includes its pacing wait) leaves the worker free:
// another trigger completes meanwhile, and the waiting run finishes once its answer
// comes.
func TestOutsideCallsHoldNoWorker(t *testing.T) {
	for _, flowKey := range []string{"get", "post", "send"} {
		t.Run(flowKey, func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, st *store.Store) {
				h, p := newHeldHTTP(), newProviders()
				p.wa.hold, p.wa.arrived = make(chan struct{}), make(chan string, 8)
				b := setup(t, st, Config{Workers: 1, HTTP: h, Channels: p}, quickFlow, getFlow, postFlow, sendFlow)
				release := sync.OnceFunc(func() { close(h.hold); close(p.wa.hold) })
				t.Cleanup(release) // before the engine stops, should the test fail
				ctx := context.Background()
				slow, err := b.triggerCtx(ctx, flowKey, "919800000001", 0)
				if err != nil {
					t.Fatal(err)
				}
				if flowKey == "send" {
					<-p.wa.arrived
				} else {
					<-h.arrived
				}
				done := make(chan RunView, 1)
				go func() {
					v, err := b.triggerCtx(ctx, "quick", "919800000002", 10*time.Second)
					if err != nil {
						t.Error(err)
					}
					done <- v
				}()
				select {
				case v := <-done:
					if v.Status != store.RunCompleted {
						t.Fatalf("quick run %+v", v)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("the only worker stayed with the run waiting on the outside world")
				}
				if v := b.waitStatus(t, slow.RunID, store.RunRunning); v.Status != store.RunRunning {
					t.Fatalf("slow run %+v", v)
				}
				release()
				v := b.waitStatus(t, slow.RunID, store.RunCompleted)
				if len(v.Steps) == 0 || v.Steps[0].Error != "" {
					t.Fatalf("slow run %+v", v)
				}
			})
		})
	}
}

// slotWaiters is how many of the customer's runs wait for a call slot.
func slotWaiters(e *Engine, customerID int64) int {
	e.sched.mu.Lock()
	defer e.sched.mu.Unlock()
	if t := e.sched.tenants[customerID]; t != nil {
		return t.slotWait.len()
	}
	return 0
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTriggerAcceptanceBounded: a trigger whose run cannot be stored (its customer's
// call slots are taken) gives up at its bound, or when its caller leaves, and then its
// run is never stored and never calls; the runs that were accepted go on.
func TestTriggerAcceptanceBounded(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		h := newHeldHTTP()
		b := setup(t, st, Config{Workers: 4, MaxCalls: 1, AcceptTimeout: 300 * time.Millisecond, HTTP: h}, getFlow)
		ctx := context.Background()
		first, err := b.triggerCtx(ctx, "get", "919800000001", 0)
		if err != nil {
			t.Fatal(err)
		}
		<-h.arrived

		for _, tc := range []struct {
			name string
			wait time.Duration
			ctx  func() (context.Context, context.CancelFunc)
			want error
		}{
			{"no wait: AcceptTimeout", 0, func() (context.Context, context.CancelFunc) { return ctx, func() {} }, ErrNotAccepted},
			{"waiting: its wait", 1200 * time.Millisecond, func() (context.Context, context.CancelFunc) { return ctx, func() {} }, ErrNotAccepted},
			{"the caller left", time.Minute, func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 200*time.Millisecond)
			}, context.DeadlineExceeded},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c, cancel := tc.ctx()
				defer cancel()
				v, err := b.triggerCtx(c, "get", "919800000002", tc.wait)
				if !errors.Is(err, tc.want) {
					t.Fatalf("trigger = %+v, %v; want %v", v, err, tc.want)
				}
			})
		}
		close(h.hold)
		b.waitStatus(t, first.RunID, store.RunCompleted)
		again, err := b.triggerCtx(ctx, "get", "919800000003", 10*time.Second)
		if err != nil || again.Status != store.RunCompleted {
			t.Fatalf("after the slot freed: %+v, %v", again, err)
		}
		var n int
		if err := st.Reader().QueryRow(ctx, `SELECT COUNT(*) FROM runs WHERE bot_id = $1`, b.botID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if calls := h.made(); n != 2 || len(calls) != 2 || calls[0] != first.RunID || calls[1] != again.RunID {
			t.Fatalf("%d runs stored, calls by %v; want only %s and %s", n, calls, first.RunID, again.RunID)
		}
		if _, err := st.UserByChannelID(ctx, b.botID, "919800000002"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the user of the triggers given up was stored: %v", err)
		}
	})
}

// TestStopReleasesRunsWaitingForSlot: at shutdown a call in flight is waited for and its
// run finished; a run waiting for a call slot is stored as it is and released, without
// its POST (so the next owner makes it, rather than taking it for interrupted).
func TestStopReleasesRunsWaitingForSlot(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		h := newHeldHTTP()
		b := setup(t, st, Config{InstanceID: "first", Workers: 2, MaxCalls: 1, HTTP: h}, postFlow)
		ctx := context.Background()
		first, err := b.triggerCtx(ctx, "post", "919800000001", 0)
		if err != nil {
			t.Fatal(err)
		}
		<-h.arrived
		second := make(chan RunView, 1)
		go func() {
			v, err := b.triggerCtx(ctx, "post", "919800000002", 0)
			if err != nil {
				t.Error(err)
			}
			second <- v
		}()
		waitFor(t, "the second run to wait for a call slot", func() bool { return slotWaiters(b.eng, b.cid) == 1 })
		stopped := make(chan error, 1)
		go func() { stopped <- b.eng.Stop(ctx) }()
		v := <-second // stored by the shutdown, not refused
		if v.Status != store.RunQueued {
			t.Fatalf("second run at shutdown: %+v", v)
		}
		close(h.hold)
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		if rec, err := st.RunByID(ctx, nil, v.RunID); err != nil || rec.Owner != nil || rec.Status != store.RunQueued {
			t.Fatalf("second run after the shutdown: %+v, %v", rec, err)
		}
		if done := b.waitStatus(t, first.RunID, store.RunCompleted); done.Steps[0].Error != "" {
			t.Fatalf("first run %+v", done)
		}
		if calls := h.made(); len(calls) != 1 {
			t.Fatalf("calls during the shutdown: %v", calls)
		}

		next := New(st, Config{InstanceID: "next", Sweep: 20 * time.Millisecond, HTTP: h})
		if err := next.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer next.Stop(ctx)
		b.eng = next
		done := b.waitStatus(t, v.RunID, store.RunCompleted)
		if done.Steps[0].Outcome != "HTTP 200" || strings.Contains(done.Steps[0].Error, "interrupted") {
			t.Fatalf("second run %+v", done)
		}
		if calls := h.made(); len(calls) != 2 || calls[1] != v.RunID {
			t.Fatalf("calls %v", calls)
		}
	})
}

// TestMaxRunningPerAccount: a customer whose account allows one run at a time has its
// second run wait while the first holds a worker, though workers are free; another
// customer's run goes through meanwhile, and the second starts once the first is done.
func TestMaxRunningPerAccount(t *testing.T) {
	const holdFlow = `{"key": "hold", "start": "s", "nodes": [
  {"id": "s", "type": "set", "set": {"seen": "yes"}, "next": "held"}, {"id": "held", "type": "end"}]}`
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		arrived, hold := make(chan string, 8), make(chan struct{})
		// A run of the hold flow keeps its worker after its first node until released.
		b := setup(t, st, Config{Workers: 4, stepHook: func(runID, node string) error {
			if node == "held" {
				arrived <- runID
				<-hold
			}
			return nil
		}}, holdFlow)
		release := sync.OnceFunc(func() { close(hold) })
		t.Cleanup(release)
		one := 1
		if err := st.SetCustomerMaxRunning(ctx, b.cid, &one); err != nil {
			t.Fatal(err)
		}
		other, _, err := st.EnsureCustomer(ctx, "globex")
		if err != nil {
			t.Fatal(err)
		}
		otherBot, err := st.CreateBot(ctx, other.ID, "00112233445566bb", "other")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := catalog.Import(ctx, st, otherBot.ID, []byte(quickFlow)); err != nil {
			t.Fatal(err)
		}

		results := make(chan RunView, 2)
		start := func(digits string) {
			go func() {
				v, err := b.triggerCtx(ctx, "hold", digits, 10*time.Second)
				if err != nil {
					t.Error(err)
				}
				results <- v
			}()
		}
		start("919800000001")
		first := <-arrived
		start("919800000002")
		waitFor(t, "the second run to wait for its customer's turn", func() bool { return readyOf(b.eng, b.cid) == 1 })

		v, err := b.eng.Trigger(ctx, TriggerRequest{BotID: otherBot.ID, CustomerID: other.ID, FlowKey: "quick", Channel: channel.WhatsApp,
			Phone: "+919800000003", Digits: "919800000003", Attrs: map[string]string{}, Wait: 10 * time.Second})
		if err != nil || v.Status != store.RunCompleted {
			t.Fatalf("the other customer's run: %+v, %v", v, err)
		}
		if n := readyOf(b.eng, b.cid); n != 1 {
			t.Fatalf("%d runs of the capped customer ready, want 1 still waiting", n)
		}
		release()
		if second := <-arrived; second == first {
			t.Fatalf("run %s arrived twice", first)
		}
		for range 2 {
			if v := <-results; v.Status != store.RunCompleted {
				t.Fatalf("capped customer's run %+v", v)
			}
		}
	})
}

// readyOf is how many of the customer's runs are ready and not executing.
func readyOf(e *Engine, customerID int64) int {
	e.sched.mu.Lock()
	defer e.sched.mu.Unlock()
	if t := e.sched.tenants[customerID]; t != nil {
		return t.ready.len()
	}
	return 0
}
