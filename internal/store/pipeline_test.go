package store_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// pipelineEnv is a bot with a flow, on which runs can be stored.
type pipelineEnv struct {
	st     *store.Store
	botID  int64
	flowID int64
}

func newPipelineEnv(t *testing.T, st *store.Store) pipelineEnv {
	t.Helper()
	ctx := context.Background()
	c, _, err := st.EnsureCustomer(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.CreateBot(ctx, c.ID, fmt.Sprintf("%016x", time.Now().UnixNano()), "demo")
	if err != nil {
		t.Fatal(err)
	}
	f, err := st.SaveFlow(ctx, b.ID, "f", "", []byte(`{}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	return pipelineEnv{st: st, botID: b.ID, flowID: f.ID}
}

func (e pipelineEnv) run(id string) store.Run {
	owner := "me"
	return store.Run{ID: id, BotID: e.botID, FlowID: e.flowID, FlowVersion: 1, Channel: "whatsapp", Status: store.RunRunning,
		State: []byte(`{}`), Owner: &owner, CreatedAt: 1, UpdatedAt: 1}
}

func (e pipelineEnv) users(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.st.Reader().QueryRow(context.Background(), `SELECT COUNT(*) FROM users WHERE bot_id = $1`, e.botID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestQueuedStatements holds Tx.QueueExec and Tx.QueueRow to their contract on both
// engines: queued statements run in order with direct ones, commit together, and any
// failure (a statement's or a check's) rolls back all of them.
func TestQueuedStatements(t *testing.T) {
	errCheck := errors.New("check failed")
	user := func(e pipelineEnv, digits string) store.UserUpsert {
		return store.UserUpsert{BotID: e.botID, ChannelUserID: digits, Channel: "whatsapp", Attrs: map[string]string{"a": "1"}}
	}
	cases := []struct {
		name      string
		fn        func(ctx context.Context, e pipelineEnv, tx store.Tx) error
		fails     bool
		wantErr   error // when set, the error InTx must return
		wantUsers int
	}{
		{"a direct statement sees what was queued before it", func(ctx context.Context, e pipelineEnv, tx store.Tx) error {
			if err := e.st.QueueUpsertUser(tx, user(e, "911")); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM users WHERE bot_id = $1`, e.botID).Scan(&n); err != nil {
				return err
			}
			if n != 1 {
				return errors.New("the queued user is not visible")
			}
			return nil
		}, false, nil, 1},
		{"a failing check rolls everything back", func(ctx context.Context, e pipelineEnv, tx store.Tx) error {
			if err := e.st.QueueUpsertUser(tx, user(e, "911")); err != nil {
				return err
			}
			return tx.QueueExec(`UPDATE users SET channel = 'sms' WHERE bot_id = $1`, []any{e.botID},
				func(n int64) error { return errCheck })
		}, true, errCheck, 0},
		{"a failing statement rolls the earlier ones back", func(ctx context.Context, e pipelineEnv, tx store.Tx) error {
			if err := e.st.QueueUpsertUser(tx, user(e, "911")); err != nil {
				return err
			}
			// No user 912: the run's user_id is NULL, which the schema refuses.
			return e.st.QueueRunOfUser(tx, e.run("r-missing-user"), "912")
		}, true, nil, 0},
		{"a failing scan rolls everything back", func(ctx context.Context, e pipelineEnv, tx store.Tx) error {
			if err := e.st.QueueUpsertUser(tx, user(e, "911")); err != nil {
				return err
			}
			return tx.QueueRow(`SELECT id FROM users WHERE bot_id = $1`, []any{e.botID}, func(r store.Row) error {
				var id int64
				if err := r.Scan(&id); err != nil {
					return err
				}
				return errCheck
			})
		}, true, errCheck, 0},
	}
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				// Each case its own bot, so counts do not mix.
				e := newPipelineEnv(t, st)
				err := st.InTx(context.Background(), func(tx store.Tx) error { return tc.fn(context.Background(), e, tx) })
				if (err != nil) != tc.fails || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("InTx = %v; want failure %v (%v)", err, tc.fails, tc.wantErr)
				}
				if got := e.users(t); got != tc.wantUsers {
					t.Fatalf("%d users stored; want %d", got, tc.wantUsers)
				}
			})
		}
	})
}

// TestQueuedFirstCommit stores a triggered run's first commit the way the engine does,
// every statement queued: the run and its message find the user by channel id and by
// run, and the user's attributes are patched through the run.
func TestQueuedFirstCommit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newPipelineEnv(t, st)
		runID := "r-first"
		step := 1
		err := st.InTx(ctx, func(tx store.Tx) error {
			if err := st.QueueUpsertUser(tx, store.UserUpsert{BotID: e.botID, ChannelUserID: "919", Channel: "whatsapp",
				Attrs: map[string]string{"order": "7", "gone": "x"}}); err != nil {
				return err
			}
			if err := st.QueueRunOfUser(tx, e.run(runID), "919"); err != nil {
				return err
			}
			if err := st.AddMessage(ctx, tx, store.Message{BotID: e.botID, RunID: &runID, Step: &step, Channel: "whatsapp",
				Sender: "bot", Type: "text", Text: "hi", Status: store.MsgSent}); err != nil {
				return err
			}
			return st.PatchRunUserAttrs(ctx, tx, runID, map[string]string{"tier": "vip"}, []string{"gone"})
		})
		if err != nil {
			t.Fatal(err)
		}
		u, err := st.UserByChannelID(ctx, e.botID, "919")
		if err != nil {
			t.Fatal(err)
		}
		if u.Attrs["order"] != "7" || u.Attrs["tier"] != "vip" || u.Attrs["gone"] != "" {
			t.Errorf("attributes %v; want order=7 tier=vip, no gone", u.Attrs)
		}
		r, err := st.RunByID(ctx, nil, runID)
		if err != nil || r.UserID != u.ID {
			t.Fatalf("run %+v, %v; want user %d", r, err, u.ID)
		}
		m, err := st.MessageByRunStep(ctx, nil, runID, step)
		if err != nil || m.UserID != u.ID {
			t.Fatalf("message %+v, %v; want user %d", m, err, u.ID)
		}
	})
}

// TestUpdateRunFenced: a run another instance took over fails the whole transaction
// with ErrFenced, queued or not, and nothing of it is stored.
func TestUpdateRunFenced(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newPipelineEnv(t, st)
		if _, err := st.UpsertUser(ctx, st.Writer(), store.UserUpsert{BotID: e.botID, ChannelUserID: "919", Channel: "whatsapp"}); err != nil {
			t.Fatal(err)
		}
		if err := st.InTx(ctx, func(tx store.Tx) error { return st.QueueRunOfUser(tx, e.run("r1"), "919") }); err != nil {
			t.Fatal(err)
		}
		r := e.run("r1")
		r.Node = "next"
		err := st.InTx(ctx, func(tx store.Tx) error {
			if err := st.UpdateRunOwned(ctx, tx, r, "someone else"); err != nil {
				return err
			}
			return st.PatchRunUserAttrs(ctx, tx, r.ID, map[string]string{"x": "1"}, nil)
		})
		if !errors.Is(err, store.ErrFenced) {
			t.Fatalf("InTx = %v; want ErrFenced", err)
		}
		u, err := st.UserByChannelID(ctx, e.botID, "919")
		if err != nil || u.Attrs["x"] != "" {
			t.Fatalf("user %+v, %v: the fenced transaction's write was stored", u, err)
		}
		if err := st.InTx(ctx, func(tx store.Tx) error { return st.UpdateRunOwned(ctx, tx, r, "me") }); err != nil {
			t.Fatalf("the owner's update = %v", err)
		}
		if got, _ := st.RunByID(ctx, nil, "r1"); got.Node != "next" {
			t.Fatalf("node %q after the owner's update", got.Node)
		}
	})
}

// TestUpsertUserUnchanged: a trigger that read the user as already holding its values
// leaves an existing user untouched, and still creates a missing one.
func TestUpsertUserUnchanged(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newPipelineEnv(t, st)
		before, err := st.UpsertUser(ctx, st.Writer(), store.UserUpsert{BotID: e.botID, ChannelUserID: "919", Channel: "whatsapp",
			Attrs: map[string]string{"a": "1"}})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // so that a write would change updated_at
		err = st.InTx(ctx, func(tx store.Tx) error {
			for _, digits := range []string{"919", "920"} {
				if err := st.QueueUpsertUser(tx, store.UserUpsert{BotID: e.botID, ChannelUserID: digits, Channel: "whatsapp",
					Attrs: map[string]string{"a": "2"}, Unchanged: true}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		after, err := st.UserByChannelID(ctx, e.botID, "919")
		if err != nil || after.Attrs["a"] != "1" || !after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Fatalf("existing user %+v, %v; want it untouched (%+v)", after, err, before)
		}
		created, err := st.UserByChannelID(ctx, e.botID, "920")
		if err != nil || created.Attrs["a"] != "2" {
			t.Fatalf("missing user %+v, %v; want it created", created, err)
		}
	})
}

// TestBatcherKeyed: operations with one key never run on two writers at once (they
// would wait for each other's row locks); all of them commit.
func TestBatcherKeyed(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newPipelineEnv(t, st)
		if _, err := st.UpsertUser(ctx, st.Writer(), store.UserUpsert{BotID: e.botID, ChannelUserID: "919", Channel: "whatsapp"}); err != nil {
			t.Fatal(err)
		}
		b := st.NewBatcher(4, 8)
		defer b.Close()
		var inside, overlaps atomic.Int64
		var wg sync.WaitGroup
		const n = 64
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := b.DoKeyed(ctx, "bot/919", func(ctx context.Context, tx store.Tx) error {
					if inside.Add(1) > 1 {
						overlaps.Add(1)
					}
					defer inside.Add(-1)
					time.Sleep(200 * time.Microsecond) // widen the window a second writer would use
					_, err := tx.Exec(ctx, `UPDATE users SET attrs = $1 WHERE bot_id = $2`, `{"i": "`+string(rune('a'+i%26))+`"}`, e.botID)
					return err
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if overlaps.Load() > 0 {
			t.Fatalf("%d operations of one key ran beside another", overlaps.Load())
		}
		if got := st.Stats(); got.Ops < n {
			t.Fatalf("batcher counted %d operations; want at least %d", got.Ops, n)
		}
	})
}

// TestPatchRunUserAttrsUnchanged: a patch that would change nothing (a flow that saves
// the same value every run) leaves the user's row alone; one that changes something
// writes it.
func TestPatchRunUserAttrsUnchanged(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newPipelineEnv(t, st)
		if _, err := st.UpsertUser(ctx, st.Writer(), store.UserUpsert{BotID: e.botID, ChannelUserID: "919", Channel: "whatsapp",
			Attrs: map[string]string{"a": "1", "gone": "x"}}); err != nil {
			t.Fatal(err)
		}
		if err := st.InTx(ctx, func(tx store.Tx) error { return st.QueueRunOfUser(tx, e.run("r1"), "919") }); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name      string
			set       map[string]string
			clear     []string
			written   bool
			wantAttrs map[string]string
		}{
			{"the same value", map[string]string{"a": "1"}, nil, false, map[string]string{"a": "1", "gone": "x"}},
			{"clear a missing key", nil, []string{"never"}, false, map[string]string{"a": "1", "gone": "x"}},
			{"the same value, a missing key cleared", map[string]string{"a": "1"}, []string{"never"}, false, map[string]string{"a": "1", "gone": "x"}},
			{"a new value", map[string]string{"a": "2"}, nil, true, map[string]string{"a": "2", "gone": "x"}},
			{"a new key", map[string]string{"b": "1"}, nil, true, map[string]string{"a": "2", "b": "1", "gone": "x"}},
			{"clear a key", nil, []string{"gone"}, true, map[string]string{"a": "2", "b": "1"}},
		} {
			before, err := st.UserByChannelID(ctx, e.botID, "919")
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond) // updated_at is in ms: a write shows
			if err := st.InTx(ctx, func(tx store.Tx) error { return st.PatchRunUserAttrs(ctx, tx, "r1", tc.set, tc.clear) }); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			after, err := st.UserByChannelID(ctx, e.botID, "919")
			if err != nil {
				t.Fatal(err)
			}
			if written := !after.UpdatedAt.Equal(before.UpdatedAt); written != tc.written {
				t.Errorf("%s: row written = %v; want %v", tc.name, written, tc.written)
			}
			if !maps.Equal(after.Attrs, tc.wantAttrs) {
				t.Errorf("%s: attributes %v; want %v", tc.name, after.Attrs, tc.wantAttrs)
			}
		}
	})
}
