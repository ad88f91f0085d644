package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// stepFixture makes a customer, a bot and a flow, and returns the customer id and a step
// of the flow.
func stepFixture(t *testing.T, st *store.Store, name string) (int64, store.HTTPStep) {
	t.Helper()
	ctx := context.Background()
	c, _, err := st.EnsureCustomer(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.CreateBot(ctx, c.ID, "bot-"+name, "bot")
	if err != nil {
		t.Fatal(err)
	}
	f, err := st.SaveFlow(ctx, b.ID, "f", "", []byte(`{}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	return c.ID, store.HTTPStep{FlowID: f.ID, NodeID: "call"}
}

// TestClaimHTTPCalls: the limit holds within any 60 s, however the calls fall on
// calendar minutes; times are given, never read from the clock.
func TestClaimHTTPCalls(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		acme, _ := stepFixture(t, st, "acme")
		globex, _ := stepFixture(t, st, "globex")
		initech, _ := stepFixture(t, st, "initech")
		seven := 7
		for _, c := range []int64{globex, initech} {
			if err := st.SetCustomerHTTPRate(ctx, c, &seven); err != nil {
				t.Fatal(err)
			}
		}
		const minute = int64(60_000)
		w := int64(1_700_000_000_000) / minute * minute // a calendar minute's start
		// claims makes `claims` claims of n calls each at `at`, usable for span ms, and
		// counts those allowed.
		claims := func(customer, at, span int64, claims, n int) int {
			t.Helper()
			ok := 0
			for range claims {
				allowed, err := st.ClaimHTTPCalls(ctx, nil, customer, at, at+span, 3, n)
				if err != nil {
					t.Fatal(err)
				}
				if allowed {
					ok++
				}
			}
			return ok
		}
		for _, tc := range []struct {
			name     string
			customer int64
			at, span int64
			claims   int
			n        int
			want     int
		}{
			{"default limit", acme, w, 0, 5, 1, 3},
			{"full until 60 s have passed", acme, w + minute - 1, 0, 2, 1, 0},
			{"60 s later the first calls no longer count", acme, w + minute, 0, 4, 1, 3},
			{"a clock behind counts the newer calls", acme, w, 0, 1, 1, 0},
			{"account's own limit, late in a minute", globex, w + 50_000, 0, 10, 1, 7},
			{"the next calendar minute is no reset", globex, w + minute, 0, 3, 1, 0},
			{"nor its last instant", globex, w + 50_000 + minute - 1, 0, 1, 1, 0},
			{"60 s after the calls", globex, w + 50_000 + minute, 0, 8, 1, 7},
			{"blocks: all or none", initech, w, 0, 4, 3, 2},
			{"the rest one by one", initech, w, 0, 2, 1, 1},
			{"a block over the limit is refused", acme, w + 10*minute, 0, 1, 4, 0},
			{"and counts nothing", acme, w + 10*minute, 0, 4, 1, 3},
			{"a block usable for 5 s", initech, w + 2*minute, 5_000, 1, 3, 1},
			{"counts 60 s from its span's end", initech, w + 3*minute + 4_999, 0, 8, 1, 4},
			{"and no longer after", initech, w + 3*minute + 5_000, 0, 4, 1, 3},
		} {
			if got := claims(tc.customer, tc.at, tc.span, tc.claims, tc.n); got != tc.want {
				t.Fatalf("%s: %d of %d claims of %d allowed, want %d", tc.name, got, tc.claims, tc.n, tc.want)
			}
		}
		if _, err := st.ClaimHTTPCalls(ctx, nil, acme, w, w, 3, 0); err == nil {
			t.Fatal("a claim of no calls did not fail")
		}

		// Raising the limit takes effect at once.
		ten := 10
		if err := st.SetCustomerHTTPRate(ctx, globex, &ten); err != nil {
			t.Fatal(err)
		}
		if got := claims(globex, w+50_000+minute, 0, 5, 1); got != 3 {
			t.Fatalf("after raising the limit to 10: %d more claims allowed, want 3", got)
		}

		// The clean-up forgets claims past the window, and only those.
		if err := st.DeleteExpiredHTTPClaims(ctx, w+50_000+minute); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := st.Reader().QueryRow(ctx, `SELECT COUNT(*) FROM http_rate_claims WHERE ends_at < $1`, w+50_000+minute).Scan(&left); err != nil || left != 0 {
			t.Fatalf("%d expired claims left (%v)", left, err)
		}
		if got := claims(globex, w+50_000+minute, 0, 1, 1); got != 0 {
			t.Fatal("the clean-up forgot claims that still count")
		}
	})
}

func TestHTTPStepLogsKeepTheLast20(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		_, k := stepFixture(t, st, "acme")
		if _, err := st.HTTPStepState(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("state of a step never called: %v, want ErrNotFound", err)
		}
		const calls = 25
		for i := range calls {
			err := st.InTx(ctx, func(tx store.Tx) error {
				s, err := st.CountHTTPStepCalls(ctx, tx, k, 1, int64(1000+i))
				if err != nil {
					return err
				}
				if s.Calls != int64(i) {
					return fmt.Errorf("call %d follows %d calls", i+1, s.Calls)
				}
				seq := s.Calls + 1
				return st.PutHTTPStepLog(ctx, tx, k, store.HTTPStepLog{Seq: seq, RunID: fmt.Sprint("run-", seq),
					At: int64(1000 + i), DurationUS: 1500, Method: "GET", URL: "https://example.com/", Status: 200,
					Detail: []byte(fmt.Sprintf(`{"n": %d}`, seq))})
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		logs, err := st.HTTPStepLogs(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if len(logs) != store.HTTPStepLogsKept || logs[0].Seq != calls || logs[len(logs)-1].Seq != calls-store.HTTPStepLogsKept+1 {
			t.Fatalf("kept %d logs from %d to %d; want 20 from 25 to 6", len(logs), logs[0].Seq, logs[len(logs)-1].Seq)
		}
		if logs[0].Detail != nil || logs[0].RunID != "run-25" || logs[0].Status != 200 || logs[0].DurationUS != 1500 {
			t.Fatalf("newest log = %+v", logs[0])
		}
		for _, tc := range []struct {
			seq  int64
			want string // "" for not found
		}{{25, `{"n": 25}`}, {6, `{"n": 6}`}, {5, ""}, {1, ""}, {26, ""}, {0, ""}, {-5, ""}} {
			l, err := st.HTTPStepLog(ctx, k, tc.seq)
			switch {
			case tc.want == "" && !errors.Is(err, store.ErrNotFound):
				t.Errorf("log %d: %+v, %v; want ErrNotFound", tc.seq, l, err)
			case tc.want != "" && (err != nil || string(l.Detail) != tc.want || l.Seq != tc.seq):
				t.Errorf("log %d: %+v, %v; want detail %s", tc.seq, l, err, tc.want)
			}
		}
		s, err := st.HTTPStepState(ctx, k)
		if err != nil || s.Calls != calls || s.LastCallAt == nil || *s.LastCallAt != 1000+calls-1 {
			t.Fatalf("state = %+v, %v", s, err)
		}
	})
}

func TestHTTPStepShapesAndAlerts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		_, k := stepFixture(t, st, "acme")
		// Remap and reset of a step never called do nothing, and fail nothing.
		if err := st.RemapHTTPStep(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := st.ResetHTTPStepAlert(ctx, k); err != nil {
			t.Fatal(err)
		}
		// Three calls at once: numbered after the calls before them.
		for _, tc := range []struct {
			n      int
			before int64
		}{{1, 0}, {3, 1}, {2, 4}} {
			s, err := st.CountHTTPStepCalls(ctx, st.Writer(), k, tc.n, 1)
			if err != nil || s.Calls != tc.before {
				t.Fatalf("count %d calls: %+v, %v; want %d calls before", tc.n, s, err, tc.before)
			}
		}
		if _, err := st.CountHTTPStepCalls(ctx, st.Writer(), k, 0, 1); err == nil {
			t.Fatal("counting no calls did not fail")
		}
		if err := st.SetHTTPStepShapes(ctx, st.Writer(), k, "$ object", "$ array"); err != nil {
			t.Fatal(err)
		}
		if err := st.RemapHTTPStep(ctx, k); err != nil {
			t.Fatal(err)
		}
		s, err := st.HTTPStepState(ctx, k)
		if err != nil || s.Shape != "$ array" || s.ChangedShape != "" {
			t.Fatalf("after remap: %+v, %v", s, err)
		}
		// Remapping a step that is not flagged keeps its structure.
		if err := st.RemapHTTPStep(ctx, k); err != nil {
			t.Fatal(err)
		}
		if s, _ := st.HTTPStepState(ctx, k); s.Shape != "$ array" {
			t.Fatalf("second remap lost the structure: %+v", s)
		}

		const hour = int64(3_600_000)
		for _, tc := range []struct {
			name  string
			reset bool
			now   int64
			want  bool
		}{
			{"first failure", false, 10 * hour, true},
			{"within the hour", false, 10*hour + 1, false},
			{"just before the hour", false, 11*hour - 1, false},
			{"after the hour", false, 11 * hour, true},
			{"again within the hour", false, 11*hour + 5, false},
			{"after a reset", true, 11*hour + 6, true},
			{"within the hour after the reset", false, 11*hour + 7, false},
		} {
			if tc.reset {
				if err := st.ResetHTTPStepAlert(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
			got, err := st.ClaimHTTPStepAlert(ctx, st.Writer(), k, tc.now, tc.now-hour)
			if err != nil || got != tc.want {
				t.Fatalf("%s: claimed %v, %v; want %v", tc.name, got, err, tc.want)
			}
		}
		if s, _ := st.HTTPStepState(ctx, k); s.AlertSentAt == nil || *s.AlertSentAt != 11*hour+6 {
			t.Fatalf("alert_sent_at = %v, want the last claim", s.AlertSentAt)
		}
	})
}

// TestMigrateOutOfOrder: a database that got a later migration before this branch's
// 00002 (because they were written side by side) still gets 00002.
func TestMigrateOutOfOrder(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		// Undo 00002 alone, as if the database had been migrated without it.
		for _, q := range []string{
			`DROP TABLE IF EXISTS http_rate_windows`, `DROP TABLE http_step_logs`, `DROP TABLE http_steps`,
			`DELETE FROM goose_db_version WHERE version_id = 2`,
		} {
			if _, err := st.Writer().Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		var later int
		if err := st.Reader().QueryRow(ctx, `SELECT COUNT(*) FROM goose_db_version WHERE version_id > 2`).Scan(&later); err != nil || later == 0 {
			t.Fatalf("the database has %d migrations after 00002 (%v); the test needs one", later, err)
		}
		if err := st.Migrate(ctx); err != nil {
			t.Fatalf("migrate with 00002 missing: %v", err)
		}
		_, k := stepFixture(t, st, "acme")
		if _, err := st.CountHTTPStepCalls(ctx, st.Writer(), k, 1, 1); err != nil {
			t.Fatalf("http_steps after the out-of-order migration: %v", err)
		}
	})
}
