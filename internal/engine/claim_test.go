package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// failingLoads makes the first n reads of what a claimed run needs fail, as a store
// error would, for the runs it has been armed for.
type failingLoads struct {
	mu    sync.Mutex
	runs  map[string]int // run id → failures still to give
	calls atomic.Int32
}

func (f *failingLoads) arm(runID string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.runs == nil {
		f.runs = map[string]int{}
	}
	f.runs[runID] = n
}

func (f *failingLoads) hook(runID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.runs[runID] > 0 {
		f.runs[runID]--
		f.calls.Add(1)
		return errors.New("injected: the database did not answer")
	}
	return nil
}

func (f *failingLoads) left(runID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs[runID]
}

// TestClaimedRunsAreReleased covers every path that claims a run and then fails to
// read what it needs: the run must be released and finished by a later sweep, not stay
// owned by this live instance (which nobody would take it from).
func TestClaimedRunsAreReleased(t *testing.T) {
	const waitFlow = `{"key": "w", "start": "ask", "nodes": [
  {"id": "ask", "type": "input", "text": "Name?", "save_as": "name", "timeout_seconds": 1, "on_timeout": "late", "next": "hi"},
  {"id": "hi", "type": "message", "text": "Hi {{name}}"},
  {"id": "late", "type": "message", "text": "Too late"}]}`

	t.Run("due run", func(t *testing.T) {
		storetest.Each(t, func(t *testing.T, st *store.Store) {
			loads := &failingLoads{}
			b := setup(t, st, Config{loadHook: loads.hook}, waitFlow)
			v := b.trigger(t, "w", "919876543210", nil)
			loads.arm(v.RunID, 2) // the sweeper's claim of the due run fails to load, twice
			done := b.waitStatus(t, v.RunID, store.RunCompleted)
			if done.Steps[len(done.Steps)-1].Outcome != "sent" || loads.left(v.RunID) != 0 {
				t.Fatalf("run %+v; %d injected failures left", done, loads.left(v.RunID))
			}
			if got := b.texts(t, "919876543210"); !equal(got, []string{"bot:Name?", "bot:Too late"}) {
				t.Fatalf("conversation = %q", got)
			}
		})
	})

	t.Run("orphaned run", func(t *testing.T) {
		storetest.Each(t, func(t *testing.T, st *store.Store) {
			// The first instance dies right after committing the run before its POST.
			h := &fakeHTTP{fn: func(HTTPCall) HTTPResult { return HTTPResult{Status: 200} }}
			b := setup(t, st, Config{InstanceID: "doomed", HTTP: h, stepHook: func(_, node string) error {
				if node == "after" {
					return errors.New("crash")
				}
				return nil
			}}, `{"key": "p", "start": "call", "nodes": [
  {"id": "call", "type": "http", "method": "POST", "url": "https://crm.example.com/x", "next": "after"},
  {"id": "after", "type": "message", "text": "done"}]}`)
			ctx := context.Background()
			v, err := b.eng.Trigger(ctx, TriggerRequest{BotID: b.botID, CustomerID: b.cid, FlowKey: "p", Channel: "whatsapp",
				Phone: "+919876543210", Digits: "919876543210", Attrs: map[string]string{}})
			if err != nil {
				t.Fatal(err)
			}
			<-b.eng.crashed
			_ = b.eng.Stop(ctx)
			if rec, _ := st.RunByID(ctx, nil, v.RunID); rec.Status != store.RunRunning || rec.Owner == nil || *rec.Owner != "doomed" {
				t.Fatalf("after the crash the run is %s owned by %v", rec.Status, rec.Owner)
			}
			loads := &failingLoads{}
			loads.arm(v.RunID, 2)
			second := New(st, Config{InstanceID: "survivor", Liveness: time.Second, Heartbeat: 20 * time.Millisecond, Sweep: 20 * time.Millisecond,
				HTTP: h, loadHook: loads.hook})
			if err := second.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer second.Stop(ctx)
			b.eng = second
			done := b.waitStatus(t, v.RunID, store.RunCompleted)
			if loads.left(v.RunID) != 0 || !strings.Contains(done.Steps[0].Error, "interrupted") || h.calls.Load() != 1 {
				t.Fatalf("run %+v; %d failures left, %d calls", done, loads.left(v.RunID), h.calls.Load())
			}
		})
	})

	t.Run("resumed by a reply", func(t *testing.T) {
		storetest.Each(t, func(t *testing.T, st *store.Store) {
			loads := &failingLoads{}
			b := setup(t, st, Config{loadHook: loads.hook}, `{"key": "w", "start": "ask", "nodes": [
  {"id": "ask", "type": "input", "text": "Name?", "save_as": "name", "next": "hi"},
  {"id": "hi", "type": "message", "text": "Hi {{name}}"}]}`)
			v := b.trigger(t, "w", "919876543210", nil)
			loads.arm(v.RunID, 1) // reading the bot after the claim fails
			if res := b.reply(t, "919876543210", "Ada"); res.Resumed != v.RunID {
				t.Fatalf("reply resumed %q, want %s", res.Resumed, v.RunID)
			}
			b.waitStatus(t, v.RunID, store.RunCompleted)
			if got := b.texts(t, "919876543210"); !equal(got, []string{"bot:Name?", "user:Ada", "bot:Hi Ada"}) {
				t.Fatalf("conversation = %q", got)
			}
		})
	})

	t.Run("unreadable run", func(t *testing.T) {
		storetest.Each(t, func(t *testing.T, st *store.Store) {
			b := setup(t, st, Config{}, waitFlow)
			v := b.trigger(t, "w", "919876543210", nil)
			if _, err := st.Writer().Exec(context.Background(), `UPDATE runs SET state = 'not json' WHERE id = $1`, v.RunID); err != nil {
				t.Fatal(err)
			}
			// The run is claimed when its timeout comes; it can never run, so it fails
			// (released, it would be claimed and released again forever).
			deadline := time.Now().Add(10 * time.Second)
			for {
				rec, err := st.RunByID(context.Background(), nil, v.RunID)
				if err != nil {
					t.Fatal(err)
				}
				if rec.Status == store.RunFailed {
					if !strings.Contains(rec.Error, "cannot be executed") || rec.Owner != nil {
						t.Fatalf("failed run: error %q, owner %v", rec.Error, rec.Owner)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("run is %s owned by %v, want failed", rec.Status, rec.Owner)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	})
}

// TestWritersTakeTurnsWithOtherInstances: on PostgreSQL an instance's group-commit
// writers take turns while another instance heartbeats on the same database, and go
// back to committing side by side when it has stopped.
func TestWritersTakeTurnsWithOtherInstances(t *testing.T) {
	if storetest.PostgresURL() == "" {
		t.Skipf("%s is not set: this test needs PostgreSQL", storetest.EnvPostgres)
	}
	st := storetest.Open(t, storetest.PostgresDSN(t))
	ctx := context.Background()
	const liveness, heartbeat = time.Second, 20 * time.Millisecond
	first := setup(t, st, Config{InstanceID: "first", Liveness: liveness, Heartbeat: heartbeat}).eng
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after 5 s: %s", what)
			}
		}
	}
	time.Sleep(3 * heartbeat)
	if first.batch.TakingTurns() {
		t.Fatal("a lone instance's writers take turns")
	}
	second := New(st, Config{InstanceID: "second", Liveness: liveness, Heartbeat: heartbeat})
	if err := second.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually("both instances take turns", func() bool { return first.batch.TakingTurns() && second.batch.TakingTurns() })
	if err := second.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	eventually("the first instance's writers go back to side by side", func() bool { return !first.batch.TakingTurns() })
}
