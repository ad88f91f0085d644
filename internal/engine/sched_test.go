package engine

import (
	"fmt"
	"strings"
	"testing"
)

func schedRun(customer int64, id string) *run {
	r := &run{customerID: customer}
	r.rec.ID = id
	return r
}

// take picks runs that may execute now, without blocking, and names them.
func take(s *scheduler, n int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for range n {
		r := s.pick()
		if r == nil {
			out = append(out, "-")
			continue
		}
		out = append(out, r.rec.ID)
	}
	return out
}

// TestSchedulerRoundRobin: customers with ready runs take turns, whatever the length of
// their queues; within a customer, runs go in the order they came.
func TestSchedulerRoundRobin(t *testing.T) {
	s := newScheduler(100, 10, nil)
	for i := range 5 {
		s.add(schedRun(1, fmt.Sprintf("a%d", i+1)), 100)
	}
	s.add(schedRun(2, "b1"), 100)
	s.add(schedRun(2, "b2"), 100)
	s.add(schedRun(3, "c1"), 100)
	got := strings.Join(take(s, 9), " ")
	if want := "a1 b1 c1 a2 b2 a3 a4 a5 -"; got != want {
		t.Fatalf("order %q, want %q", got, want)
	}
	// A customer that comes back goes to the back of the line.
	s.add(schedRun(1, "a6"), 100)
	s.add(schedRun(3, "c2"), 100)
	s.add(schedRun(1, "a7"), 100)
	s.add(schedRun(2, "b3"), 100)
	if got, want := strings.Join(take(s, 4), " "), "a6 c2 b3 a7"; got != want {
		t.Fatalf("order %q, want %q", got, want)
	}
}

// TestSchedulerCap: a customer at its cap of runs executing at once is passed over, and
// gets a worker again as soon as one of its runs leaves one.
func TestSchedulerCap(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cap   int
		order string
	}{
		{"cap 1", 1, "a1 b1 b2 b3 a2 -"},
		{"cap 2", 2, "a1 b1 a2 b2 a3 b3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScheduler(100, 10, nil)
			runs := map[string]*run{}
			for i := range 4 {
				r := schedRun(1, fmt.Sprintf("a%d", i+1))
				runs[r.rec.ID] = r
				s.add(r, tc.cap)
			}
			for i := range 3 {
				s.add(schedRun(2, fmt.Sprintf("b%d", i+1)), 100)
			}
			got := take(s, 4)
			s.finish(runs["a1"], true) // a1 ends: a customer at its cap may go on
			got = append(got, take(s, 2)...)
			if g := strings.Join(got, " "); g != tc.order {
				t.Fatalf("order %q, want %q", g, tc.order)
			}
		})
	}
}

// TestSchedulerCallSlots: a customer's calls in flight are bounded; a run without a slot
// waits for one, holding no worker, and becomes ready with it when a call returns. A
// waiting trigger its caller gave up on is dropped, not given the slot.
func TestSchedulerCallSlots(t *testing.T) {
	s := newScheduler(100, 2, nil)
	r1, r2, r3, r4 := schedRun(1, "r1"), schedRun(1, "r2"), schedRun(1, "r3"), schedRun(1, "r4")
	other := schedRun(2, "o1")
	for _, r := range []*run{r1, r2, r3, r4, other} {
		s.add(r, 100)
	}
	take(s, 5)
	for _, tc := range []struct {
		r    *run
		want int
	}{{r1, slotGranted}, {r2, slotGranted}, {r3, slotQueued}, {r4, slotQueued}, {other, slotGranted}} {
		if got := s.takeSlot(tc.r); got != tc.want || tc.r.slot != (got == slotGranted) {
			t.Fatalf("%s: takeSlot = %d (slot %v), want %d", tc.r.rec.ID, got, tc.r.slot, tc.want)
		}
		if tc.want == slotGranted {
			s.called()
		}
		s.finish(tc.r, false) // off the worker either way
	}
	r3.accepted = make(chan acceptOutcome, 1)
	if !r3.abandon() {
		t.Fatal("abandon failed")
	}
	s.answered(r1, false) // r1's call returned: r3 gave up, so r4 gets the slot
	if got := strings.Join(take(s, 3), " "); got != "r4 r1 -" {
		t.Fatalf("ready after the call: %q", got)
	}
	if !r4.slot || r1.slot {
		t.Fatalf("slots: r4 %v, r1 %v", r4.slot, r1.slot)
	}
	if n := s.tenants[1].calls; n != 2 {
		t.Fatalf("%d calls counted, want 2 (r2's and r4's)", n)
	}
	if s.inHand != 4 {
		t.Fatalf("%d runs in hand, want 4 (r3 dropped)", s.inHand)
	}
	// Closing: a run still waiting for a slot is made ready, to be released; none is
	// granted one.
	s.giveBackSlot(r4)
	s.finish(r4, true)
	r5 := schedRun(1, "r5")
	s.add(r5, 100)
	take(s, 1)
	if got := s.takeSlot(r5); got != slotGranted {
		t.Fatalf("r5: %d", got)
	}
	r6 := schedRun(1, "r6")
	s.add(r6, 100)
	take(s, 1)
	if got := s.takeSlot(r6); got != slotQueued {
		t.Fatalf("r6: %d", got)
	}
	s.finish(r6, false)
	s.close()
	if got := strings.Join(take(s, 2), " "); got != "r6 -" {
		t.Fatalf("ready after close: %q", got)
	}
	if got := s.takeSlot(r6); got != slotClosing || r6.slot {
		t.Fatalf("r6 after close: %d", got)
	}
	if s.add(schedRun(1, "late"), 100) {
		t.Fatal("a closing scheduler took a new run")
	}
}
