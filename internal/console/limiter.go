package console

import (
	"sync"
	"time"
)

// failureLimiter counts failed sign-ins per key (a client address, an email) in fixed
// windows. Once a key has had max failures in its window, every attempt for it is refused
// until the window ends, the right one too: a password guesser learns nothing more.
// Counts are per server instance; with several instances an attacker gets max per
// instance, which still bounds guessing to a few dozen tries per window.
type failureLimiter struct {
	max    int
	window time.Duration

	mu   sync.Mutex
	keys map[string]*failureWindow
}

type failureWindow struct {
	start    time.Time
	failures int
}

// maxTrackedKeys bounds the limiter's memory; past it, finished windows are dropped.
const maxTrackedKeys = 10_000

func newFailureLimiter(max int, window time.Duration) *failureLimiter {
	return &failureLimiter{max: max, window: window, keys: map[string]*failureWindow{}}
}

// blocked reports whether key has used up its failures, and when it may try again.
func (l *failureLimiter) blocked(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.keys[key]
	if !ok || now.Sub(w.start) >= l.window {
		return false, 0
	}
	if w.failures >= l.max {
		return true, w.start.Add(l.window).Sub(now)
	}
	return false, 0
}

// fail counts a failed attempt for key.
func (l *failureLimiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.keys[key]
	if !ok || now.Sub(w.start) >= l.window {
		if len(l.keys) >= maxTrackedKeys {
			l.prune(now)
		}
		w = &failureWindow{start: now}
		l.keys[key] = w
	}
	w.failures++
}

func (l *failureLimiter) prune(now time.Time) {
	for k, w := range l.keys {
		if now.Sub(w.start) >= l.window {
			delete(l.keys, k)
		}
	}
	if len(l.keys) >= maxTrackedKeys {
		clear(l.keys) // a flood of distinct keys: forget them rather than grow
	}
}
