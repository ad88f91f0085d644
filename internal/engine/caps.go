package engine

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// capCache keeps each customer's cap on runs executing at once (the account's
// max_running) for a short while, so that handing a run to the workers costs no read
// of the database; a change made anywhere applies within ttl.
type capCache struct {
	read func(ctx context.Context, customerID int64) (*int, error)
	ttl  time.Duration

	mu      sync.Mutex
	entries map[int64]capEntry
}

type capEntry struct {
	max     *int
	expires time.Time
}

func newCapCache(read func(ctx context.Context, customerID int64) (*int, error), ttl time.Duration) *capCache {
	return &capCache{read: read, ttl: ttl, entries: map[int64]capEntry{}}
}

// maxRunning is the customer's cap, or def when the account has none. When the
// database cannot say, the last value known serves (def if none), and the next call
// asks again.
func (c *capCache) maxRunning(ctx context.Context, customerID int64, def int, log *slog.Logger) int {
	now := time.Now()
	c.mu.Lock()
	ent, ok := c.entries[customerID]
	c.mu.Unlock()
	if !ok || now.After(ent.expires) {
		m, err := c.read(ctx, customerID)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("read the customer's max_running; using the last known", "customer", customerID, "err", err)
			}
			m = ent.max
		} else {
			ent = capEntry{max: m, expires: now.Add(c.ttl)}
			c.mu.Lock()
			if len(c.entries) > 100_000 {
				clear(c.entries) // customers come and go: do not grow forever
			}
			c.entries[customerID] = ent
			c.mu.Unlock()
		}
		ent.max = m
	}
	if ent.max == nil || *ent.max <= 0 {
		return def
	}
	return *ent.max
}
