package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/parleyhq/parley/internal/flow"
	"github.com/parleyhq/parley/internal/sanitize"
	"github.com/parleyhq/parley/internal/store"
)

// Inbound is a message from a user, from any channel.
type Inbound struct {
	BotID      int64
	CustomerID int64
	Channel    string
	// ChannelUserID is the phone's digits, or a provider-scoped id for users without one.
	ChannelUserID string
	// Phone is E.164, empty when unknown.
	Phone string
	Name  string
	Type  string
	Text  string
	// Payload is a tapped button's payload or reply id.
	Payload    string
	ProviderID string
	Raw        json.RawMessage
	Timestamp  time.Time
}

// InboundResult says what an inbound message did.
type InboundResult struct {
	MessageID int64 `json:"message_id"`
	// Duplicate is true when the provider delivered this message before.
	Duplicate bool `json:"duplicate,omitempty"`
	// Started is the run a button payload started.
	Started string `json:"started_run_id,omitempty"`
	// Resumed is the waiting run the reply resumed.
	Resumed string `json:"resumed_run_id,omitempty"`
}

// Inbound stores a user's message and acts on it: a button payload naming a flow starts
// that flow; otherwise a reply resumes the user's run waiting in an input node.
func (e *Engine) Inbound(ctx context.Context, in Inbound) (InboundResult, error) {
	if in.ChannelUserID == "" {
		return InboundResult{}, errors.New("inbound message without a sender")
	}
	attrs := map[string]string{"user.channel": in.Channel}
	if in.Phone != "" {
		attrs["user.phone_no"] = in.Phone
	}
	defaults := map[string]string{"user.user_name": in.ChannelUserID}
	if in.Name != "" {
		defaults["user.user_name"] = in.Name
	}
	at := in.Timestamp
	if at.IsZero() {
		at = time.Now()
	}
	m := store.Message{BotID: in.BotID, Channel: in.Channel, Sender: store.SenderUser, Type: in.Type, Text: in.Text,
		Status: store.MsgReceived, CreatedAt: at.UnixMilli(), UpdatedAt: time.Now().UnixMilli()}
	if len(in.Raw) > 0 {
		m.Payload = in.Raw
	}
	if in.ProviderID != "" {
		m.ProviderID = &in.ProviderID
	}
	var user store.User
	var res InboundResult
	err := e.batch.Do(ctx, func(ctx context.Context, tx store.Tx) error {
		u, err := e.st.UpsertUser(ctx, tx, store.UserUpsert{BotID: in.BotID, ChannelUserID: in.ChannelUserID,
			Channel: in.Channel, Attrs: attrs, Defaults: defaults, Inbound: true})
		if err != nil {
			return err
		}
		user = u
		m.UserID = u.ID
		id, inserted, err := e.st.InsertMessage(ctx, tx, m)
		res = InboundResult{MessageID: id, Duplicate: !inserted}
		return err
	})
	if err != nil {
		return InboundResult{}, fmt.Errorf("store inbound message: %w", err)
	}
	if res.Duplicate {
		return res, nil
	}
	// The message is stored: what it does (start a flow, answer an input) is done even if
	// the caller goes away, since a redelivery would be a duplicate that does nothing.
	ctx = context.WithoutCancel(ctx)
	if key, data, ok := e.payloadFlow(ctx, in.BotID, in.Payload); ok {
		for k, v := range attrs {
			data[k] = v
		}
		v, err := e.Trigger(ctx, TriggerRequest{BotID: in.BotID, CustomerID: in.CustomerID, FlowKey: key, Channel: in.Channel,
			Phone: in.Phone, Digits: in.ChannelUserID, Attrs: data, Unbounded: true})
		if err != nil {
			return res, fmt.Errorf("start flow %s from a button: %w", key, err)
		}
		res.Started = v.RunID
		return res, nil
	}
	reply := in.Payload
	if reply == "" {
		reply = in.Text
	}
	if reply == "" {
		return res, nil // nothing an input node could save (e.g. a photo without a caption)
	}
	id, err := e.resume(ctx, user, reply)
	res.Resumed = id
	return res, err
}

// payloadFlow reads a button payload that starts a flow: flow_<key>||data_... (see
// flow.ParseButtonPayload) or a bare key of one of the bot's flows.
func (e *Engine) payloadFlow(ctx context.Context, botID int64, payload string) (string, map[string]string, bool) {
	if payload == "" {
		return "", nil, false
	}
	key, data, ok := flow.ParseButtonPayload(payload)
	if !ok {
		if !flow.ValidKey(payload) {
			return "", nil, false
		}
		key, data = payload, map[string]string{}
	}
	if _, err := e.flows.current(ctx, botID, key); err != nil {
		return "", nil, false
	}
	if data == nil {
		data = map[string]string{}
	}
	for k, v := range data { // %-escapes may decode to anything
		data[k] = sanitize.Truncate(sanitize.Clean(v), sanitize.MaxAttrValue)
	}
	return key, data, true
}

// resume hands reply to the user's newest run waiting in an input node.
func (e *Engine) resume(ctx context.Context, u store.User, reply string) (string, error) {
	runs, err := e.st.WaitingRuns(ctx, u.ID)
	if err != nil {
		return "", err
	}
	for _, rec := range runs {
		var st state
		if err := json.Unmarshal(rec.State, &st); err != nil || st.Wait == nil || st.Wait.Kind != waitInput {
			continue
		}
		st.Wait, st.Reply = nil, &reply
		b, err := json.Marshal(st)
		if err != nil {
			return "", fmt.Errorf("encode run state: %w", err)
		}
		ok, err := e.st.ClaimWaitingRun(ctx, rec.ID, rec.WaitSeq, e.cfg.InstanceID, b)
		if err != nil {
			return "", err
		}
		if !ok {
			continue // timed out or answered meanwhile
		}
		owner := e.cfg.InstanceID
		rec.Status, rec.Owner, rec.State, rec.WaitSeq, rec.WakeAt = store.RunRunning, &owner, b, rec.WaitSeq+1, nil
		r := &run{rec: rec, st: st, channelUserID: u.ChannelUserID, attrs: u.Attrs, lastInbound: u.LastInboundAt, inserted: true}
		bot, err := e.resumedBot(ctx, rec)
		if err != nil {
			// The run is claimed, with the reply in its state, but cannot start here:
			// release it, and a sweep resumes it with the reply once the store answers.
			e.log.Error("resume run: read its bot", "run", rec.ID, "err", err)
			if rerr := e.release(rec.ID); rerr != nil {
				return "", errors.Join(err, rerr)
			}
			return rec.ID, nil
		}
		r.customerID = bot.CustomerID
		if !e.enqueue(ctx, r) {
			_ = e.release(rec.ID) // shutting down: the next instance resumes it
		}
		return rec.ID, nil
	}
	return "", nil
}

// resumedBot reads the bot of a run a reply just claimed.
func (e *Engine) resumedBot(ctx context.Context, rec store.Run) (store.Bot, error) {
	if h := e.cfg.loadHook; h != nil {
		if err := h(rec.ID); err != nil {
			return store.Bot{}, err
		}
	}
	return e.st.BotByID(ctx, rec.BotID)
}
