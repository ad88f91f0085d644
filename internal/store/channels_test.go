package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

func TestChannelConfigs(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		c, _, err := st.EnsureCustomer(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		a, err := st.CreateBot(ctx, c.ID, "aaaaaaaaaaaaaaaa", "a")
		if err != nil {
			t.Fatal(err)
		}
		b, err := st.CreateBot(ctx, c.ID, "bbbbbbbbbbbbbbbb", "b")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.ChannelConfig(ctx, a.ID, "whatsapp"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unset config: err = %v, want ErrNotFound", err)
		}
		steps := []struct {
			bot     int64
			channel string
			config  string
		}{
			{a.ID, "whatsapp", `{"adapter":"whatsapp","phone_number_id":"111"}`},
			{a.ID, "whatsapp", `{"adapter":"whatsapp","phone_number_id":"222"}`}, // replaces
			{a.ID, "rcs", `{"adapter":"rcs","agent_id":"x"}`},
			{b.ID, "whatsapp", `{"adapter":"whatsapp","phone_number_id":"222"}`},
		}
		for _, s := range steps {
			if err := st.SaveChannelConfig(ctx, s.bot, s.channel, []byte(s.config)); err != nil {
				t.Fatal(err)
			}
			got, err := st.ChannelConfig(ctx, s.bot, s.channel)
			if err != nil || string(got) != s.config {
				t.Fatalf("ChannelConfig(%d, %s) = %s, %v; want %s", s.bot, s.channel, got, err, s.config)
			}
		}

		tests := []struct {
			id   string
			want []int64
		}{
			{"222", []int64{a.ID, b.ID}},
			{"111", nil}, // replaced
			{"x", nil},   // an RCS agent is not a phone number id
		}
		for _, tt := range tests {
			got, err := st.ChannelConfigsByPhoneNumberID(ctx, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ChannelConfigsByPhoneNumberID(%s) = %+v, want bots %v", tt.id, got, tt.want)
			}
			for i := range got {
				if got[i].BotID != tt.want[i] || got[i].CustomerID != c.ID || got[i].BotKey == "" || len(got[i].Config) == 0 {
					t.Fatalf("ChannelConfigsByPhoneNumberID(%s)[%d] = %+v, want bot %d", tt.id, i, got[i], tt.want[i])
				}
			}
		}
	})
}

func TestReservePacingSlot(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		const interval, maxAhead = 100, 250
		tests := []struct {
			name     string
			sender   string
			now      int64
			wantSlot int64
			wantOK   bool
		}{
			{"first send goes now", "wa:1", 1000, 1000, true},
			{"next waits one interval", "wa:1", 1000, 1100, true},
			{"and the next two", "wa:1", 1010, 1200, true},
			{"within max ahead", "wa:1", 1050, 1300, true},
			{"too far ahead is refused", "wa:1", 1050, 1400, false},
			{"refusal reserved nothing", "wa:1", 1150, 1400, true},
			{"another sender is independent", "wa:2", 1150, 1150, true},
			{"idle time builds no burst", "wa:1", 9000, 9000, true},
			{"after idle, spacing again", "wa:1", 9000, 9100, true},
		}
		for _, tt := range tests {
			slot, ok, err := st.ReservePacingSlot(ctx, tt.sender, tt.now, interval, maxAhead)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if slot != tt.wantSlot || ok != tt.wantOK {
				t.Fatalf("%s: slot %d ok %v, want %d %v", tt.name, slot, ok, tt.wantSlot, tt.wantOK)
			}
		}

		// Concurrent reservations never share a slot.
		const n = 40
		var mu sync.Mutex
		seen := map[int64]bool{}
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				slot, ok, err := st.ReservePacingSlot(ctx, "wa:3", 0, 10, 1<<40)
				if err != nil || !ok {
					t.Errorf("reserve: %d %v %v", slot, ok, err)
					return
				}
				mu.Lock()
				seen[slot] = true
				mu.Unlock()
			}()
		}
		wg.Wait()
		for i := range int64(n) {
			if !seen[i*10] {
				t.Fatalf("slots %v: want every multiple of 10 below %d exactly once", seen, n*10)
			}
		}
	})
}
