package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// Concurrent reads of users by channel id each get their own user (or ErrNotFound),
// across bots, and on PostgreSQL they share round trips.
func TestUserReadsTogether(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		c, _, _ := st.EnsureCustomer(ctx, "acme")
		var bots []int64
		for _, key := range []string{"0123456789abcdef", "fedcba9876543210"} {
			b, err := st.CreateBot(ctx, c.ID, key, key)
			if err != nil {
				t.Fatal(err)
			}
			bots = append(bots, b.ID)
		}
		const users = 50
		for i := range users {
			for _, bot := range bots {
				up := store.UserUpsert{BotID: bot, ChannelUserID: fmt.Sprintf("9198765%05d", i), Channel: "whatsapp",
					Attrs: map[string]string{"n": fmt.Sprint(i), "bot": fmt.Sprint(bot)}}
				if _, err := st.UpsertUser(ctx, st.Writer(), up); err != nil {
					t.Fatal(err)
				}
			}
		}

		before := st.Stats()
		const reads = 400
		start := make(chan struct{})
		errs := make(chan error, reads)
		var wg sync.WaitGroup
		for i := range reads {
			wg.Go(func() {
				<-start
				bot, n := bots[i%2], i%(users*2) // half the ids have no user
				id := fmt.Sprintf("9198765%05d", n)
				u, err := st.UserByChannelID(ctx, bot, id)
				switch {
				case n >= users:
					if !errors.Is(err, store.ErrNotFound) {
						errs <- fmt.Errorf("read %s of bot %d: %+v, %v; want ErrNotFound", id, bot, u, err)
					}
				case err != nil:
					errs <- fmt.Errorf("read %s of bot %d: %w", id, bot, err)
				case u.BotID != bot || u.ChannelUserID != id || u.Attrs["n"] != fmt.Sprint(n) || u.Attrs["bot"] != fmt.Sprint(bot):
					errs <- fmt.Errorf("read %s of bot %d: got %+v", id, bot, u)
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if trips := st.Stats().Sub(before).RoundTrips; st.Dialect() == store.Postgres && trips >= reads {
			t.Errorf("%d concurrent reads took %d round trips; want them to share", reads, trips)
		}

		// A read whose caller has given up, or on a closed store, answers at once.
		done, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := st.UserByChannelID(done, bots[0], "919876500001"); !errors.Is(err, context.Canceled) {
			t.Errorf("read with a cancelled context: %v; want context.Canceled", err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := st.UserByChannelID(ctx, bots[0], "919876500001"); err == nil {
			t.Error("read on a closed store succeeded")
		}
	})
}
