package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

func TestTenancy(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		c, created, err := st.EnsureCustomer(ctx, "acme")
		if err != nil || !created || c.ID < 10001 {
			t.Fatalf("EnsureCustomer = %+v, %v, %v; want a new customer with a 5-digit id", c, created, err)
		}
		again, created, err := st.EnsureCustomer(ctx, "acme")
		if err != nil || created || again.ID != c.ID {
			t.Fatalf("second EnsureCustomer = %+v, %v, %v; want the same customer", again, created, err)
		}
		b, err := st.CreateBot(ctx, c.ID, "0123456789abcdef", "demo")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.CreateBot(ctx, c.ID, "0123456789abcdef", "dup"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate bot key: err = %v, want ErrConflict", err)
		}
		if _, err := st.Bot(ctx, c.ID+1, b.Key); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("bot of another customer: err = %v, want ErrNotFound", err)
		}
		k, err := st.CreateAPIKey(ctx, b.ID, []byte("hash-1"), "abcd")
		if err != nil {
			t.Fatal(err)
		}
		owner, err := st.KeyOwnerByHash(ctx, []byte("hash-1"))
		if err != nil || owner.BotKey != b.Key || owner.CustomerID != c.ID || owner.KeyID != k.ID {
			t.Fatalf("KeyOwnerByHash = %+v, %v", owner, err)
		}
		if _, err := st.ReplaceAPIKey(ctx, b.ID, k.ID, []byte("hash-2"), "efgh"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.KeyOwnerByHash(ctx, []byte("hash-1")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("replaced key still found: %v", err)
		}
		if err := st.RevokeAPIKey(ctx, b.ID, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := st.KeyOwnerByHash(ctx, []byte("hash-2")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoked key still found: %v", err)
		}
		keys, err := st.APIKeys(ctx, b.ID)
		if err != nil || len(keys) != 1 || keys[0].RevokedAt == nil {
			t.Fatalf("APIKeys = %+v, %v; want one revoked key", keys, err)
		}
		rate := 42
		if err := st.SetCustomerHTTPRate(ctx, c.ID, &rate); err != nil {
			t.Fatal(err)
		}
		if got, _ := st.Customer(ctx, c.ID); got.HTTPRate == nil || *got.HTTPRate != 42 {
			t.Fatalf("http rate = %v, want 42", got.HTTPRate)
		}
	})
}

func TestUsers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		c, _, _ := st.EnsureCustomer(ctx, "acme")
		b, err := st.CreateBot(ctx, c.ID, "0123456789abcdef", "demo")
		if err != nil {
			t.Fatal(err)
		}
		up := store.UserUpsert{BotID: b.ID, ChannelUserID: "919876543210", Channel: "whatsapp",
			Attrs:    map[string]string{"tier": "gold", "user.phone_no": "+919876543210"},
			Defaults: map[string]string{"user.user_name": "919876543210"}}
		u, err := st.UpsertUser(ctx, st.Writer(), up)
		if err != nil {
			t.Fatal(err)
		}
		if u.Attrs["user.user_name"] != "919876543210" || u.Attrs["tier"] != "gold" {
			t.Fatalf("new user attrs = %v", u.Attrs)
		}
		// A named user keeps the name; new attributes merge over old ones.
		if err := st.PatchUserAttrs(ctx, st.Writer(), u.ID, map[string]string{"user.user_name": "Asha", "city": "Pune"}, []string{"tier"}); err != nil {
			t.Fatal(err)
		}
		up.Attrs = map[string]string{"order": "42"}
		u2, err := st.UpsertUser(ctx, st.Writer(), up)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"user.user_name": "Asha", "city": "Pune", "order": "42", "user.phone_no": "+919876543210"}
		if u2.ID != u.ID || len(u2.Attrs) != len(want) {
			t.Fatalf("merged attrs = %v, want %v", u2.Attrs, want)
		}
		for k, v := range want {
			if u2.Attrs[k] != v {
				t.Fatalf("merged attrs = %v, want %v", u2.Attrs, want)
			}
		}
		got, pg, err := st.UsersByAttribute(ctx, b.ID, "city", "Pune", store.PageQuery{Size: 10})
		if err != nil || pg.Total != 1 || len(got) != 1 || got[0].ChannelUserID != "919876543210" {
			t.Fatalf("UsersByAttribute = %v, %+v, %v", got, pg, err)
		}
		got, pg, err = st.UsersByAttribute(ctx, b.ID, "user.user_name", "Asha", store.PageQuery{Size: 10})
		if err != nil || pg.Total != 1 || len(got) != 1 {
			t.Fatalf("UsersByAttribute(dotted name) = %v, %+v, %v", got, pg, err)
		}
		got, pg, err = st.UsersByAttribute(ctx, b.ID, "city", "Mumbai", store.PageQuery{Size: 10})
		if err != nil || pg.Total != 0 || len(got) != 0 {
			t.Fatalf("UsersByAttribute(no match) = %v, %+v, %v", got, pg, err)
		}
	})
}
