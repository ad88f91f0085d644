package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// InsertSends stores many sends at once, each key once: a key already taken, or given
// twice, leaves the later send unstored (0) for InsertSend to sort out.
func TestInsertSends(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		c, _, _ := st.EnsureCustomer(ctx, "acme")
		b, err := st.CreateBot(ctx, c.ID, "0123456789abcdef", "demo")
		if err != nil {
			t.Fatal(err)
		}
		uid, err := st.UpsertUserID(ctx, st.Writer(), store.UserUpsert{BotID: b.ID, ChannelUserID: "919876543210", Channel: "whatsapp"})
		if err != nil {
			t.Fatal(err)
		}
		send := func(key, owner string) store.NewSend {
			return store.NewSend{Key: key, Owner: owner, Message: store.Message{BotID: b.ID, UserID: uid, Channel: "whatsapp",
				Sender: store.SenderBot, Type: "text", Text: key, Status: store.MsgPending, CreatedAt: 1}}
		}
		if _, inserted, err := st.InsertSend(ctx, st.Writer(), send("taken", "").Message, "taken", "", 0); err != nil || !inserted {
			t.Fatalf("InsertSend = %v, %v", inserted, err)
		}
		var batch []store.NewSend
		for i := range 150 { // more than one statement's worth
			batch = append(batch, send(fmt.Sprintf("k%d", i), "me"))
		}
		batch = append(batch, send("taken", "me"), send("k7", "me"))
		ids, err := st.InsertSends(ctx, st.Writer(), batch)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int64]bool{}
		for i, id := range ids {
			want := i < 150
			if (id != 0) != want {
				t.Fatalf("send %d (%s): id %d, stored = %v", i, batch[i].Key, id, want)
			}
			if id != 0 && seen[id] {
				t.Fatalf("id %d given twice", id)
			}
			seen[id] = true
		}
		var n int
		if err := st.Writer().QueryRow(ctx, `SELECT COUNT(*) FROM messages WHERE bot_id = $1 AND owner = 'me'`, b.ID).Scan(&n); err != nil || n != 150 {
			t.Fatalf("stored %d sends owned by me (%v), want 150", n, err)
		}
	})
}
