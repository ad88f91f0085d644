package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/flow"
	"github.com/parleyhq/parley/internal/msg"
	"github.com/parleyhq/parley/internal/sanitize"
	"github.com/parleyhq/parley/internal/store"
)

// maxSendAttempts bounds retries of a send the provider refused for a passing reason
// (rate limited, unavailable); the backoff doubles from 2 s up to a minute.
const maxSendAttempts = 6

func backoff(attempt int, hint time.Duration) time.Duration {
	if hint > 0 {
		return min(hint, 10*time.Minute)
	}
	d := 2 * time.Second << (attempt - 1)
	return min(d, time.Minute)
}

// render substitutes attributes into every text of a message.
func render(c msg.Content, lookup flow.Lookup) msg.Content {
	r := func(s string) string { return flow.Render(s, lookup, flow.EscapeNone) }
	out := c
	out.Text = r(c.Text)
	if len(c.Buttons) > 0 {
		out.Buttons = renderButtons(c.Buttons, r)
	}
	if c.Media != nil {
		m := *c.Media
		m.URL, m.Caption, m.Filename = flow.Render(m.URL, lookup, flow.EscapeURL), r(m.Caption), r(m.Filename)
		out.Media = &m
	}
	if c.Card != nil {
		cd := *c.Card
		cd.Title, cd.Description = r(cd.Title), r(cd.Description)
		cd.MediaURL = flow.Render(cd.MediaURL, lookup, flow.EscapeURL)
		cd.Buttons = renderButtons(cd.Buttons, r)
		out.Card = &cd
	}
	if c.Template != nil {
		t := *c.Template
		t.Components = renderComponents(t.Components, r)
		out.Template = &t
	}
	return out
}

func renderButtons(bs []msg.Button, r func(string) string) []msg.Button {
	out := make([]msg.Button, len(bs))
	for i, b := range bs {
		out[i] = msg.Button{ID: r(b.ID), Title: r(b.Title)}
	}
	return out
}

// renderComponents substitutes attributes into every string inside template components
// (parameter texts, payloads, links), leaving the structure as written.
func renderComponents(cs []map[string]any, r func(string) string) []map[string]any {
	if cs == nil {
		return nil
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case string:
			return r(v)
		case map[string]any:
			m := make(map[string]any, len(v))
			for k, x := range v {
				m[k] = walk(x)
			}
			return m
		case []any:
			l := make([]any, len(v))
			for i, x := range v {
				l[i] = walk(x)
			}
			return l
		}
		return v
	}
	out := make([]map[string]any, len(cs))
	for i, c := range cs {
		out[i] = walk(c).(map[string]any)
	}
	return out
}

func (r *run) recipient() channel.Recipient {
	rc := channel.Recipient{ChannelUserID: r.channelUserID, LastInbound: r.lastInbound}
	if p := r.attrs["user.phone_no"]; strings.HasPrefix(p, "+") {
		rc.Phone = p
	} else if r.channelUserID != "" {
		rc.Phone = "+" + r.channelUserID
	}
	return rc
}

// sendContent sends c as the run's current step. ok=false means the run did not go on
// (it failed, parked for a retry, or was lost) and out says how.
func (e *Engine) sendContent(ctx context.Context, r *run, nodeID string, c msg.Content) (out outcome, ok bool) {
	now := time.Now()
	sender, err := e.cfg.Channels.Sender(ctx, r.rec.BotID, r.rec.Channel)
	if err != nil {
		return e.failStep(ctx, r, now, fmt.Sprintf("channel %s: %v", r.rec.Channel, err)), false
	}
	step := r.st.Step
	runID := r.rec.ID
	payload, err := json.Marshal(c)
	if err != nil {
		return e.failStep(ctx, r, now, fmt.Sprintf("encode message: %v", err)), false
	}
	m := store.Message{BotID: r.rec.BotID, RunID: &runID, Step: &step, Channel: r.rec.Channel,
		Sender: store.SenderBot, Type: c.Kind(), Text: c.Summary(), Payload: payload, CreatedAt: now.UnixMilli()}
	key := runID + ":" + strconv.Itoa(step)
	if !sender.External() {
		sent, err := sender.Send(ctx, r.recipient(), c, key)
		if err != nil {
			return e.failStep(ctx, r, now, "message not sent: "+err.Error()), false
		}
		// A local channel's id means nothing outside Parley: leaving it out keeps the
		// message out of the provider-id index on the hot path.
		m.Status = sent.Status
		r.ops = append(r.ops, e.insertMessage(r, m))
		return proceed, true
	}
	return e.sendExternal(ctx, r, sender, nodeID, c, m, key)
}

// sendExternal sends through a provider. The message is stored as pending and committed
// before the call, so a crash can never lead to sending it twice: a send interrupted
// without an answer is retried only when the provider drops duplicates.
//
// The provider's calls (the capability check, the send with its wait for a pacing slot)
// are made off the workers (see outside.go): each takes a call slot first, and the node
// is visited again with the answer.
func (e *Engine) sendExternal(ctx context.Context, r *run, sender channel.Sender, nodeID string, c msg.Content, m store.Message, key string) (outcome, bool) {
	now := time.Now()
	step := *m.Step
	if a := r.takeAnswer(callSend, nodeID); a != nil {
		if a.err != nil {
			return e.sendFailed(ctx, r, nodeID, now, channel.AsError(a.err), a.attempt, true)
		}
		r.st.Pending = nil
		status := a.sent.Status
		if status == "" {
			status = store.MsgSent
		}
		r.ops = append(r.ops, e.setOutcome(r.rec.ID, step, status, &a.sent.ProviderMessageID, ""))
		return proceed, true
	}
	prevAttempt := 0
	if w := r.st.Wait; w != nil && w.Kind == waitRetry {
		prevAttempt = w.Attempt
	}
	// A capability check's answer stays in memory until the send's slot is taken.
	probed := r.answer
	if probed != nil && (probed.kind != callProbe || probed.node != nodeID || probed.step != step) {
		probed = nil
	}
	if probed != nil {
		prevAttempt = probed.attempt
	}
	p := r.st.Pending
	resend := p != nil && p.Kind == effectMessage && p.Step == step
	if resend && prevAttempt == 0 && !dropsDuplicates(sender) {
		// Picked up after a crash with the send in flight: it may have gone out.
		r.st.Wait, r.st.Pending = nil, nil
		r.ops = append(r.ops, e.setOutcome(r.rec.ID, step, store.MsgFailed, nil,
			"interrupted by a restart before the provider answered; not sent again to avoid a duplicate"))
		return proceed, true
	}
	prober, probes := sender.(channel.Prober)
	if probed != nil && probed.err != nil {
		r.answer, r.st.Wait = nil, nil
		return e.sendFailed(ctx, r, nodeID, now, channel.AsError(probed.err), prevAttempt, false)
	}
	if probed != nil && !probed.reachable {
		r.answer, r.st.Wait = nil, nil
		return e.failStep(ctx, r, now, fmt.Sprintf("user %s is not reachable on %s (capability check)", r.recipient().Phone, r.rec.Channel)), false
	}
	// Every way on from here calls the provider: a call slot first, before anything of
	// the run changes (a run that waits for one comes back here as it was).
	if out, ok := e.takeSlot(ctx, r); !ok {
		return out, false
	}
	if probed != nil {
		r.answer, r.st.Probed = nil, true
	}
	r.st.Wait = nil
	to := r.recipient()
	switch {
	case !resend && probes && !r.st.Probed:
		if err := e.ensureAccepted(ctx, r); err != nil {
			return e.commitFailed(r, err), false
		}
		e.callOutside(r, callProbe, nodeID, prevAttempt, func(ctx context.Context) answer {
			ok, err := prober.Reachable(ctx, to)
			return answer{reachable: ok, err: err}
		})
		return detached, false
	case !resend:
		m.Status = store.MsgPending
		r.ops = append(r.ops, e.insertMessage(r, m))
		r.st.Pending = &pendingEffect{Kind: effectMessage, Node: nodeID, Step: step}
		if err := e.commit(ctx, r, true); err != nil {
			return e.commitFailed(r, err), false
		}
	}
	e.callOutside(r, callSend, nodeID, prevAttempt, func(ctx context.Context) answer {
		sent, err := sender.Send(ctx, to, c, key)
		return answer{sent: sent, err: err}
	})
	return detached, false
}

// insertMessage stores m for r. The user id is read when the commit runs: a new user's
// id comes from the upsert earlier in the same transaction.
func (e *Engine) insertMessage(r *run, m store.Message) func(context.Context, store.Tx) error {
	return func(ctx context.Context, tx store.Tx) error {
		m.UserID = r.rec.UserID
		return e.st.AddMessage(ctx, tx, m)
	}
}

func (e *Engine) setOutcome(runID string, step int, status string, providerID *string, errText string) func(context.Context, store.Tx) error {
	return func(ctx context.Context, tx store.Tx) error {
		return e.st.SetStepMessageOutcome(ctx, tx, runID, step, status, providerID, sanitize.Clean(errText))
	}
}

// sendFailed parks the run for a retry when the failure is passing, else fails it.
func (e *Engine) sendFailed(ctx context.Context, r *run, nodeID string, now time.Time, ce *channel.Error, prevAttempt int, stored bool) (outcome, bool) {
	attempt := prevAttempt + 1
	if ce.Retryable && attempt < maxSendAttempts {
		e.log.Warn("send failed, will retry", "run", r.rec.ID, "node", nodeID, "attempt", attempt, "err", ce)
		r.st.Wait = &waitState{Kind: waitRetry, Node: nodeID, Attempt: attempt}
		at := now.Add(backoff(attempt, ce.RetryAfter)).UnixMilli()
		r.rec.WakeAt = &at
		return e.park(ctx, r), false
	}
	r.st.Pending = nil
	if stored {
		r.ops = append(r.ops, e.setOutcome(r.rec.ID, r.st.Step, store.MsgFailed, nil, ce.Error()))
	}
	return e.failStep(ctx, r, now, "message not sent: "+ce.Error()), false
}

func dropsDuplicates(s channel.Sender) bool {
	d, ok := s.(channel.Deduplicator)
	return ok && d.DropsDuplicates()
}
