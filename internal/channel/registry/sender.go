package registry

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/msg"
)

// CustomerServiceWindow is how long after a user's last message WhatsApp accepts
// messages other than templates.
const CustomerServiceWindow = 24 * time.Hour

// wrapped is a provider adapter with the rules Parley applies before every send: the
// WhatsApp customer-service window and per-sender pacing. It forwards what the engine
// asks of the adapter (External, DropsDuplicates) so wrapping changes no behaviour.
type wrapped struct {
	inner   channel.Sender
	channel string
	// window enforces WhatsApp's 24-hour customer-service window.
	window bool
	// sender names the provider identity pacing is kept for ("whatsapp:104242").
	sender  string
	rate    float64 // messages per second; 0 = unpaced
	pacer   pacer
	maxWait time.Duration
	now     func() time.Time
}

// Send checks the window, waits for a send slot, and sends through the adapter.
func (w *wrapped) Send(ctx context.Context, to channel.Recipient, c msg.Content, idempotencyKey string) (channel.Sent, error) {
	if w.window && c.Template == nil && !windowOpen(to.LastInbound, w.now()) {
		// Checked here rather than left to the provider (error 131047): the answer is
		// certain, costs no request and no pacing slot, and names the rule.
		return channel.Sent{}, windowClosed(to.LastInbound)
	}
	if c.Template != nil && w.channel == channel.WhatsApp {
		c.Template = normalizeTemplate(c.Template)
	}
	if w.rate > 0 {
		if err := pace(ctx, w.pacer, w.sender, w.rate, w.maxWait, w.now); err != nil {
			return channel.Sent{}, err
		}
	}
	return w.inner.Send(ctx, to, c, idempotencyKey)
}

// External is the adapter's.
func (w *wrapped) External() bool { return w.inner.External() }

// DropsDuplicates is the adapter's (false when it does not say).
func (w *wrapped) DropsDuplicates() bool {
	d, ok := w.inner.(channel.Deduplicator)
	return ok && d.DropsDuplicates()
}

// probing is a wrapped adapter that can check reachability (RCS capabilities). It is a
// separate type so the engine sees channel.Prober only on adapters that implement it.
type probing struct {
	*wrapped
	prober channel.Prober
}

// Reachable is the adapter's capability check; it is not paced, being a different
// provider call with its own quota.
func (p probing) Reachable(ctx context.Context, to channel.Recipient) (bool, error) {
	return p.prober.Reachable(ctx, to)
}

func windowOpen(last *time.Time, now time.Time) bool {
	return last != nil && now.Sub(*last) < CustomerServiceWindow
}

func windowClosed(last *time.Time) *channel.Error {
	why := "the user has never written to this bot"
	if last != nil {
		why = "the user last wrote at " + last.UTC().Format(time.RFC3339) + ", more than 24 hours ago"
	}
	return &channel.Error{Kind: channel.KindWindowClosed,
		Message: "whatsapp: outside the 24-hour customer-service window only template messages can be sent (" + why + "); send an approved template instead"}
}

// normalizeTemplate writes every component's index as a string. Integrations write it
// as a number or a string (both appear in Meta's and partners' examples); sending one
// form consistently keeps the request the same whoever wrote the template. The
// components are copied, not changed in place.
func normalizeTemplate(t *msg.Template) *msg.Template {
	var out *msg.Template
	for i, comp := range t.Components {
		v, ok := comp["index"]
		if !ok {
			continue
		}
		var s string
		switch n := v.(type) {
		case float64:
			if n != float64(int64(n)) {
				continue
			}
			s = strconv.FormatInt(int64(n), 10)
		case int:
			s = strconv.Itoa(n)
		case int64:
			s = strconv.FormatInt(n, 10)
		case json.Number:
			s = n.String()
		default:
			continue
		}
		if out == nil {
			cp := *t
			cp.Components = append([]map[string]any(nil), t.Components...)
			out = &cp
		}
		m := make(map[string]any, len(comp))
		for k, x := range comp {
			m[k] = x
		}
		m["index"] = s
		out.Components[i] = m
	}
	if out == nil {
		return t
	}
	return out
}
