package auth

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/store/storetest"
)

func TestKeyShapes(t *testing.T) {
	apiKey := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-[a-z]{7}$`)
	botKey := regexp.MustCompile(`^[0-9a-f]{16}$`)
	seen := map[string]bool{}
	for range 1000 {
		k := NewAPIKey()
		if !apiKey.MatchString(k) || seen[k] {
			t.Fatalf("NewAPIKey() = %q: not the vendor's shape, or repeated", k)
		}
		seen[k] = true
		if b := NewBotKey(); !botKey.MatchString(b) {
			t.Fatalf("NewBotKey() = %q", b)
		}
	}
}

func TestCacheExpiry(t *testing.T) {
	st := storetest.Open(t, storetest.SQLiteDSN(t))
	ctx := context.Background()
	s := New(st, 0)
	clock := time.Now()
	s.now = func() time.Time { return clock }
	nb, err := s.CreateBot(ctx, "acme", "bot")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, nb.APIKey); err != nil {
		t.Fatal(err)
	}
	// Revoked behind this process's back (another instance, the CLI): the cached
	// verification holds until its TTL, and not a moment longer than DefaultCacheTTL.
	b, _ := st.Bot(ctx, nb.CustomerID, nb.BotKey)
	if err := st.RevokeAPIKey(ctx, b.ID, nb.KeyID); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(DefaultCacheTTL - time.Millisecond)
	if _, err := s.Authenticate(ctx, nb.APIKey); err != nil {
		t.Fatalf("within the TTL: %v", err)
	}
	clock = clock.Add(2 * time.Millisecond)
	if _, err := s.Authenticate(ctx, nb.APIKey); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("after the TTL: %v, want ErrUnauthorized", err)
	}
	if DefaultCacheTTL >= time.Second {
		t.Fatal("the cache TTL must keep revocations under one second")
	}
	for _, k := range []string{"", "x", string(make([]byte, 300))} {
		if _, err := s.Authenticate(ctx, k); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("Authenticate(%q) = %v", k, err)
		}
	}
}
