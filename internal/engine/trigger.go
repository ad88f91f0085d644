package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/google/uuid"

	"github.com/parleyhq/parley/internal/store"
)

// IdempotencyWindow is how long a trigger's idempotency key returns the first run.
const IdempotencyWindow = 24 * time.Hour

// TriggerRequest starts a flow for a user.
type TriggerRequest struct {
	BotID      int64
	CustomerID int64
	FlowKey    string
	Channel    string
	// Phone in E.164 ("+919876543210") and its digits, the channel user id.
	Phone  string
	Digits string
	// Attrs are merged into the user's attributes (system ones under "user.").
	Attrs map[string]string
	// IdempotencyKey makes a retried trigger return the first run instead of a new one.
	IdempotencyKey string
	// Wait, when positive, returns once the run completes, fails or parks, or after Wait.
	Wait time.Duration
	// Received is when the request arrived, from which Wait and the acceptance bound
	// count (zero: when Trigger is called).
	Received time.Time
	// Unbounded waits for acceptance however long it takes (and however ctx ends): for
	// a flow started by a message already stored, whose start must not be dropped, since
	// the provider's redelivery of the message would be recognised as a duplicate.
	Unbounded bool
}

// acceptance is what a triggered run's first commit does besides storing the run.
type acceptance struct {
	user           store.UserUpsert
	idempotencyKey string
	// wait is how long the trigger's caller waits for the run to end (zero: not at all).
	wait time.Duration
	// duplicateOf is the run that already holds the idempotency key.
	duplicateOf string
}

// acceptOutcome tells Trigger how the first commit went.
type acceptOutcome struct {
	view RunView
	// duplicate is the run an idempotency key already belongs to.
	duplicate string
	err       error
}

// errDuplicate rolls back a first commit whose idempotency key is taken.
var errDuplicate = errors.New("idempotency key already used")

// acceptTx claims the idempotency key and creates or updates the user, in the run's
// first commit.
func (e *Engine) acceptTx(ctx context.Context, tx store.Tx, r *run) error {
	a := r.accept
	if a.idempotencyKey != "" {
		now := time.Now()
		got, claimed, err := e.st.ClaimIdempotencyKey(ctx, tx, r.rec.BotID, a.idempotencyKey, r.rec.ID,
			now.UnixMilli(), now.Add(-IdempotencyWindow).UnixMilli())
		if err != nil {
			return err
		}
		if !claimed {
			a.duplicateOf = got // reported by accepted(); this run is dropped
			return errDuplicate
		}
	}
	return e.st.QueueUpsertUser(tx, a.user)
}

// holds reports whether the stored user u already has what a trigger would write: then
// the run's commit leaves the user's row alone.
func holds(u store.User, channel string, attrs map[string]string) bool {
	if _, ok := u.Attrs["user.user_name"]; !ok || u.Channel != channel {
		return false
	}
	for k, v := range attrs {
		if got, ok := u.Attrs[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// accepted reports a run's first commit to the Trigger waiting for it.
func (e *Engine) accepted(r *run, err error) {
	if r.accepted == nil {
		return
	}
	out := acceptOutcome{err: err}
	if errors.Is(err, errDuplicate) {
		out = acceptOutcome{duplicate: r.accept.duplicateOf}
	} else if err == nil {
		e.m.started.Inc()
		out.view = r.view()
	}
	r.accepted <- out
	r.accepted = nil
}

// Trigger creates or updates the user and starts the flow for them. When it returns
// without error the run is durable; a run that needs no external call (a sandbox message,
// decisions, attributes) has usually finished by then, in the same single commit.
//
// Trigger never waits longer than its cap: req.Wait when it is set (but at least
// MinAcceptWait), Config.AcceptTimeout when not, counted from req.Received; or until ctx
// ends. A run not stored by then never will be: Trigger returns ErrNotAccepted (or ctx's
// error) and nothing was started. (A run whose first commit is under way at that moment
// is waited for: its outcome comes with that one transaction.) With req.Wait, the run is
// returned once it settles, or as it is when the cap passes.
func (e *Engine) Trigger(ctx context.Context, req TriggerRequest) (RunView, error) {
	arrival := req.Received
	if arrival.IsZero() {
		arrival = time.Now()
	}
	cf, err := e.flows.current(ctx, req.BotID, req.FlowKey)
	if err != nil {
		return RunView{}, err
	}
	// The stored attributes, for the nodes that run before the first commit; the commit
	// itself merges only this trigger's attributes, so concurrent changes survive.
	attrs := map[string]string{"user.user_name": req.Digits}
	var lastInbound *time.Time
	unchanged := false
	if u, err := e.st.UserByChannelID(ctx, req.BotID, req.Digits); err == nil {
		maps.Copy(attrs, u.Attrs)
		lastInbound = u.LastInboundAt
		unchanged = holds(u, req.Channel, req.Attrs)
	} else if !errors.Is(err, store.ErrNotFound) {
		return RunView{}, err
	}
	maps.Copy(attrs, req.Attrs)
	id, err := uuid.NewV7()
	if err != nil {
		return RunView{}, fmt.Errorf("new run id: %w", err)
	}
	now := time.Now()
	owner := e.cfg.InstanceID
	r := &run{
		rec: store.Run{ID: id.String(), BotID: req.BotID, FlowID: cf.id, FlowVersion: cf.version, Channel: req.Channel,
			Status: store.RunQueued, Node: cf.f.Start, Owner: &owner, CreatedAt: now.UnixMilli(), UpdatedAt: now.UnixMilli()},
		flowKey:       cf.key,
		customerID:    req.CustomerID,
		channelUserID: req.Digits,
		attrs:         attrs,
		lastInbound:   lastInbound,
		accept: &acceptance{idempotencyKey: req.IdempotencyKey, wait: req.Wait, user: store.UserUpsert{BotID: req.BotID,
			ChannelUserID: req.Digits, Channel: req.Channel, Attrs: req.Attrs,
			Defaults: map[string]string{"user.user_name": req.Digits}, Unchanged: unchanged}},
		accepted: make(chan acceptOutcome, 1),
	}
	var settledCh chan RunView
	if req.Wait > 0 {
		settledCh = e.subscribe(r.rec.ID)
		defer e.unsubscribe(r.rec.ID, settledCh)
	}
	r.acceptBy = arrival.Add(e.cfg.AcceptTimeout)
	switch {
	case req.Unbounded:
		ctx = context.WithoutCancel(ctx)
		r.acceptBy = arrival.Add(100 * 365 * 24 * time.Hour)
	case req.Wait > 0:
		r.acceptBy = arrival.Add(max(req.Wait, MinAcceptWait))
	}
	acceptedCh, acceptBy := r.accepted, r.acceptBy
	if !e.enqueue(ctx, r) {
		return RunView{}, ErrStopping
	}
	out, err := e.awaitAcceptance(ctx, r, acceptedCh, acceptBy)
	if err != nil {
		return RunView{}, err
	}
	until := arrival.Add(req.Wait)
	switch {
	case out.err != nil:
		return RunView{}, fmt.Errorf("accept trigger: %w", out.err)
	case out.duplicate != "":
		v, err := e.View(ctx, req.BotID, out.duplicate)
		if err != nil {
			return RunView{}, err
		}
		if req.Wait > 0 && !v.settled() {
			v, err = e.waitUntil(ctx, req.BotID, out.duplicate, until)
		}
		v.Duplicate = true
		return v, err
	case settledCh == nil || out.view.settled():
		return out.view, nil
	}
	return e.await(ctx, req.BotID, r.rec.ID, settledCh, until, out.view)
}

// MinAcceptWait is the least time a waiting trigger is given to be accepted, however
// short its wait: below it, ordinary load would turn short waits into refusals.
const MinAcceptWait = time.Second

// ErrNotAccepted is returned by Trigger when the run could not be stored in time (the
// server is too busy with that customer's runs): nothing was started, and the trigger
// may be sent again.
var ErrNotAccepted = errors.New("the trigger was not accepted in time; nothing was started")

// awaitAcceptance waits for the outcome of r's first commit until the deadline or the
// end of ctx; then it gives the run up, unless its commit is already under way.
func (e *Engine) awaitAcceptance(ctx context.Context, r *run, acceptedCh chan acceptOutcome, deadline time.Time) (acceptOutcome, error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var giveUp error
	select {
	case out := <-acceptedCh:
		return out, nil
	case <-timer.C:
		giveUp = ErrNotAccepted
	case <-ctx.Done():
		giveUp = ctx.Err()
	}
	if r.abandon() {
		e.m.notAccepted.Inc()
		return acceptOutcome{}, giveUp
	}
	return <-acceptedCh, nil // the run is being stored: one transaction away
}

// ErrStopping is returned for work offered to an engine that is shutting down.
var ErrStopping = errors.New("the server is shutting down")

// Wait returns the run once it completes, fails or parks, or its state after timeout.
func (e *Engine) Wait(ctx context.Context, botID int64, runID string, timeout time.Duration) (RunView, error) {
	return e.waitUntil(ctx, botID, runID, time.Now().Add(timeout))
}

func (e *Engine) waitUntil(ctx context.Context, botID int64, runID string, until time.Time) (RunView, error) {
	ch := e.subscribe(runID)
	defer e.unsubscribe(runID, ch)
	v, err := e.View(ctx, botID, runID)
	if err != nil || v.settled() {
		return v, err
	}
	return e.await(ctx, botID, runID, ch, until, v)
}

// finalReadTimeout bounds the read of a run's state when a wait runs out, so that the
// answer is not held up past its deadline by a slow database: the state last known is
// returned instead.
const finalReadTimeout = 100 * time.Millisecond

// await waits until the deadline for this instance's notification; a run that moved to
// another instance is noticed by polling the database now and then. At the deadline it
// returns the run as it then is (or, if the database does not answer at once, as it was
// last seen: last). The caller unsubscribes.
func (e *Engine) await(ctx context.Context, botID int64, runID string, ch chan RunView, until time.Time, last RunView) (RunView, error) {
	deadline := time.NewTimer(time.Until(until))
	defer deadline.Stop()
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for {
		select {
		case v := <-ch:
			return v, nil
		case <-poll.C:
			v, err := e.viewWithin(ctx, botID, runID, time.Until(until))
			if err == nil {
				if last = v; v.settled() {
					return v, nil
				}
			}
		case <-deadline.C:
			if v, err := e.viewWithin(ctx, botID, runID, finalReadTimeout); err == nil {
				return v, nil
			}
			if ctx.Err() != nil {
				return RunView{}, ctx.Err()
			}
			return last, nil
		case <-ctx.Done():
			return RunView{}, ctx.Err()
		}
	}
}

// viewWithin reads the run, giving up after d whether or not the database honours the
// context by then (a busy SQLite reader may not, at once): a wait's answer must not
// outlive its cap. A read given up finishes in the background.
func (e *Engine) viewWithin(ctx context.Context, botID int64, runID string, d time.Duration) (RunView, error) {
	if d <= 0 {
		return RunView{}, context.DeadlineExceeded
	}
	type result struct {
		v   RunView
		err error
	}
	done := make(chan result, 1)
	rctx, cancel := context.WithTimeout(ctx, d)
	go func() {
		defer cancel()
		v, err := e.View(rctx, botID, runID)
		done <- result{v, err}
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.v, r.err
	case <-timer.C:
		return RunView{}, context.DeadlineExceeded
	}
}

// errUnrunnable marks a claimed run that no instance could ever execute.
var errUnrunnable = errors.New("unrunnable")

// loadRun reads a run claimed from the database, with its user, ready to execute. An
// error wrapping errUnrunnable means the stored run can never execute (its state does
// not decode, its user or bot is gone); any other is the store's and may pass.
func (e *Engine) loadRun(ctx context.Context, id string) (*run, error) {
	if h := e.cfg.loadHook; h != nil {
		if err := h(id); err != nil {
			return nil, err
		}
	}
	rec, err := e.st.RunByID(ctx, nil, id)
	if err != nil {
		return nil, err
	}
	r := &run{rec: rec, inserted: true}
	if err := json.Unmarshal(rec.State, &r.st); err != nil {
		return nil, fmt.Errorf("%w: run %s state: %v", errUnrunnable, id, err)
	}
	u, err := e.st.UserByID(ctx, nil, rec.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %v", errUnrunnable, err)
	}
	if err != nil {
		return nil, err
	}
	r.channelUserID, r.attrs, r.lastInbound = u.ChannelUserID, u.Attrs, u.LastInboundAt
	b, err := e.st.BotByID(ctx, rec.BotID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %v", errUnrunnable, err)
	}
	if err != nil {
		return nil, err
	}
	r.customerID = b.CustomerID
	if w := r.st.Wait; w != nil && w.Kind == waitInput && rec.WakeAt != nil && *rec.WakeAt <= time.Now().UnixMilli() {
		r.resumedByTimeout = true
		r.st.Wait = nil
	}
	return r, nil
}

// ErrRunNotFound is returned for a run id the bot does not have.
var ErrRunNotFound = errors.New("run not found")
