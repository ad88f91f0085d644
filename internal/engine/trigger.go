package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
}

// Trigger creates or updates the user and starts the flow for them. The run is durable
// once Trigger returns.
func (e *Engine) Trigger(ctx context.Context, req TriggerRequest) (RunView, error) {
	cf, err := e.flows.current(ctx, req.BotID, req.FlowKey)
	if err != nil {
		return RunView{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return RunView{}, fmt.Errorf("new run id: %w", err)
	}
	now := time.Now()
	owner := e.cfg.InstanceID
	r := &run{
		rec: store.Run{ID: id.String(), BotID: req.BotID, FlowID: cf.id, FlowVersion: cf.version, Channel: req.Channel,
			Status: store.RunQueued, Node: cf.f.Start, State: []byte(`{"step":0}`), Owner: &owner,
			CreatedAt: now.UnixMilli(), UpdatedAt: now.UnixMilli()},
		flowKey:       cf.key,
		customerID:    req.CustomerID,
		channelUserID: req.Digits,
	}
	up := store.UserUpsert{BotID: req.BotID, ChannelUserID: req.Digits, Channel: req.Channel, Attrs: req.Attrs,
		Defaults: map[string]string{"user.user_name": req.Digits}}
	var existing string
	var user store.User
	err = e.batch.Do(ctx, func(ctx context.Context, tx store.Tx) error {
		existing = ""
		if req.IdempotencyKey != "" {
			got, claimed, err := e.st.ClaimIdempotencyKey(ctx, tx, req.BotID, req.IdempotencyKey, r.rec.ID,
				now.UnixMilli(), now.Add(-IdempotencyWindow).UnixMilli())
			if err != nil {
				return err
			}
			if !claimed {
				existing = got
				return nil
			}
		}
		u, err := e.st.UpsertUser(ctx, tx, up)
		if err != nil {
			return err
		}
		user = u
		rec := r.rec
		rec.UserID = u.ID
		return e.st.InsertRun(ctx, tx, rec)
	})
	if err != nil {
		return RunView{}, fmt.Errorf("accept trigger: %w", err)
	}
	if existing != "" {
		v, err := e.View(ctx, req.BotID, existing)
		if err != nil {
			return RunView{}, err
		}
		v.Duplicate = true
		if req.Wait > 0 && !v.settled() {
			return e.Wait(ctx, req.BotID, existing, req.Wait)
		}
		return v, nil
	}
	e.m.started.Inc()
	r.rec.UserID = user.ID
	r.attrs, r.lastInbound = user.Attrs, user.LastInboundAt
	var settledCh chan RunView
	if req.Wait > 0 {
		settledCh = e.subscribe(r.rec.ID)
	}
	queued := r.view()
	e.enqueue(r)
	if settledCh == nil {
		return queued, nil
	}
	return e.await(ctx, req.BotID, r.rec.ID, settledCh, req.Wait)
}

// Wait returns the run once it completes, fails or parks, or its state after timeout.
func (e *Engine) Wait(ctx context.Context, botID int64, runID string, timeout time.Duration) (RunView, error) {
	ch := e.subscribe(runID)
	v, err := e.View(ctx, botID, runID)
	if err != nil || v.settled() {
		e.unsubscribe(runID, ch)
		return v, err
	}
	return e.await(ctx, botID, runID, ch, timeout)
}

// await waits for this instance's notification; a run that moved to another instance
// is noticed by polling the database now and then.
func (e *Engine) await(ctx context.Context, botID int64, runID string, ch chan RunView, timeout time.Duration) (RunView, error) {
	defer e.unsubscribe(runID, ch)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for {
		select {
		case v := <-ch:
			return v, nil
		case <-poll.C:
			if v, err := e.View(ctx, botID, runID); err != nil || v.settled() {
				return v, err
			}
		case <-deadline.C:
			return e.View(ctx, botID, runID)
		case <-ctx.Done():
			return RunView{}, ctx.Err()
		}
	}
}

// loadRun reads a run claimed from the database, with its user, ready to execute.
func (e *Engine) loadRun(ctx context.Context, id string) (*run, error) {
	rec, err := e.st.RunByID(ctx, nil, id)
	if err != nil {
		return nil, err
	}
	r := &run{rec: rec}
	if err := json.Unmarshal(rec.State, &r.st); err != nil {
		return nil, fmt.Errorf("run %s state: %w", id, err)
	}
	u, err := e.st.UserByID(ctx, nil, rec.UserID)
	if err != nil {
		return nil, err
	}
	r.channelUserID, r.attrs, r.lastInbound = u.ChannelUserID, u.Attrs, u.LastInboundAt
	b, err := e.st.BotByID(ctx, rec.BotID)
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
