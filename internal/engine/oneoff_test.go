package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/msg"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// fakeProvider is a provider channel: WhatsApp-like (a repeated send is a second
// message) or, with dedup, RBM-like (a repeated key is dropped as a duplicate). It
// counts what reached it; hold blocks sends until released.
type fakeProvider struct {
	dedup bool
	mu    sync.Mutex
	// attempts counts requests per key; accepted lists the keys accepted, in order,
	// a duplicate dropped by a dedup provider not counted again.
	attempts map[string]int
	accepted []string
	order    map[string][]string // recipient → texts, in the order accepted
	refuse   map[string]*channel.Error
	// flaky fails the next n sends to a recipient with flakyErr.
	flaky    map[string]int
	flakyErr *channel.Error
	hold     chan struct{} // when not nil, every send waits for it to close
	arrived  chan string   // when not nil, hears every key as its request arrives
}

func newFakeProvider(dedup bool) *fakeProvider {
	return &fakeProvider{dedup: dedup, attempts: map[string]int{}, order: map[string][]string{}, refuse: map[string]*channel.Error{},
		flaky: map[string]int{}}
}

func (f *fakeProvider) Send(_ context.Context, to channel.Recipient, c msg.Content, key string) (channel.Sent, error) {
	f.mu.Lock()
	f.attempts[key]++
	n := f.attempts[key]
	hold, arrived := f.hold, f.arrived
	ce := f.refuse[to.ChannelUserID]
	if f.flaky[to.ChannelUserID] > 0 {
		f.flaky[to.ChannelUserID]--
		ce = f.flakyErr
	}
	if ce == nil && (n == 1 || !f.dedup) {
		f.accepted = append(f.accepted, key)
		f.order[to.ChannelUserID] = append(f.order[to.ChannelUserID], c.Text)
	}
	f.mu.Unlock()
	if arrived != nil {
		arrived <- key
	}
	if hold != nil {
		<-hold
	}
	if ce != nil {
		return channel.Sent{}, ce
	}
	return channel.Sent{ProviderMessageID: "p." + key, Status: "sent"}, nil
}

func (f *fakeProvider) External() bool        { return true }
func (f *fakeProvider) DropsDuplicates() bool { return f.dedup }

func (f *fakeProvider) counts(key string) (attempts, accepted int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range f.accepted {
		if k == key {
			accepted++
		}
	}
	return f.attempts[key], accepted
}

// providers serves "whatsapp" with a WhatsApp-like fake and "rcs" with an RBM-like one.
type providers struct{ wa, rcs *fakeProvider }

func newProviders() *providers {
	return &providers{wa: newFakeProvider(false), rcs: newFakeProvider(true)}
}

func (p *providers) Sender(_ context.Context, _ int64, ch string) (channel.Sender, error) {
	switch ch {
	case channel.WhatsApp:
		return p.wa, nil
	case channel.RCS:
		return p.rcs, nil
	}
	return nil, &channel.Error{Kind: channel.KindNotConfigured, Message: "no channel " + ch}
}

func message(b *bundle, ch, digits, text, key string) OneOff {
	return OneOff{BotID: b.botID, Channel: ch, Phone: "+" + digits, Digits: digits, Content: msg.Content{Text: text}, Key: key}
}

// waitSettled polls a one-off message until it is no longer pending.
func waitSettled(t *testing.T, st *store.Store, id int64) store.Send {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := st.SendByID(context.Background(), nil, id)
		if err != nil {
			t.Fatal(err)
		}
		if s.Status != store.MsgPending {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("message #%d is still pending (owner?)", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pendingID returns the id of the one pending one-off message of the bot.
func pendingID(t *testing.T, st *store.Store, botID int64) int64 {
	t.Helper()
	var id int64
	if err := st.Reader().QueryRow(context.Background(), `SELECT id FROM messages WHERE bot_id = $1 AND status = 'pending' AND run_id IS NULL`,
		botID).Scan(&id); err != nil {
		t.Fatalf("pending send: %v", err)
	}
	return id
}

func TestSendBatch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		p := newProviders()
		p.wa.refuse["919800000001"] = &channel.Error{Kind: channel.KindUndeliverable, ProviderCode: 131026, Message: "undeliverable"}
		p.wa.refuse["919800000002"] = &channel.Error{Kind: channel.KindRateLimited, Retryable: true, Message: "slow down"}
		b := setup(t, st, Config{Channels: p})
		ctx := context.Background()
		var sends []OneOff
		for i := range 3 {
			for j := range 4 {
				sends = append(sends, message(b, channel.WhatsApp, fmt.Sprintf("9198765%05d", j), fmt.Sprintf("m%d", i), fmt.Sprintf("k%d-%d", i, j)))
			}
		}
		sends = append(sends,
			message(b, channel.WhatsApp, "919800000001", "refused", "r1"),
			message(b, channel.WhatsApp, "919800000002", "busy", "r2"),
			message(b, "telegram", "919800000003", "nowhere", "r3"),
			message(b, channel.WhatsApp, "", "no one", "r4"))
		res, err := b.eng.SendBatch(ctx, sends)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 12 {
			if r := res[i]; r.Status != "sent" || r.MessageID == 0 || r.ProviderMessageID != "p."+sends[i].Key || r.Duplicate {
				t.Fatalf("send %d: %+v", i, r)
			}
		}
		// Each recipient got its messages in the order given.
		for j := range 4 {
			if got := p.wa.order[fmt.Sprintf("9198765%05d", j)]; strings.Join(got, ",") != "m0,m1,m2" {
				t.Fatalf("recipient %d got %v", j, got)
			}
			if got := b.texts(t, fmt.Sprintf("9198765%05d", j)); !equal(got, []string{"bot:m0", "bot:m1", "bot:m2"}) {
				t.Fatalf("conversation %d = %q", j, got)
			}
		}
		refused, busy, unknown, empty := res[12], res[13], res[14], res[15]
		if refused.Status != "failed" || refused.MessageID == 0 || refused.Failure == nil || refused.Failure.ProviderCode != 131026 {
			t.Fatalf("refused: %+v", refused)
		}
		if s, _ := st.SendByID(ctx, nil, refused.MessageID); s.Status != "failed" || !strings.Contains(s.Error, "undeliverable") {
			t.Fatalf("stored refusal: %+v", s)
		}
		if busy.Status != "failed" || busy.MessageID != 0 || !busy.Failure.Retryable {
			t.Fatalf("busy: %+v", busy)
		}
		if unknown.Failure == nil || unknown.Failure.Kind != channel.KindNotConfigured || empty.Failure == nil || empty.MessageID != 0 {
			t.Fatalf("unusable channel %+v, no recipient %+v", unknown, empty)
		}
		u, err := st.UserByChannelID(ctx, b.botID, "919800000003")
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a send to an unusable channel created its user: %+v %v", u, err)
		}

		// The same keys again: nothing is sent; every answer is the first send's.
		attempts := len(p.wa.accepted)
		again, err := b.eng.SendBatch(ctx, sends[:14])
		if err != nil {
			t.Fatal(err)
		}
		for i := range 12 {
			if r := again[i]; !r.Duplicate || r.MessageID != res[i].MessageID || r.ProviderMessageID != res[i].ProviderMessageID || r.Status != "sent" {
				t.Fatalf("retry %d: %+v, first %+v", i, r, res[i])
			}
		}
		if r := again[12]; !r.Duplicate || r.Status != "failed" || r.MessageID != refused.MessageID || !strings.Contains(r.Error, "undeliverable") {
			t.Fatalf("retried refusal: %+v", r)
		}
		if r := again[13]; r.Duplicate || r.Failure == nil {
			t.Fatalf("retried passing refusal: %+v (its key was freed, so it is tried again)", r)
		}
		if n, _ := p.wa.counts("r2"); len(p.wa.accepted) != attempts || n != 2 {
			t.Fatalf("%d accepted before, %d after; r2 tried %d times", attempts, len(p.wa.accepted), n)
		}
		if u, err := st.UserByChannelID(ctx, b.botID, "919800000003"); err == nil {
			t.Fatalf("user %+v", u)
		}
	})
}

// TestSendBatchSandbox: a local channel's messages are stored delivered, in one commit.
func TestSendBatchSandbox(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		b := setup(t, st, Config{})
		var sends []OneOff
		for i := range 300 {
			sends = append(sends, message(b, channel.WhatsApp, fmt.Sprintf("9198765%05d", i), "hello", fmt.Sprintf("b:%d", i)))
		}
		res, err := b.eng.SendBatch(context.Background(), sends)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Status != "delivered" || !strings.HasPrefix(r.ProviderMessageID, "sandbox.") || r.MessageID == 0 {
				t.Fatalf("send %d: %+v", i, r)
			}
		}
		u, err := st.UserByChannelID(context.Background(), b.botID, "919876500007")
		if err != nil || u.Attrs["user.phone_no"] != "+919876500007" || u.Attrs["user.channel"] != "whatsapp" || u.Attrs["user.user_name"] != "919876500007" {
			t.Fatalf("user %+v %v", u, err)
		}
		again, err := b.eng.SendBatch(context.Background(), sends[:1])
		if err != nil || !again[0].Duplicate || again[0].ProviderMessageID != res[0].ProviderMessageID {
			t.Fatalf("retry %+v %v", again, err)
		}
		// A caller that loaded the user passes it: the message is theirs, and the user is
		// left as it was.
		known := message(b, channel.WhatsApp, "919876500007", "again", "known")
		known.UserID, known.Phone = u.ID, "+15550000000"
		r, err := b.eng.Send(context.Background(), known)
		if err != nil || r.Status != "delivered" {
			t.Fatalf("send to a known user: %+v %v", r, err)
		}
		if s, _ := st.SendByID(context.Background(), nil, r.MessageID); s.UserID != u.ID {
			t.Fatalf("stored for user #%d, want #%d", s.UserID, u.ID)
		}
		if u2, _ := st.UserByChannelID(context.Background(), b.botID, "919876500007"); u2.Attrs["user.phone_no"] != "+919876500007" {
			t.Fatalf("the known user was updated: %v", u2.Attrs)
		}
	})
}

// TestSendCrashRecovery stops the engine, as a crash would, before and after the
// provider call of a one-off send, and shows the next instance settles the send as a
// run's interrupted send is settled: sent again where the provider drops duplicates,
// recorded as failed and never sent twice elsewhere.
func TestSendCrashRecovery(t *testing.T) {
	for _, tc := range []struct {
		channel, stage string
		attempts       int // requests the provider got in all
		status         string
	}{
		{channel.WhatsApp, "before", 0, "failed"}, // it never left: lost, not doubled
		{channel.WhatsApp, "after", 1, "failed"},  // it left; the answer was lost
		{channel.RCS, "before", 1, "sent"},
		{channel.RCS, "after", 2, "sent"}, // sent again; the duplicate is dropped
	} {
		t.Run(tc.channel+" "+tc.stage, func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, st *store.Store) {
				p := newProviders()
				prov := map[string]*fakeProvider{channel.WhatsApp: p.wa, channel.RCS: p.rcs}[tc.channel]
				b := setup(t, st, Config{InstanceID: "doomed", Channels: p, sendHook: func(stage, key string) error {
					if stage == tc.stage && key == "k" {
						return errors.New("crash")
					}
					return nil
				}})
				ctx := context.Background()
				if _, err := b.eng.Send(ctx, message(b, tc.channel, "919876543210", "hello", "k")); !errors.Is(err, errAborted) {
					t.Fatalf("send through a crashing engine: %v", err)
				}
				_ = b.eng.Stop(ctx)
				id := pendingID(t, st, b.botID)

				second := New(st, Config{InstanceID: "survivor", Channels: p, Liveness: time.Second,
					Heartbeat: 20 * time.Millisecond, Sweep: 20 * time.Millisecond})
				if err := second.Start(ctx); err != nil {
					t.Fatal(err)
				}
				defer second.Stop(ctx)
				s := waitSettled(t, st, id)
				attempts, accepted := prov.counts("k")
				if s.Status != tc.status || attempts != tc.attempts || accepted > 1 {
					t.Fatalf("message %s (%s); provider got %d requests, accepted %d", s.Status, s.Error, attempts, accepted)
				}
				if tc.status == "failed" && !strings.Contains(s.Error, "interrupted") {
					t.Fatalf("error %q", s.Error)
				}
				if tc.status == "sent" && (s.ProviderID == nil || *s.ProviderID != "p.k") {
					t.Fatalf("provider id %v", s.ProviderID)
				}
				// A retry with the key reports the settled send and sends nothing.
				r, err := second.Send(ctx, message(b, tc.channel, "919876543210", "hello", "k"))
				if err != nil || !r.Duplicate || r.Status != tc.status || r.MessageID != id {
					t.Fatalf("retry: %+v %v", r, err)
				}
				if n, _ := prov.counts("k"); n != tc.attempts {
					t.Fatalf("the retry reached the provider (%d requests)", n)
				}
			})
		})
	}
}

// TestSendTakenOver: an instance presumed dead while its provider call hangs finds
// its send settled by another when the call returns; the message is not sent twice.
func TestSendTakenOver(t *testing.T) {
	for _, ch := range []string{channel.WhatsApp, channel.RCS} {
		t.Run(ch, func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, st *store.Store) {
				p := newProviders()
				prov := map[string]*fakeProvider{channel.WhatsApp: p.wa, channel.RCS: p.rcs}[ch]
				prov.hold, prov.arrived = make(chan struct{}), make(chan string, 4)
				// The first instance heartbeats rarely: the second presumes it dead.
				b := setup(t, st, Config{InstanceID: "slow", Channels: p, Heartbeat: time.Hour})
				ctx := context.Background()
				type outcome struct {
					r   SendResult
					err error
				}
				done := make(chan outcome, 1)
				go func() {
					r, err := b.eng.Send(ctx, message(b, ch, "919876543210", "hello", "k"))
					done <- outcome{r, err}
				}()
				<-prov.arrived
				second := New(st, Config{InstanceID: "quick", Channels: p, Liveness: 100 * time.Millisecond,
					Heartbeat: 20 * time.Millisecond, Sweep: 20 * time.Millisecond})
				if err := second.Start(ctx); err != nil {
					t.Fatal(err)
				}
				defer second.Stop(ctx)
				id := pendingID(t, st, b.botID)
				if ch == channel.RCS {
					<-prov.arrived // the second instance sends it again
				} else {
					waitSettled(t, st, id) // the second instance records it as interrupted
				}
				close(prov.hold)
				out := <-done
				if out.err != nil || out.r.Status != "sent" {
					t.Fatalf("first instance: %+v %v", out.r, out.err)
				}
				s := waitSettled(t, st, id)
				attempts, accepted := prov.counts("k")
				want := map[string]string{channel.WhatsApp: "failed", channel.RCS: "sent"}[ch]
				if s.Status != want || accepted != 1 {
					t.Fatalf("message %s (%s); %d requests, %d accepted", s.Status, s.Error, attempts, accepted)
				}
			})
		})
	}
}

// TestSendOutcomeNotStored: when the outcome commit fails (here a trigger in the
// database refuses it), the send is released and a sweep settles it as interrupted:
// the WhatsApp message is not sent again.
func TestSendOutcomeNotStored(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		p := newProviders()
		b := setup(t, st, Config{Channels: p, Heartbeat: 20 * time.Millisecond, Liveness: 200 * time.Millisecond})
		refuseUpdates(t, st, "messages", "NEW.status = 'sent'")
		ctx := context.Background()
		_, err := b.eng.Send(ctx, message(b, channel.WhatsApp, "919876543210", "hello", "k"))
		if err == nil || !strings.Contains(err.Error(), "outcome") {
			t.Fatalf("send: %v; want the outcome commit's error", err)
		}
		var id int64
		if err := st.Reader().QueryRow(ctx, `SELECT id FROM messages WHERE send_key = 'k'`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		s := waitSettled(t, st, id)
		if attempts, _ := p.wa.counts("k"); s.Status != "failed" || !strings.Contains(s.Error, "interrupted") || attempts != 1 {
			t.Fatalf("message %s (%s) after %d requests", s.Status, s.Error, attempts)
		}
	})
}

// refuseUpdates installs a trigger that makes the database refuse updates of table
// whose new row matches cond (SQL over NEW), as a failing commit; it returns a function
// that removes it.
func refuseUpdates(t *testing.T, st *store.Store, table, cond string) func() {
	t.Helper()
	ctx := context.Background()
	name := "refuse_" + table
	stmts := []string{fmt.Sprintf(`CREATE TRIGGER %s BEFORE UPDATE ON %s FOR EACH ROW WHEN (%s) BEGIN SELECT RAISE(ABORT, 'injected failure'); END`, name, table, cond)}
	drop := []string{"DROP TRIGGER " + name}
	if st.Dialect() == store.Postgres {
		stmts = []string{
			fmt.Sprintf(`CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$`, name),
			fmt.Sprintf(`CREATE TRIGGER %s BEFORE UPDATE ON %s FOR EACH ROW WHEN (%s) EXECUTE FUNCTION %s()`, name, table, cond, name),
		}
		drop = []string{fmt.Sprintf("DROP TRIGGER %s ON %s", name, table), "DROP FUNCTION " + name}
	}
	for _, s := range stmts {
		if _, err := st.Writer().Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return func() {
		for _, s := range drop {
			if _, err := st.Writer().Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
}

// BenchmarkSendBatchSandbox measures one-off sends to the sandbox in batches of 500, the
// path a broadcast's fan-out takes (issue 9 wants 10,000 recipients/s on SQLite): to
// users created or updated by the send, and to users the caller loaded.
func BenchmarkSendBatchSandbox(b *testing.B) {
	for _, known := range []bool{false, true} {
		b.Run(map[bool]string{false: "upsert", true: "known users"}[known], func(b *testing.B) {
			st := storetest.Open(b, storetest.SQLiteDSN(b))
			ctx := context.Background()
			c, _, _ := st.EnsureCustomer(ctx, "acme")
			bot, err := st.CreateBot(ctx, c.ID, "00112233445566aa", "bot")
			if err != nil {
				b.Fatal(err)
			}
			eng := New(st, Config{})
			if err := eng.Start(ctx); err != nil {
				b.Fatal(err)
			}
			defer eng.Stop(ctx)
			const batch = 500
			ids := make([]int64, batch)
			if known {
				for j := range ids {
					d := fmt.Sprintf("91%010d", j)
					if ids[j], err = st.UpsertUserID(ctx, st.Writer(), store.UserUpsert{BotID: bot.ID, ChannelUserID: d, Channel: "whatsapp"}); err != nil {
						b.Fatal(err)
					}
				}
			}
			sends := make([]OneOff, batch)
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				for j := range sends {
					d := fmt.Sprintf("91%010d", j)
					if !known {
						d = fmt.Sprintf("91%010d", i+j)
					}
					sends[j] = OneOff{BotID: bot.ID, Channel: channel.WhatsApp, Phone: "+" + d, Digits: d, UserID: ids[j],
						Content: msg.Content{Text: "Our sale starts today"}, Key: fmt.Sprintf("bench:%d", i+j)}
				}
				if _, err := eng.SendBatch(ctx, sends); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
