package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// TestBroadcastTallies moves a broadcast's recipients along every path that changes the
// status they show: refused, sent, a delivery status before and after they are marked
// sent, one for a message that is not their last, a late one that must not undo a read,
// a send that fails on settling after its recipient was marked sent (a resumed send),
// and a cancellation. After each step the totals, read from the tally, must equal a
// count of every recipient and its last message. Then the tally's migration and the
// next two (the request in a table of its own, the summary stored) are rolled back and
// applied again: the backfill must count the same, the request come through, and the
// summary be made again from it.
func TestBroadcastTallies(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		c, _, err := st.EnsureCustomer(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		bot, err := st.CreateBot(ctx, c.ID, "0123456789abcdef", "demo")
		if err != nil {
			t.Fatal(err)
		}
		const recipients, messages = 8, 2
		const request = `{"broadcastTitle": "tallied", "audience": {"rule": {"channels": ["whatsapp"], "channelUserIds": ["919876543200"]}}, "users": []}`
		const summary = `{"broadcastTitle": "tallied", "audience": {"rule": {"channels": ["whatsapp"]}}}`
		ids := make([]string, recipients)
		users := make([]int64, recipients)
		for i := range ids {
			ids[i] = fmt.Sprintf("9198765432%02d", i)
			if users[i], err = st.UpsertUserID(ctx, st.Writer(), store.UserUpsert{BotID: bot.ID, ChannelUserID: ids[i], Channel: "whatsapp"}); err != nil {
				t.Fatal(err)
			}
		}
		id, _, err := st.BeginBroadcast(ctx, store.NewBroadcast{Broadcast: store.Broadcast{BotID: bot.ID, APIVersion: 1, Request: []byte(request), Summary: []byte(summary),
			Content: []byte(`[{"type": "text"}, {"type": "text"}]`), Channels: []string{"whatsapp"}, PublishAt: 1, CreatedAt: 1}, RecipientIDs: ids}, "me", 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.AddBroadcastRecipients(ctx, st.Writer(), id, ids, 0, 1); err != nil {
			t.Fatal(err)
		}
		if err := st.EndAccepting(ctx, id, store.BroadcastScheduled); err != nil {
			t.Fatal(err)
		}
		b, err := st.BroadcastByID(ctx, bot.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		check := func(step string) store.BroadcastTotals {
			t.Helper()
			got, err := st.BroadcastTotals(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			want, err := st.RecountBroadcast(ctx, b, messages)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("%s: totals %+v, counted %+v", step, got, want)
			}
			return got
		}
		mark := func(seqs []int, from, to string) {
			t.Helper()
			if err := st.InTx(ctx, func(tx store.Tx) error {
				_, err := st.MarkRecipients(ctx, tx, b, messages, seqs, from, to, "")
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		status := func(seq, i int, s string) {
			t.Helper()
			if found, err := st.ApplyDeliveryStatus(ctx, bot.ID, fmt.Sprintf("wamid.%d.%d", i, seq), s, ""); err != nil || !found {
				t.Fatalf("status %s of message %d of %d: found %v, %v", s, i, seq, found, err)
			}
		}
		check("accepted")
		mark([]int{0, 1}, store.RecipientQueued, store.RecipientFailed)
		check("refused")
		sending := []int{2, 3, 4, 5, 7} // 6 stays queued, to be cancelled
		mark(sending, store.RecipientQueued, store.RecipientSending)
		check("sending")
		// Every recipient's two messages are sent, but recipient 7's last is still pending.
		var sends []store.NewSend
		for _, seq := range sending {
			for i := range messages {
				pid := fmt.Sprintf("wamid.%d.%d", i, seq)
				m := store.NewSend{Key: store.BroadcastSendKey(id, i, seq), Message: store.Message{BotID: bot.ID, UserID: users[seq], Channel: "whatsapp",
					Sender: store.SenderBot, Type: "text", Text: "hi", Status: store.MsgSent, ProviderID: &pid, CreatedAt: 1}}
				if seq == 7 && i == messages-1 {
					m.Owner, m.Message.Status, m.Message.ProviderID = "me", store.MsgPending, nil
				}
				sends = append(sends, m)
			}
		}
		sendIDs, err := st.InsertSends(ctx, st.Writer(), sends)
		if err != nil {
			t.Fatal(err)
		}
		status(2, 1, store.MsgDelivered) // before its recipient is marked sent
		status(3, 0, store.MsgRead)      // not the last message
		check("statuses while sending")
		mark(sending, store.RecipientSending, store.RecipientSent)
		check("sent")
		status(4, 1, store.MsgDelivered)
		status(4, 1, store.MsgRead)
		status(4, 1, store.MsgDelivered) // late: the message stays read
		status(5, 1, store.MsgFailed)
		check("statuses after sent")
		if ok, err := st.SettleSend(ctx, st.Writer(), sendIDs[len(sendIDs)-1], "me", store.MsgFailed, nil, "refused"); err != nil || !ok {
			t.Fatalf("settle = %v, %v", ok, err)
		}
		check("settled as failed")
		if _, err := st.CancelBroadcast(ctx, bot.ID, id); err != nil {
			t.Fatal(err)
		}
		final := check("cancelled")
		want := store.BroadcastTotals{Recipients: 8, Sent: 3, Delivered: 2, Read: 1, Failed: 4, Cancelled: 1}
		if final != want {
			t.Fatalf("final totals %+v, want %+v", final, want)
		}
		if err := st.MigrateDownTo(ctx, 11); err != nil {
			t.Fatal(err)
		}
		if err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if again := check("backfilled"); again != want {
			t.Fatalf("backfilled totals %+v, want %+v", again, want)
		}
		after, err := st.BroadcastByID(ctx, bot.ID, id)
		if err != nil || string(after.Request) != request || !sameJSON(t, after.Summary, summary) {
			t.Fatalf("after the migrations: request %s, summary %s, %v", after.Request, after.Summary, err)
		}
	})
}

// sameJSON reports whether got holds the same JSON value as want, however spaced and
// ordered (each engine writes the summary its own way).
func sameJSON(t *testing.T, got []byte, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		return false
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(g, w)
}
