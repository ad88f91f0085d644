package store_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// newBot makes a customer and a bot and returns the bot's id.
func newBot(t *testing.T, st *store.Store, key string) int64 {
	t.Helper()
	ctx := context.Background()
	c, _, err := st.EnsureCustomer(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.CreateBot(ctx, c.ID, key, key)
	if err != nil {
		t.Fatal(err)
	}
	return b.ID
}

// userAttrRows reads user_attrs as "user_id name=value" lines, sorted.
func userAttrRows(t *testing.T, st *store.Store) []string {
	t.Helper()
	rows, err := st.Reader().Query(context.Background(), `SELECT user_id, name, value FROM user_attrs`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id int64
		var name, value string
		if err := rows.Scan(&id, &name, &value); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d %s=%s", id, name, value))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// wantAttrRows is what user_attrs must hold for the users' string attributes.
func wantAttrRows(t *testing.T, st *store.Store) []string {
	t.Helper()
	rows, err := st.Reader().Query(context.Background(), `SELECT id FROM users`)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	var out []string
	for _, id := range ids {
		u, err := st.UserByID(context.Background(), nil, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range slices.Sorted(maps.Keys(u.Attrs)) {
			v := []rune(u.Attrs[k])
			out = append(out, fmt.Sprintf("%d %s=%s", id, k, string(v[:min(len(v), 200)])))
		}
	}
	slices.Sort(out)
	return out
}

// TestUserAttrsFollowWrites: every way a user's attributes change keeps user_attrs equal
// to them (the triggers of migration 00008).
func TestUserAttrsFollowWrites(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		bot := newBot(t, st, "aaaaaaaaaaaaaaaa")
		long := strings.Repeat("é", 250)
		steps := []struct {
			name string
			do   func() error
		}{
			{"create", func() error {
				_, err := st.UpsertUser(ctx, st.Writer(), store.UserUpsert{BotID: bot, ChannelUserID: "1", Channel: "whatsapp",
					Attrs: map[string]string{"city": "Pune", "tier": "gold", "note": long}, Defaults: map[string]string{"user.user_name": "1"}})
				return err
			}},
			{"merge the same again", func() error {
				_, err := st.UpsertUserID(ctx, st.Writer(), store.UserUpsert{BotID: bot, ChannelUserID: "1", Channel: "whatsapp",
					Attrs: map[string]string{"city": "Pune"}})
				return err
			}},
			{"merge a change and a new one", func() error {
				_, err := st.UpsertUser(ctx, st.Writer(), store.UserUpsert{BotID: bot, ChannelUserID: "1", Channel: "whatsapp",
					Attrs: map[string]string{"city": "Mumbai", "order": "42"}})
				return err
			}},
			{"second user", func() error {
				_, err := st.UpsertUser(ctx, st.Writer(), store.UserUpsert{BotID: bot, ChannelUserID: "2", Channel: "rcs",
					Attrs: map[string]string{"city": "Mumbai"}})
				return err
			}},
			{"created by a run's first commit", func() error {
				return st.InTx(ctx, func(tx store.Tx) error {
					return st.QueueUpsertUser(tx, store.UserUpsert{BotID: bot, ChannelUserID: "3", Channel: "whatsapp",
						Attrs: map[string]string{"city": "Goa"}, Defaults: map[string]string{"user.user_name": "3"}})
				})
			}},
			{"created by a run's first commit, nothing to merge", func() error {
				return st.InTx(ctx, func(tx store.Tx) error {
					return st.QueueUpsertUser(tx, store.UserUpsert{BotID: bot, ChannelUserID: "4", Channel: "whatsapp",
						Attrs: map[string]string{"city": "Goa"}, Unchanged: true})
				})
			}},
			{"a run's first commit for a user that exists", func() error {
				return st.InTx(ctx, func(tx store.Tx) error {
					return st.QueueUpsertUser(tx, store.UserUpsert{BotID: bot, ChannelUserID: "3", Channel: "whatsapp",
						Attrs: map[string]string{"city": "Delhi"}})
				})
			}},
			{"patch: set and clear", func() error {
				u, err := st.UserByChannelID(ctx, bot, "1")
				if err != nil {
					return err
				}
				return st.PatchUserAttrs(ctx, st.Writer(), u.ID, map[string]string{"tier": "silver", "note": long + "x"}, []string{"order"})
			}},
			{"delete a user", func() error {
				_, err := st.Writer().Exec(ctx, `DELETE FROM users WHERE channel_user_id = '2'`)
				return err
			}},
		}
		for _, s := range steps {
			if err := s.do(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			got, want := userAttrRows(t, st), wantAttrRows(t, st)
			if !slices.Equal(got, want) {
				t.Fatalf("after %s: user_attrs\n%s\nwant\n%s", s.name, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
	})
}

// TestUserAttrsBackfill: migration 00008 indexes the users stored before it.
func TestUserAttrsBackfill(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		bot := newBot(t, st, "aaaaaaaaaaaaaaaa")
		if err := st.MigrateDownTo(ctx, 7); err != nil {
			t.Fatal(err)
		}
		cast := ""
		if st.Dialect() == store.Postgres {
			cast = "::jsonb"
		}
		for i, attrs := range []string{`{"city": "Pune", "tier": "gold"}`, `{"city": "Pune", "n": "5"}`, `{}`} {
			if _, err := st.Writer().Exec(ctx, `INSERT INTO users (bot_id, channel_user_id, channel, attrs, created_at, updated_at)
				VALUES ($1, $2, 'whatsapp', $3`+cast+`, 1, 1)`, bot, fmt.Sprint(i), attrs); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		got := userAttrRows(t, st)
		if want := wantAttrRows(t, st); len(got) != 4 || !slices.Equal(got, want) {
			t.Fatalf("user_attrs after the backfill: %v, want %v", got, want)
		}
		users, pg, err := st.UsersByAttribute(ctx, bot, "city", "Pune", store.PageQuery{Size: 10})
		if err != nil || pg.Total != 2 || len(users) != 2 || users[0].ChannelUserID != "0" || users[1].ChannelUserID != "1" {
			t.Fatalf("city=Pune after the backfill: %v, %+v, %v", users, pg, err)
		}
	})
}

// TestUsersByLongAttribute: a value longer than user_attrs keeps is matched whole.
func TestUsersByLongAttribute(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		bot := newBot(t, st, "aaaaaaaaaaaaaaaa")
		long := strings.Repeat("ü", 200)
		for i, v := range []string{long + "a", long + "b", long, long + "a"} {
			if _, err := st.UpsertUser(ctx, st.Writer(), store.UserUpsert{BotID: bot, ChannelUserID: fmt.Sprint(i), Channel: "whatsapp",
				Attrs: map[string]string{"note": v}}); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			value string
			want  []string
		}{{long + "a", []string{"0", "3"}}, {long + "b", []string{"1"}}, {long, []string{"2"}}, {long + "c", nil}} {
			for _, skip := range []int64{0, 1} {
				users, pg, err := st.UsersByAttribute(ctx, bot, "note", c.value, store.PageQuery{Size: 10, Skip: skip})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, u := range users {
					got = append(got, u.ChannelUserID)
				}
				want := c.want[min(int(skip), len(c.want)):]
				if pg.Total != int64(len(c.want)) || !slices.Equal(got, want) && len(got)+len(want) > 0 {
					t.Fatalf("note=%.5s…(%d chars) skip %d: %v, total %d; want %v, total %d", c.value, len([]rune(c.value)), skip, got, pg.Total, want, len(c.want))
				}
			}
		}
	})
}

// TestListPlansUseIndexes: the users and conversations APIs' count and skip read only an
// index, and their page reads by key, on both engines; the sends sweep reads its index.
func TestListPlansUseIndexes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		bot := newBot(t, st, "aaaaaaaaaaaaaaaa")
		after := &store.PageKey{Time: 5, ID: 7}
		users := st.UsersByAttributeSQL(bot, "city", "Pune", after, 100)
		conv := store.ConversationSQL(1, 0, 1<<50, after, 500)
		cases := []struct {
			name, query string
			args        []any
			// sqlite and postgres are what the plan must say on each engine.
			sqlite, postgres []string
		}{
			{"users count", users.Count(), users.FilterArgs(),
				[]string{"SEARCH a USING PRIMARY KEY (bot_id=? AND name=? AND value=?)"}, []string{"Index Only Scan using user_attrs_pkey"}},
			{"users skip", users.Seek() + " LIMIT 1 OFFSET 10", users.FilterArgs(),
				[]string{"SEARCH a USING PRIMARY KEY (bot_id=? AND name=? AND value=?)"}, []string{"Index Only Scan using user_attrs_pkey"}},
			{"users skip back", users.SeekBack() + " LIMIT 1 OFFSET 10", users.FilterArgs(),
				[]string{"SEARCH a USING PRIMARY KEY (bot_id=? AND name=? AND value=?)"}, []string{"Index Only Scan Backward using user_attrs_pkey"}},
			{"users page", users.PageSQL(), users.PageArgs(),
				[]string{"SEARCH a USING PRIMARY KEY (bot_id=? AND name=? AND value=? AND user_id>?)", "SEARCH u USING INTEGER PRIMARY KEY"},
				[]string{"Index Only Scan using user_attrs_pkey", "Index Scan using users_pkey"}},
			{"conversation count", conv.Count(), conv.FilterArgs(),
				[]string{"SEARCH messages USING COVERING INDEX messages_user_time"}, []string{"Index Only Scan using messages_user_time"}},
			{"conversation skip", conv.Seek() + " LIMIT 1 OFFSET 10", conv.FilterArgs(),
				[]string{"SEARCH messages USING COVERING INDEX messages_user_time"}, []string{"Index Only Scan using messages_user_time"}},
			{"conversation skip back", conv.SeekBack() + " LIMIT 1 OFFSET 10", conv.FilterArgs(),
				[]string{"SEARCH messages USING COVERING INDEX messages_user_time"}, []string{"Index Only Scan Backward using messages_user_time"}},
			{"conversation page", conv.PageSQL(), conv.PageArgs(),
				[]string{"SEARCH messages USING INDEX messages_user_time (user_id=? AND created_at>? AND created_at<?)"},
				[]string{"Index Scan using messages_user_time"}},
		}
		// The sends sweep, every half second on the writer, reads the few pending sends from
		// their partial index, not every message in id order.
		plan := explain(t, st, st.ClaimOrphanSendsSQL(), []any{"me", 1, 1, 10})
		if !strings.Contains(plan, "messages_sending") {
			t.Errorf("the sends sweep does not use messages_sending:\n%s", plan)
		}
		for _, c := range cases {
			plan := explain(t, st, c.query, c.args)
			want := c.sqlite
			if st.Dialect() == store.Postgres {
				want = c.postgres
			}
			for _, w := range want {
				if !strings.Contains(plan, w) {
					t.Errorf("%s: the plan does not say %q:\n%s", c.name, w, plan)
				}
			}
			for _, bad := range []string{"SCAN a", "SCAN messages", "SCAN u", "Seq Scan", "Sort", "TEMP B-TREE", "Merge Join"} {
				if strings.Contains(plan, bad) {
					t.Errorf("%s: the plan has %q:\n%s", c.name, bad, plan)
				}
			}
		}
	})
}

// explain returns a statement's query plan. On PostgreSQL, whose planner would rather scan
// the tiny test tables, sequential and bitmap scans are turned off: the test asks whether
// the statement can use the index as it must, which is what it will do on a large table.
func explain(t *testing.T, st *store.Store, query string, args []any) string {
	t.Helper()
	ctx := context.Background()
	var lines []string
	err := st.InTx(ctx, func(tx store.Tx) error {
		q := "EXPLAIN QUERY PLAN " + query
		if st.Dialect() == store.Postgres {
			if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `SET LOCAL enable_bitmapscan = off`); err != nil {
				return err
			}
			q = "EXPLAIN " + query
		}
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if st.Dialect() == store.Postgres {
				var line string
				if err := rows.Scan(&line); err != nil {
					return err
				}
				lines = append(lines, line)
				continue
			}
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				return err
			}
			lines = append(lines, detail)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatalf("explain %s: %v", query, err)
	}
	return strings.Join(lines, "\n")
}
