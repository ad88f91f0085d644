package registry

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/store"
)

// PacingMode says where the pacing of a provider sender is kept.
type PacingMode int

// Pacing modes.
const (
	// PacingAuto keeps pacing in the database on PostgreSQL and in the process on SQLite.
	//
	// On PostgreSQL several instances send for the same phone number, so only a shared
	// record can hold them to the number's limit together; one single-row upsert per
	// message is cheap there (many connections, row-level locks). A SQLite database has
	// one writer connection, which the engine's group commit needs for run progress: a
	// pacing write per message would queue behind (and in front of) every run commit and
	// cap throughput at the writer's round trips, for nothing, since a SQLite file serves
	// a single server process, where an in-memory limiter is exact.
	PacingAuto PacingMode = iota
	// PacingLocal keeps pacing in this process only.
	PacingLocal
	// PacingShared keeps pacing in the database whatever the engine.
	PacingShared
)

// pacer spaces the sends of one provider sender (a phone number, an agent).
type pacer interface {
	// reserve books the next send slot at one send per interval, no later than maxWait
	// from now. ok is false when the earliest slot is later; at is then that slot (nothing
	// is booked).
	reserve(ctx context.Context, now time.Time, interval, maxWait time.Duration) (at time.Time, ok bool, err error)
}

// localPacer is the generic cell rate algorithm in memory: next is the earliest time the
// next send may go. Spacing sends evenly (no burst allowance) keeps every sliding second
// within the rate, whatever the provider's window alignment.
type localPacer struct {
	mu   sync.Mutex
	next time.Time
}

func (p *localPacer) reserve(_ context.Context, now time.Time, interval, maxWait time.Duration) (time.Time, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at := p.next
	if at.Before(now) {
		at = now // an idle sender earns no burst
	}
	if at.Sub(now) > maxWait {
		return at, false, nil
	}
	p.next = at.Add(interval)
	return at, true, nil
}

// sharedPacer is the same algorithm kept in the database, so every instance sharing it
// draws from one sequence of slots. Clocks of instances should agree (NTP): a skew
// shifts when slots fall, not how many there are per second.
type sharedPacer struct {
	st     *store.Store
	sender string
}

func (p sharedPacer) reserve(ctx context.Context, now time.Time, interval, maxWait time.Duration) (time.Time, bool, error) {
	slot, ok, err := p.st.ReservePacingSlot(ctx, p.sender, now.UnixMicro(), max(interval.Microseconds(), 1), maxWait.Microseconds())
	if err != nil {
		return time.Time{}, false, err
	}
	return time.UnixMicro(slot), ok, nil
}

// pace waits for a send slot of sender at rate messages per second.
func pace(ctx context.Context, p pacer, sender string, rate float64, maxWait time.Duration, now func() time.Time) error {
	interval := time.Duration(float64(time.Second) / rate)
	t := now()
	at, ok, err := p.reserve(ctx, t, interval, maxWait)
	if err != nil {
		// Without the shared record the limit cannot be kept; the engine retries.
		return &channel.Error{Kind: channel.KindUnavailable, Retryable: true,
			Message: fmt.Sprintf("pacing of %s: %v", sender, err)}
	}
	if !ok {
		wait := at.Sub(t)
		return &channel.Error{Kind: channel.KindRateLimited, Retryable: true, RetryAfter: wait,
			Message: fmt.Sprintf("%s is paced at %g messages/s and its queue is %s long; try again later",
				sender, rate, wait.Round(time.Millisecond))}
	}
	if d := at.Sub(t); d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return &channel.Error{Kind: channel.KindUnavailable, Retryable: true,
				Message: fmt.Sprintf("waiting for a send slot of %s: %v", sender, ctx.Err())}
		}
	}
	return nil
}
