package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/internal/flow"
	"github.com/parleyhq/parley/internal/sanitize"
	"github.com/parleyhq/parley/internal/store"
)

// state is what a run remembers between commits, stored as JSON in runs.state.
type state struct {
	// Step counts the nodes executed; a message produced at step N is unique per run, so
	// replaying a step after a crash cannot store or send it twice.
	Step  int          `json:"step"`
	Steps []stepRecord `json:"steps,omitempty"`
	// Results holds what each http node returned, for {{node.path}} references.
	Results map[string]*nodeResult `json:"results,omitempty"`
	// Wait says why a waiting run is parked.
	Wait *waitState `json:"wait,omitempty"`
	// Reply is the user's answer that resumed an input node.
	Reply *string `json:"reply,omitempty"`
	// Pending is an external effect committed as started but not yet as finished.
	Pending *pendingEffect `json:"pending,omitempty"`
	// Probed records that the channel's capability check passed for this run, so it is
	// asked once per run, not before every message.
	Probed bool `json:"probed,omitempty"`
}

type stepRecord struct {
	Node    string `json:"node"`
	Type    string `json:"type"`
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
	At      int64  `json:"at_ms"`
}

type nodeResult struct {
	Status int               `json:"status,omitempty"`
	Error  string            `json:"error,omitempty"`
	Leaves map[string]string `json:"leaves,omitempty"`
}

// Wait kinds.
const (
	waitInput = "input" // an input node waits for the user
	waitRetry = "retry" // a send waits to be retried
)

type waitState struct {
	Kind    string `json:"kind"`
	Node    string `json:"node"`
	Attempt int    `json:"attempt,omitempty"`
}

// Effect kinds.
const (
	effectMessage = "message"
	effectHTTP    = "http"
)

type pendingEffect struct {
	Kind      string `json:"kind"`
	Node      string `json:"node"`
	Step      int    `json:"step"`
	MessageID int64  `json:"message_id,omitempty"`
}

// maxStepRecords bounds the history kept in a run (long conversations loop through
// input nodes); older steps are dropped.
const maxStepRecords = 200

// run is a run in memory, with the writes it owes the database at its next commit.
type run struct {
	rec        store.Run
	st         state
	flowKey    string
	customerID int64
	// The user, as loaded when the run was picked up plus this run's own changes.
	channelUserID string
	attrs         map[string]string
	lastInbound   *time.Time

	ops       []func(ctx context.Context, tx store.Tx) error
	attrSet   map[string]string
	attrClear map[string]bool
	// resumedByTimeout is set when a due input node was claimed by the sweeper.
	resumedByTimeout bool
	// nodeType is the type of the node being executed, for the step history.
	nodeType string

	// inserted is false until a triggered run's first commit stores it; accept holds
	// what that commit must also do, and accepted hears how it went. acceptState settles
	// the race between that commit and a trigger that stops waiting for it, at acceptBy
	// (no first commit starts later).
	inserted    bool
	accept      *acceptance
	accepted    chan acceptOutcome
	acceptState atomic.Int32
	acceptBy    time.Time

	// stepsRun counts the nodes executed since the run came into memory (MaxSteps).
	stepsRun int
	// slot is set while the run holds one of its customer's call slots; answer is what
	// its last outside call brought back, until the node that made it reads it.
	slot   bool
	answer *answer
}

// States of a trigger's acceptance (run.acceptState).
const (
	acceptPending    = iota
	acceptCommitting // the first commit is under way: its outcome will be reported
	acceptAbandoned  // the trigger gave up: the run must never be stored
)

// beginAccept reports whether the run's first commit may go ahead: false when its
// trigger gave up waiting or is about to (its deadline passed: a commit started now would
// hold its answer past the cap), and then it never will.
func (r *run) beginAccept() bool {
	if !r.acceptBy.IsZero() && time.Now().After(r.acceptBy) {
		r.abandon()
	}
	return r.acceptState.CompareAndSwap(acceptPending, acceptCommitting) || r.acceptState.Load() == acceptCommitting
}

// abandon is the trigger's side: true when the run will never be stored; false when its
// first commit is under way, whose outcome the trigger then hears.
func (r *run) abandon() bool {
	return r.acceptState.CompareAndSwap(acceptPending, acceptAbandoned) || r.acceptState.Load() == acceptAbandoned
}

func (r *run) abandoned() bool { return r.acceptState.Load() == acceptAbandoned }

// setAttr sets an attribute for this run and its next commit. Values come from the
// user's replies, http responses and templates: they are made storable and cut to the
// attribute limit here, whatever their source.
func (r *run) setAttr(name, value string) {
	value = sanitize.Truncate(sanitize.Clean(value), sanitize.MaxAttrValue)
	r.attrs[name] = value
	if r.attrSet == nil {
		r.attrSet = map[string]string{}
	}
	r.attrSet[name] = value
	delete(r.attrClear, name)
}

func (r *run) clearAttr(name string) {
	delete(r.attrs, name)
	delete(r.attrSet, name)
	if r.attrClear == nil {
		r.attrClear = map[string]bool{}
	}
	r.attrClear[name] = true
}

func (r *run) record(now time.Time, status string) {
	r.st.Step++
	rec := stepRecord{Node: r.rec.Node, Type: r.nodeType, Outcome: status, At: now.UnixMilli()}
	r.st.Steps = append(r.st.Steps, rec)
	if len(r.st.Steps) > maxStepRecords {
		r.st.Steps = r.st.Steps[len(r.st.Steps)-maxStepRecords:]
	}
}

// lookup resolves {{name}}: an http node's results for "<node>.<path>" (and
// "<node>.error", "<node>.status"), else a user attribute.
func (r *run) lookup(f *flow.Flow) flow.Lookup {
	return func(name string) (string, bool) {
		if head, rest, ok := strings.Cut(name, "."); ok && f.IsHTTPNode(head) {
			res := r.st.Results[head]
			if res == nil {
				return "", false
			}
			switch rest {
			case "error":
				return res.Error, res.Error != ""
			case "status":
				if res.Status == 0 {
					return "", false
				}
				return strconv.Itoa(res.Status), true
			}
			v, ok := res.Leaves[rest]
			return v, ok
		}
		v, ok := r.attrs[name]
		return v, ok
	}
}

// outcome of executing one node.
type outcome int

const (
	proceed outcome = iota // r.rec.Node is the next node to run
	settled                // the run parked or ended, and that is committed
	aborted                // stop without writing: ownership lost or a simulated crash
	// detached: the run left the worker to wait for a call slot or an outside call, and
	// comes back to the same node when it has it. Whoever returns it lets go of the run.
	detached
)

var (
	errFenced    = store.ErrFenced
	errAborted   = errors.New("the run stopped before it was stored")
	errAbandoned = errors.New("the trigger stopped waiting before the run was stored")
)

// execute runs r until it parks, ends, leaves the worker for an outside call, or this
// instance loses it. Unless the outcome is detached, the run leaves memory.
func (e *Engine) execute(r *run) (out outcome) {
	ctx := context.Background()
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("run panicked", "run", r.rec.ID, "node", r.rec.Node, "panic", p)
			e.fail(ctx, r, "internal error while running node "+r.rec.Node)
			out = settled
		}
		if out == detached {
			return // the run is no longer this worker's to touch
		}
		e.dropSlot(r)
		if !r.inserted && !r.abandoned() {
			e.accepted(r, errAborted) // a trigger must not wait for a run that was never stored
		}
	}()
	for {
		f, err := e.flows.version(ctx, r.rec.FlowID, r.rec.FlowVersion)
		if err != nil {
			e.log.Error("load flow", "run", r.rec.ID, "err", err)
			e.fail(ctx, r, "the flow could not be loaded")
			return settled
		}
		r.flowKey = f.key
		if r.rec.Node == "" {
			e.complete(ctx, r)
			return settled
		}
		node, ok := f.f.Node(r.rec.Node)
		if !ok {
			e.fail(ctx, r, fmt.Sprintf("node %q does not exist in flow %s version %d", r.rec.Node, f.key, f.version))
			return settled
		}
		if r.answer == nil && !r.slot { // a node visited again after its call is not a new step
			if r.stepsRun++; r.stepsRun > e.cfg.MaxSteps {
				e.fail(ctx, r, fmt.Sprintf("more than %d steps without waiting for the user (a jump loop?)", e.cfg.MaxSteps))
				return settled
			}
			r.nodeType = node.NodeType()
			e.m.steps.WithLabelValues(r.nodeType).Inc()
		}
		switch out := e.step(ctx, r, f, node); out {
		case settled, aborted, detached:
			return out
		}
		if e.crashHook(r) {
			return aborted
		}
	}
}

// crashHook lets tests stop the engine between steps as a crash would.
func (e *Engine) crashHook(r *run) bool {
	if e.cfg.stepHook == nil {
		return false
	}
	select {
	case <-e.crashed:
		return true
	default:
	}
	if err := e.cfg.stepHook(r.rec.ID, r.rec.Node); err != nil {
		e.crashOnce()
		return true
	}
	return false
}

func (e *Engine) crashOnce() {
	e.waitMu.Lock()
	defer e.waitMu.Unlock()
	select {
	case <-e.crashed:
	default:
		close(e.crashed)
	}
}

// goTo moves the run to next, or ends it when there is none.
func goTo(r *run, next string) outcome {
	r.rec.Node = next
	return proceed
}

func (e *Engine) step(ctx context.Context, r *run, f *compiledFlow, node flow.Node) outcome {
	now := time.Now()
	lookup := r.lookup(f.f)
	switch n := node.(type) {
	case *flow.MessageNode:
		if out, ok := e.sendContent(ctx, r, n.ID, render(n.Content, lookup)); !ok {
			return out
		}
		r.record(now, "sent")
		return goTo(r, n.Next)

	case *flow.DecisionNode:
		next, label := n.Else, "else"
		for i := range n.Branches {
			if n.Branches[i].When.Eval(lookup) {
				next, label = n.Branches[i].Next, fmt.Sprintf("branch %d", i)
				break
			}
		}
		r.record(now, label)
		return goTo(r, next)

	case *flow.SetNode:
		// Every value is rendered from the attributes as they were before the node, and
		// only then applied: a value never sees another value of the same node, so the
		// result does not depend on the order of the map.
		values := make(map[string]string, len(n.Set))
		for name, v := range n.Set {
			values[name] = flow.Render(v, lookup, flow.EscapeNone)
		}
		for name, v := range values {
			r.setAttr(name, v)
		}
		for _, name := range n.Clear {
			r.clearAttr(name)
		}
		r.record(now, "set")
		return goTo(r, n.Next)

	case *flow.InputNode:
		return e.input(ctx, r, n, lookup)

	case *flow.HTTPNode:
		return e.httpStep(ctx, r, f, n, lookup)

	case *flow.JumpNode:
		target, err := e.flows.current(ctx, r.rec.BotID, n.Flow)
		if err != nil {
			return e.failStep(ctx, r, now, fmt.Sprintf("jump: flow %q not found", n.Flow))
		}
		r.record(now, "jumped to "+target.key)
		r.rec.FlowID, r.rec.FlowVersion, r.flowKey = target.id, target.version, target.key
		return goTo(r, target.f.Start)

	case *flow.EndNode:
		r.record(now, "ended")
		e.complete(ctx, r)
		return settled
	}
	return e.failStep(ctx, r, now, fmt.Sprintf("node type %q cannot run", node.NodeType()))
}

func (e *Engine) failStep(ctx context.Context, r *run, now time.Time, reason string) outcome {
	r.record(now, "failed")
	r.st.Steps[len(r.st.Steps)-1].Error = reason
	e.fail(ctx, r, reason)
	return settled
}

// input parks the run until the user replies, or continues with the reply it was
// resumed with, or follows on_timeout.
func (e *Engine) input(ctx context.Context, r *run, n *flow.InputNode, lookup flow.Lookup) outcome {
	now := time.Now()
	if r.st.Reply != nil {
		reply := *r.st.Reply
		r.st.Reply = nil
		if n.SaveAs != "" {
			r.setAttr(n.SaveAs, reply)
		}
		r.record(now, "replied")
		return goTo(r, n.Next)
	}
	if r.resumedByTimeout {
		r.resumedByTimeout = false
		r.record(now, "timed out")
		if n.OnTimeout == "" {
			e.complete(ctx, r)
			return settled
		}
		return goTo(r, n.OnTimeout)
	}
	// Ask (once: a run resumed after a crash has the prompt stored at this step already).
	if c := render(n.Content, lookup); c.Text != "" || c.Media != nil || c.Template != nil || c.Card != nil {
		if out, ok := e.sendContent(ctx, r, n.ID, c); !ok {
			return out
		}
	}
	r.st.Wait = &waitState{Kind: waitInput, Node: n.ID}
	r.rec.WakeAt = nil
	if n.TimeoutSeconds > 0 {
		at := now.Add(time.Duration(n.TimeoutSeconds) * time.Second).UnixMilli()
		r.rec.WakeAt = &at
	}
	return e.park(ctx, r)
}

// park commits the run as waiting, owned by nobody.
func (e *Engine) park(ctx context.Context, r *run) outcome {
	r.rec.Status = store.RunWaiting
	if err := e.commit(ctx, r, false); err != nil {
		return e.commitFailed(r, err)
	}
	e.settle(r)
	return settled
}

func (e *Engine) complete(ctx context.Context, r *run) {
	r.rec.Status, r.rec.WakeAt, r.st.Wait = store.RunCompleted, nil, nil
	if err := e.commit(ctx, r, false); err != nil {
		e.commitFailed(r, err)
		return
	}
	e.m.finished.WithLabelValues(store.RunCompleted).Inc()
	e.settle(r)
}

func (e *Engine) fail(ctx context.Context, r *run, reason string) {
	r.rec.Status, r.rec.Error, r.rec.WakeAt, r.st.Wait = store.RunFailed, sanitize.Clean(reason), nil, nil
	if err := e.commit(ctx, r, false); err != nil {
		e.commitFailed(r, err)
		return
	}
	e.m.finished.WithLabelValues(store.RunFailed).Inc()
	e.settle(r)
}

func (e *Engine) commitFailed(r *run, err error) outcome {
	if !r.inserted {
		return aborted // never stored: the trigger reports the error
	}
	if !errors.Is(err, errFenced) {
		// The run stays owned by this live instance but out of memory; release it so the
		// sweeper retries it from its last commit.
		e.log.Error("commit run", "run", r.rec.ID, "err", err)
		_ = e.release(r.rec.ID)
	}
	return aborted
}

// settle tells waiters the run reached a resting state.
func (e *Engine) settle(r *run) {
	e.notify(r.rec.ID, r.view())
}

// commit writes the run and the writes it owes. running=true keeps the run owned by this
// instance (a mid-run commit before an external effect); otherwise the run is released.
func (e *Engine) commit(ctx context.Context, r *run, running bool) error {
	now := time.Now().UnixMilli()
	rec := r.rec
	rec.UpdatedAt = now
	if running {
		rec.Status = store.RunRunning
	} else {
		rec.Owner = nil
	}
	stateJSON, err := json.Marshal(r.st)
	if err != nil {
		err = fmt.Errorf("encode run state: %w", err)
		if !r.inserted {
			e.accepted(r, err)
		}
		return err
	}
	rec.State = stateJSON
	ops, set := r.ops, r.attrSet
	clear := make([]string, 0, len(r.attrClear))
	for k := range r.attrClear {
		clear = append(clear, k)
	}
	first := !r.inserted
	if first && !r.beginAccept() {
		return errAbandoned // nobody waits for it, and its trigger answered that nothing started
	}
	// A user's commits all go to one writer: they lock the user's row, and would only
	// wait for each other on writers in parallel.
	key := strconv.FormatInt(r.rec.BotID, 10) + "/" + r.channelUserID
	err = e.batch.DoKeyed(ctx, key, func(ctx context.Context, tx store.Tx) error {
		// The statements are queued (Tx.QueueExec): on PostgreSQL the whole group commit
		// goes to the server in one round trip.
		if first {
			// A triggered run is stored together with its user at its first commit point,
			// so a run that needs no external call is accepted and finished in one commit.
			// The statements after the user's find it by its channel id or by the run
			// (r.rec.UserID stays unknown), so none waits for another's answer.
			if err := e.acceptTx(ctx, tx, r); err != nil {
				return err
			}
			if err := e.st.QueueRunOfUser(tx, rec, r.channelUserID); err != nil {
				return err
			}
		} else if err := e.st.UpdateRunOwned(ctx, tx, rec, e.cfg.InstanceID); err != nil {
			return err
		}
		for _, op := range ops {
			if err := op(ctx, tx); err != nil {
				return err
			}
		}
		return e.st.PatchRunUserAttrs(ctx, tx, rec.ID, set, clear)
	})
	if err != nil {
		if first {
			e.accepted(r, err)
		}
		return err
	}
	r.inserted = true
	r.rec.Status, r.rec.Owner, r.rec.UpdatedAt = rec.Status, rec.Owner, now
	r.ops, r.attrSet, r.attrClear = nil, nil, nil
	if first {
		e.accepted(r, nil)
	}
	return nil
}

// ensureAccepted stores a triggered run before its first external call.
func (e *Engine) ensureAccepted(ctx context.Context, r *run) error {
	if r.inserted {
		return nil
	}
	return e.commit(ctx, r, true)
}

// mayCallBeforeAccept reports whether a call that is harmless to repeat, and takes at
// most limit, may run before a triggered run is first stored. It may when the trigger's
// caller waits for the run to end anyway and longer than the call can take: a crash
// during the call leaves the trigger unanswered, so the client retries it. This spares
// the commit that would otherwise come before the call.
func (r *run) mayCallBeforeAccept(limit time.Duration) bool {
	return !r.inserted && r.accept != nil && limit <= r.accept.wait
}
