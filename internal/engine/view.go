package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/parleyhq/parley/internal/store"
)

// RunView is a run as the platform API shows it.
type RunView struct {
	RunID         string       `json:"run_id"`
	FlowKey       string       `json:"flow_key"`
	FlowVersion   int          `json:"flow_version"`
	Status        string       `json:"status"`
	CurrentNode   string       `json:"current_node,omitempty"`
	Channel       string       `json:"channel"`
	ChannelUserID string       `json:"channel_user_id"`
	Steps         []stepRecord `json:"steps"`
	Error         string       `json:"error,omitempty"`
	WaitingFor    string       `json:"waiting_for,omitempty"` // input or retry, when waiting
	CreatedAt     time.Time    `json:"created_at"`
	UpdatedAt     time.Time    `json:"updated_at"`
	// Duplicate marks the answer to a retried trigger: the first run, not a new one.
	Duplicate bool `json:"duplicate,omitempty"`
}

func (v RunView) settled() bool {
	switch v.Status {
	case store.RunCompleted, store.RunFailed, store.RunWaiting:
		return true
	}
	return false
}

func (r *run) view() RunView {
	v := RunView{
		RunID: r.rec.ID, FlowKey: r.flowKey, FlowVersion: r.rec.FlowVersion, Status: r.rec.Status,
		CurrentNode: r.rec.Node, Channel: r.rec.Channel, ChannelUserID: r.channelUserID,
		Steps: append([]stepRecord{}, r.st.Steps...), Error: r.rec.Error,
		CreatedAt: time.UnixMilli(r.rec.CreatedAt).UTC(), UpdatedAt: time.UnixMilli(r.rec.UpdatedAt).UTC(),
	}
	if v.Status == store.RunCompleted || v.Status == store.RunFailed {
		v.CurrentNode = ""
	}
	if r.rec.Status == store.RunWaiting && r.st.Wait != nil {
		v.WaitingFor = r.st.Wait.Kind
	}
	return v
}

// View reads a bot's run; ErrRunNotFound when the bot has no such run.
func (e *Engine) View(ctx context.Context, botID int64, runID string) (RunView, error) {
	rec, err := e.st.RunByID(ctx, nil, runID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && rec.BotID != botID) {
		return RunView{}, fmt.Errorf("%w: %s", ErrRunNotFound, runID)
	}
	if err != nil {
		return RunView{}, err
	}
	r := &run{rec: rec}
	if err := json.Unmarshal(rec.State, &r.st); err != nil {
		return RunView{}, fmt.Errorf("run %s state: %w", runID, err)
	}
	if cf, err := e.flows.version(ctx, rec.FlowID, rec.FlowVersion); err == nil {
		r.flowKey = cf.key
	}
	if u, err := e.st.UserByID(ctx, nil, rec.UserID); err == nil {
		r.channelUserID = u.ChannelUserID
	}
	return r.view(), nil
}

// FlowChanged tells the engine a bot's flow was imported, so new runs use it at once.
func (e *Engine) FlowChanged(botID int64, key string) { e.flows.forget(botID, key) }
