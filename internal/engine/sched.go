package engine

// Fair scheduling.
//
// Runs in this instance's memory belong to customers (tenants), and the scheduler hands
// them to the workers so that no customer can make the others wait:
//
//   - Ready runs queue per customer, first in first out, and the customers with ready
//     runs take turns: each time a worker is free it takes the next run of the customer
//     whose turn it is, and that customer goes to the back of the line. A customer with
//     ten thousand queued runs and one with a single run each get every other worker.
//   - A customer executes at most maxRunning runs at once (the account's max_running, or
//     the server's default); its other ready runs wait while the workers serve others.
//   - A run that must wait on the outside world (an HTTP step's call, a provider send
//     and its pacing slot, a capability check) does not wait on a worker. It first takes
//     one of its customer's call slots (at most maxCalls calls in flight per customer);
//     with none free it queues for one, holding no worker, exactly as it was before the
//     node. With a slot it commits what must come before the call (the pending effect,
//     or its acceptance), and the call runs on a goroutine of its own; the worker moves
//     on. When the answer comes, the slot goes to the customer's next run waiting for
//     one, and the run is queued again, ready, with the answer in memory; a worker
//     finishes the node with it. Durability is what it was with the call on a worker:
//     the commit before the call is the same, and until the next commit the answer is
//     only in memory, where a crash loses it as it lost it before.
//
// Taking the slot before the commit does two things. A run never sits committed as
// "call in flight" while it is only waiting for its turn, so a shutdown can release it
// as it is (see yieldAtShutdown) without the next owner taking an unmade POST for an
// interrupted one. And a new trigger whose customer's slots are all taken is not
// accepted until one frees: its caller waits (boundedly, see Trigger) instead of the
// server piling up accepted runs faster than that customer's calls can be made.

import (
	"sync"
)

// scheduler holds the runs of this engine's memory and hands them to workers.
type scheduler struct {
	mu   sync.Mutex
	cond *sync.Cond // signalled when a run may be taken, or when closing and empty

	tenants map[int64]*tenant
	// turns are the customers with ready runs, in the order they get a worker. A
	// customer at its running cap stays in line but is passed over.
	turns []*tenant

	// inHand counts runs in memory: ready, executing, waiting for a call slot or on a
	// call. Workers end once the scheduler is closing and inHand is zero.
	inHand  int
	closing bool
	// maxRunning is a new tenant's cap until add sets its own; maxCalls the calls in
	// flight per customer.
	maxRunning, maxCalls int
	// readyN counts ready runs and outside those waiting for a slot or on a call,
	// for the metrics.
	readyN, outsideN int
	gauges           func(ready, outside int)
}

// tenant is one customer's share of the scheduler.
type tenant struct {
	id         int64
	ready      fifo
	running    int
	maxRunning int
	calls      int
	slotWait   fifo
	inTurns    bool
}

// fifo is a queue of runs.
type fifo struct {
	items []*run
	head  int
}

func (q *fifo) len() int { return len(q.items) - q.head }

func (q *fifo) push(r *run) {
	if q.head > 0 && q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	q.items = append(q.items, r)
}

func (q *fifo) pop() *run {
	r := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head > 64 && q.head*2 > len(q.items) {
		q.items = append(q.items[:0], q.items[q.head:]...)
		q.head = 0
	}
	return r
}

func newScheduler(maxRunning, maxCalls int, gauges func(ready, outside int)) *scheduler {
	s := &scheduler{tenants: map[int64]*tenant{}, maxRunning: maxRunning, maxCalls: maxCalls, gauges: gauges}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *scheduler) tenant(id int64) *tenant {
	t := s.tenants[id]
	if t == nil {
		t = &tenant{id: id, maxRunning: s.maxRunning}
		s.tenants[id] = t
	}
	return t
}

// forget drops a tenant that holds nothing, so the map does not grow with every
// customer ever served.
func (s *scheduler) forget(t *tenant) {
	if t.ready.len() == 0 && t.running == 0 && t.calls == 0 && t.slotWait.len() == 0 && !t.inTurns {
		delete(s.tenants, t.id)
	}
}

func (s *scheduler) report() {
	if s.gauges != nil {
		s.gauges(s.readyN, s.outsideN)
	}
}

// push makes r ready. Called with s.mu held.
func (s *scheduler) push(t *tenant, r *run) {
	t.ready.push(r)
	s.readyN++
	if !t.inTurns {
		t.inTurns = true
		s.turns = append(s.turns, t)
	}
	s.cond.Signal()
}

// add takes a run new to this engine's memory, ready to execute, with its customer's
// cap on runs executing at once. False when the scheduler is closing: the run is not
// taken.
func (s *scheduler) add(r *run, maxRunning int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.inHand++
	t := s.tenant(r.customerID)
	t.maxRunning = max(1, maxRunning)
	s.push(t, r)
	s.report()
	return true
}

// next blocks until a run may execute and returns it, counted as running; false once
// the scheduler is closing and holds no run.
func (s *scheduler) next() (*run, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if r := s.pick(); r != nil {
			return r, true
		}
		if s.closing && s.inHand == 0 {
			return nil, false
		}
		s.cond.Wait()
	}
}

// pick takes the next run that may execute, or nil. Called with s.mu held.
func (s *scheduler) pick() *run {
	for i, t := range s.turns {
		if t.running >= t.maxRunning {
			continue
		}
		r := t.ready.pop()
		s.readyN--
		t.running++
		// This customer has had its turn: to the back of the line, or out of it.
		s.turns = append(s.turns[:i], s.turns[i+1:]...)
		if t.ready.len() > 0 {
			s.turns = append(s.turns, t)
		} else {
			t.inTurns = false
		}
		s.report()
		return r
	}
	return nil
}

// finish ends r's time on a worker; left says whether it also left memory (it
// settled, stopped or was dropped) rather than waiting for a call slot or a call.
func (s *scheduler) finish(r *run, left bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenant(r.customerID)
	t.running--
	if t.ready.len() > 0 {
		s.cond.Signal() // it may have been held back by its cap
	}
	if left {
		s.leave()
	}
	s.forget(t)
}

// leave counts a run out of memory. Called with s.mu held.
func (s *scheduler) leave() {
	s.inHand--
	if s.closing && s.inHand == 0 {
		s.cond.Broadcast()
	}
}

// Results of takeSlot.
const (
	slotGranted = iota
	slotQueued  // r waits for a slot, holding no worker; it comes back ready with one
	slotClosing // the engine is stopping: no new call starts
)

// takeSlot gives r one of its customer's call slots, or queues it for one.
func (s *scheduler) takeSlot(r *run) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return slotClosing
	}
	t := s.tenant(r.customerID)
	if t.calls < s.maxCalls {
		t.calls++
		r.slot = true
		return slotGranted
	}
	t.slotWait.push(r)
	s.outsideN++
	s.report()
	return slotQueued
}

// giveBackSlot frees r's call slot without a call having been made (the run went no
// further, or failed before its call).
func (s *scheduler) giveBackSlot(r *run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.slot = false
	t := s.tenant(r.customerID)
	s.handOn(t)
	s.report()
	s.forget(t)
}

// handOn frees one of t's call slots and hands it to the first run waiting for one,
// which becomes ready. A waiting trigger whose caller gave up is dropped on the way: it
// was never stored. Called with s.mu held.
func (s *scheduler) handOn(t *tenant) {
	t.calls--
	for t.slotWait.len() > 0 {
		w := t.slotWait.pop()
		s.outsideN--
		if !w.inserted && w.abandoned() {
			s.leave()
			continue
		}
		t.calls++
		w.slot = true
		s.push(t, w)
		return
	}
}

// called counts a run that went off on a call (it holds a slot).
func (s *scheduler) called() {
	s.mu.Lock()
	s.outsideN++
	s.report()
	s.mu.Unlock()
}

// answered takes back a run whose call returned: its slot goes to the next run
// waiting for one, and the run is ready again; gone instead drops it (a crashed engine
// does nothing more with it).
func (s *scheduler) answered(r *run, gone bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outsideN--
	r.slot = false
	t := s.tenant(r.customerID)
	s.handOn(t)
	if gone {
		s.leave()
	} else {
		s.push(t, r)
	}
	s.report()
	s.forget(t)
}

// close stops new runs from coming in and new calls from starting. Runs waiting for a
// call slot become ready at once, to be released at their last commit (see
// yieldAtShutdown); the workers end when nothing is left in hand.
func (s *scheduler) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	for _, t := range s.tenants {
		for t.slotWait.len() > 0 {
			w := t.slotWait.pop()
			s.outsideN--
			s.push(t, w)
		}
	}
	s.report()
	s.cond.Broadcast()
}
