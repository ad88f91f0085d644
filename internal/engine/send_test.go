package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		attempt int
		hint    time.Duration
		want    time.Duration
	}{
		{1, 0, 2 * time.Second},
		{2, 0, 4 * time.Second},
		{5, 0, 32 * time.Second},
		{6, 0, time.Minute}, // doubling stops at a minute
		{30, 0, time.Minute},
		{1, 1500 * time.Millisecond, 1500 * time.Millisecond}, // the provider's hint wins
		{4, 30 * time.Second, 30 * time.Second},
		{1, 24 * time.Hour, 10 * time.Minute}, // an absurd hint is capped
	} {
		if got := backoff(tc.attempt, tc.hint); got != tc.want {
			t.Errorf("backoff(%d, %v) = %v, want %v", tc.attempt, tc.hint, got, tc.want)
		}
	}
}

const twoMessages = `{"key": "m", "start": "one", "nodes": [
  {"id": "one", "type": "message", "text": "one", "next": "two"},
  {"id": "two", "type": "message", "text": "two"}]}`

// TestSendRetries: a send refused for a passing reason parks the run and is retried
// after the backoff, up to maxSendAttempts; then the run fails with the reason.
func TestSendRetries(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		p := newProviders()
		p.wa.flakyErr = &channel.Error{Kind: channel.KindRateLimited, Retryable: true, RetryAfter: 10 * time.Millisecond, Message: "slow down"}
		p.wa.flaky["919876543210"] = 2
		p.wa.flaky["919876543211"] = maxSendAttempts
		b := setup(t, st, Config{Channels: p}, twoMessages)
		ok := b.trigger(t, "m", "919876543210", nil)
		if ok.Status != store.RunWaiting || ok.WaitingFor != waitRetry {
			t.Fatalf("after a refusal: %+v", ok)
		}
		done := b.waitStatus(t, ok.RunID, store.RunCompleted)
		if got := b.texts(t, "919876543210"); !equal(got, []string{"bot:one", "bot:two"}) {
			t.Fatalf("conversation %q (steps %+v)", got, done.Steps)
		}
		if n, accepted := p.wa.counts(ok.RunID + ":0"); n != 3 || accepted != 1 {
			t.Fatalf("first message: %d requests, %d accepted", n, accepted)
		}

		gaveUp := b.trigger(t, "m", "919876543211", nil)
		failed := b.waitStatus(t, gaveUp.RunID, store.RunFailed)
		if !strings.Contains(failed.Error, "rate_limited") {
			t.Fatalf("run %+v", failed)
		}
		if n, _ := p.wa.counts(gaveUp.RunID + ":0"); n != maxSendAttempts {
			t.Fatalf("%d attempts, want %d", n, maxSendAttempts)
		}
		u, _ := st.UserByChannelID(context.Background(), b.botID, "919876543211")
		msgs, _, _ := st.Conversation(context.Background(), u.ID, 0, time.Now().Add(time.Hour).UnixMilli(), store.PageQuery{Size: 10})
		if len(msgs) != 1 || msgs[0].Status != store.MsgFailed || !strings.Contains(msgs[0].Error, "slow down") {
			t.Fatalf("messages %+v", msgs)
		}
	})
}

// TestFlowSendTakenOver: a run whose instance is presumed dead during a provider call
// is taken over; the new owner settles the send as interrupted (WhatsApp) or sends it
// again (RCS, which drops the duplicate); the old owner's late commit is refused.
func TestFlowSendTakenOver(t *testing.T) {
	for _, ch := range []string{channel.WhatsApp, channel.RCS} {
		t.Run(ch, func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, st *store.Store) {
				p := newProviders()
				prov := map[string]*fakeProvider{channel.WhatsApp: p.wa, channel.RCS: p.rcs}[ch]
				prov.hold, prov.arrived = make(chan struct{}), make(chan string, 8)
				b := setup(t, st, Config{InstanceID: "slow", Channels: p, Heartbeat: time.Hour}, twoMessages)
				ctx := context.Background()
				v, err := b.eng.Trigger(ctx, TriggerRequest{BotID: b.botID, CustomerID: b.cid, FlowKey: "m", Channel: ch,
					Phone: "+919876543210", Digits: "919876543210", Attrs: map[string]string{}})
				if err != nil {
					t.Fatal(err)
				}
				key := <-prov.arrived
				second := New(st, Config{InstanceID: "quick", Channels: p, Liveness: 100 * time.Millisecond,
					Heartbeat: 20 * time.Millisecond, Sweep: 20 * time.Millisecond})
				if err := second.Start(ctx); err != nil {
					t.Fatal(err)
				}
				defer second.Stop(ctx)
				if ch == channel.RCS {
					if again := <-prov.arrived; again != key { // the first message, sent again
						t.Fatalf("sent %s again, want %s", again, key)
					}
				} else if next := <-prov.arrived; next == key {
					t.Fatal("the interrupted WhatsApp message was sent again")
				}
				close(prov.hold)
				b.eng = second
				done := b.waitStatus(t, v.RunID, store.RunCompleted)
				attempts, accepted := prov.counts(key)
				u, _ := st.UserByChannelID(ctx, b.botID, "919876543210")
				msgs, _, _ := st.Conversation(ctx, u.ID, 0, time.Now().Add(time.Hour).UnixMilli(), store.PageQuery{Size: 10})
				if accepted != 1 || len(msgs) != 2 {
					t.Fatalf("first message: %d requests, %d accepted; messages %+v; steps %+v", attempts, accepted, msgs, done.Steps)
				}
				want := map[string]string{channel.WhatsApp: store.MsgFailed, channel.RCS: store.MsgSent}[ch]
				if msgs[0].Status != want || msgs[1].Status != store.MsgSent {
					t.Fatalf("messages %+v", msgs)
				}
				// The old owner's commit after its call was refused: the run is the new
				// owner's, finished once.
				if rec, _ := st.RunByID(ctx, nil, v.RunID); rec.Owner != nil || rec.Status != store.RunCompleted {
					t.Fatalf("run %+v", rec)
				}
			})
		})
	}
}

// TestCommitRefusedReleasesRun: when a run's commit fails (a trigger in the database
// refuses it), the run is released, not left owned by this live instance, and a sweep
// takes it up again from its last commit; the POST before it is not repeated.
func TestCommitRefusedReleasesRun(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		h := &fakeHTTP{fn: func(HTTPCall) HTTPResult { return HTTPResult{Status: 200} }}
		b := setup(t, st, Config{HTTP: h}, `{"key": "p", "start": "call", "nodes": [
  {"id": "call", "type": "http", "method": "POST", "url": "https://crm.example.com/x", "next": "mark"},
  {"id": "mark", "type": "set", "set": {"posted": "yes"}}]}`)
		allow := refuseUpdates(t, st, "runs", "NEW.status = 'completed'")
		ctx := context.Background()
		v, err := b.eng.Trigger(ctx, TriggerRequest{BotID: b.botID, CustomerID: b.cid, FlowKey: "p", Channel: "whatsapp",
			Phone: "+919876543210", Digits: "919876543210", Attrs: map[string]string{}})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for h.calls.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the POST was never made")
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // the completion is refused, the run released and claimed again
		allow()
		done := b.waitStatus(t, v.RunID, store.RunCompleted)
		if h.calls.Load() != 1 || !strings.Contains(done.Steps[0].Error, "interrupted") {
			t.Fatalf("%d POSTs; steps %+v", h.calls.Load(), done.Steps)
		}
	})
}
