package engine

// Calls to the outside world, made off the workers (see sched.go for the whole design).
//
// A node that calls out is executed in two visits. On the first, the run takes a call
// slot (takeSlot), commits what must precede the call, and hands the call to
// callOutside, which runs it on a goroutine of its own; the node returns detached and
// the worker is free. The goroutine stores the answer in the run's memory and queues the
// run again; on the second visit the node finds the answer (takeAnswer) and goes on as
// it did when it made the call in line. Nothing of the run changes between the two
// visits but the answer, so the second visit sees the run as the first left it.

import (
	"context"
	"fmt"

	"github.com/parleyhq/parley/internal/channel"
)

// Kinds of outside calls.
const (
	callHTTP  = "http"
	callSend  = "send"
	callProbe = "probe"
)

// answer is what an outside call brought back, kept in memory until the node that made
// the call is executed again.
type answer struct {
	kind string
	node string
	step int
	// attempt is the send's previous attempts (its retry count), carried across the call.
	attempt int

	http      HTTPResult   // callHTTP
	sent      channel.Sent // callSend
	reachable bool         // callProbe
	err       error        // callSend, callProbe
}

// takeAnswer returns (and forgets) the answer of a call of the given kind that the run's
// current step made at node, or nil when there is none.
func (r *run) takeAnswer(kind, node string) *answer {
	a := r.answer
	if a == nil || a.kind != kind || a.node != node || a.step != r.st.Step {
		return nil
	}
	r.answer = nil
	return a
}

// takeSlot gives r a call slot of its customer. ok=false means the run must not make
// the call now, and out says what became of it: detached (queued for a slot: it comes
// back to this node, unchanged, when it has one) or, when the engine is stopping, the
// outcome of releasing it at its last commit. Nothing in r may change before takeSlot.
func (e *Engine) takeSlot(ctx context.Context, r *run) (out outcome, ok bool) {
	if r.slot {
		return proceed, true // granted while the run waited for it
	}
	switch e.sched.takeSlot(r) {
	case slotGranted:
		return proceed, true
	case slotQueued:
		return detached, false
	}
	return e.yieldAtShutdown(ctx, r), false
}

// dropSlot gives back r's call slot when it holds one it will not use.
func (e *Engine) dropSlot(r *run) {
	if r.slot {
		e.sched.giveBackSlot(r)
	}
}

// yieldAtShutdown stores a run that would start an outside call while the engine
// stops, released: it goes on from there on the instance that claims it next (or this
// one after a restart). It is stored rather than dropped so that what it did since its
// last commit (an earlier call's answer above all) is not lost; no call is pending in
// it, since it took no slot. A trigger's run that was not stored yet is stored now, and
// its trigger answers with it.
func (e *Engine) yieldAtShutdown(ctx context.Context, r *run) outcome {
	if err := e.commit(ctx, r, false); err != nil {
		return e.commitFailed(r, err)
	}
	e.settle(r)
	return settled
}

// callOutside runs call on a goroutine of its own for r, which holds a call slot, and
// queues r again with the answer. The run is the goroutine's alone until then: the
// caller returns detached at once and does not touch r again.
func (e *Engine) callOutside(r *run, kind, node string, attempt int, call func(ctx context.Context) answer) {
	step := r.st.Step
	e.sched.called()
	go func() {
		a := safeCall(call)
		a.kind, a.node, a.step, a.attempt = kind, node, step, attempt
		r.answer = &a
		crashed := e.isCrashed()
		if crashed && !r.inserted {
			e.accepted(r, errAborted)
		}
		e.sched.answered(r, crashed) // a crashed engine does nothing more
	}()
}

// safeCall runs call, turning a panic into a failed answer: the call runs off the
// workers, where no recover in execute would catch it.
func safeCall(call func(ctx context.Context) answer) (a answer) {
	defer func() {
		if p := recover(); p != nil {
			err := fmt.Errorf("internal error during the call: %v", p)
			a = answer{err: err, http: HTTPResult{Failed: true, Error: err.Error()}}
		}
	}()
	// Detached from any request: the call's own timeout bounds it (the node's, or the
	// adapter's), as it did on a worker.
	return call(context.Background())
}
