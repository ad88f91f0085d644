// Package channel defines how Parley talks to a messaging provider: one interface for
// sending, shared types for what arrives on webhooks, and the error kinds the engine acts
// on. Adapters live in the subpackages (sandbox, whatsapp, rcs); they know wire formats,
// not flows.
package channel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parleyhq/parley/internal/msg"
)

// Channels a user can be reached on.
const (
	WhatsApp = "whatsapp"
	RCS      = "rcs"
)

// Adapters that can serve a channel.
const (
	AdapterSandbox  = "sandbox"
	AdapterWhatsApp = "whatsapp"
	AdapterRCS      = "rcs"
)

// Recipient is who a message goes to.
type Recipient struct {
	// Phone is the number in E.164 with its "+" (RCS addresses users this way).
	Phone string
	// ChannelUserID is the phone's digits without "+" (WhatsApp's "to"), or a
	// provider-scoped id for users known only by one.
	ChannelUserID string
	// LastInbound is when the user last wrote to the bot (nil: never). WhatsApp allows
	// only templates more than 24 hours after it.
	LastInbound *time.Time
}

// Sent is the provider's acknowledgement of an accepted message.
type Sent struct {
	// ProviderMessageID is the provider's id (a WhatsApp wamid, an RBM message id); later
	// delivery statuses refer to it.
	ProviderMessageID string
	// Status is "sent", or "delivered" for channels that deliver synchronously.
	Status string
}

// Sender sends messages on one channel for one bot.
type Sender interface {
	// Send delivers c to the recipient. idempotencyKey is stable across retries of the same
	// message; providers that support it (RBM's messageId) use it to drop duplicates.
	Send(ctx context.Context, to Recipient, c msg.Content, idempotencyKey string) (Sent, error)
	// External reports whether Send has an effect outside Parley's database. A local
	// sender (the sandbox) can be recorded in the same commit as the run's next step.
	External() bool
}

// Deduplicator is implemented by senders whose provider drops a repeated idempotency key
// (RBM's messageId), so a send interrupted by a crash can safely be sent again.
type Deduplicator interface {
	DropsDuplicates() bool
}

// Prober is implemented by channels that can tell whether a user is reachable before the
// first message (RCS capability check).
type Prober interface {
	Reachable(ctx context.Context, to Recipient) (bool, error)
}

// Kind classifies a send failure so the engine can decide what to do.
type Kind string

// Failure kinds.
const (
	KindWindowClosed  Kind = "window_closed"   // outside the 24-hour window: only templates
	KindRateLimited   Kind = "rate_limited"    // provider throughput or pair limit: retry later
	KindUndeliverable Kind = "undeliverable"   // not on the channel, or cannot receive this
	KindUnreachable   Kind = "not_capable"     // capability check says no (e.g. not RCS)
	KindAuth          Kind = "auth"            // bad or expired credentials
	KindInvalid       Kind = "invalid_request" // the provider refused the request's content
	KindUnavailable   Kind = "unavailable"     // provider down, 5xx, network: retry later
	KindNotConfigured Kind = "not_configured"  // the bot has no usable settings for it
)

// Error is a failed send, classified.
type Error struct {
	Kind Kind
	// Retryable is true when the same request may succeed later.
	Retryable bool
	// RetryAfter is the provider's hint, zero when none was given.
	RetryAfter time.Duration
	// ProviderCode is the provider's own error code (e.g. WhatsApp 131047), 0 if none.
	ProviderCode int
	// HTTPStatus is the provider's HTTP status, 0 for network errors.
	HTTPStatus int
	Message    string
}

func (e *Error) Error() string {
	s := string(e.Kind)
	if e.ProviderCode != 0 {
		s += fmt.Sprintf(" (provider code %d)", e.ProviderCode)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// AsError returns err as a *Error, classifying unknown errors as retryable unavailability
// (network errors, context deadlines).
func AsError(err error) *Error {
	var ce *Error
	if errors.As(err, &ce) {
		return ce
	}
	return &Error{Kind: KindUnavailable, Retryable: true, Message: err.Error()}
}

// BaseURL returns a provider base URL without its trailing "/", def when raw is empty;
// anything but an http(s) URL with a host is an error.
func BaseURL(raw, def string) (string, error) {
	base := strings.TrimRight(strings.TrimSpace(raw), "/")
	if base == "" {
		return def, nil
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("base_url %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("base_url %q must be an http(s) URL with a host", raw)
	}
	return base, nil
}

// RetryAfter reads a provider's Retry-After header: delay seconds or an HTTP date. Zero
// when absent, malformed or in the past; an absurd hint is capped at a day.
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		const maxSecs = int64(24 * time.Hour / time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Snippet shortens a provider's response body for an error message.
func Snippet(raw []byte) string {
	const n = 300
	s := strings.TrimSpace(string(raw))
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "..."
	}
	return s
}

// Inbound is one message a user sent, as parsed from a provider's webhook.
type Inbound struct {
	ProviderMessageID string
	// From is the sender's phone digits without "+"; empty for a user known only by a
	// provider-scoped UserID (WhatsApp usernames).
	From   string
	UserID string
	// Name is the sender's profile name, when the provider gives one.
	Name string
	// Type is the provider's message type: text, button, interactive, image, ...
	Type string
	// Text is what the user wrote or the title of what they tapped.
	Text string
	// Payload is the data of what they tapped: a template button's payload, an interactive
	// reply's id, an RCS suggestion's postback data.
	Payload string
	// Media is an attachment; for WhatsApp its URL field holds the media id to fetch.
	Media *msg.Media
	// Unsupported explains why a message could not be understood (empty when it could).
	Unsupported string
	Timestamp   time.Time
	// Raw is the provider's JSON for this one message, stored with it.
	Raw json.RawMessage
}

// Status is a delivery status update for a message Parley sent.
type Status struct {
	ProviderMessageID string
	Status            string // sent, delivered, read, failed
	Recipient         string
	Timestamp         time.Time
	ErrorCode         int
	ErrorTitle        string
}

// Config is a bot's settings for one channel. Secrets are stored server-side, encrypted
// (registry.Seal), and never returned in full.
type Config struct {
	Adapter       string  `json:"adapter"`
	BaseURL       string  `json:"base_url,omitempty"`
	PhoneNumberID string  `json:"phone_number_id,omitempty"`
	Token         string  `json:"token,omitempty"`
	AppSecret     string  `json:"app_secret,omitempty"`
	VerifyToken   string  `json:"verify_token,omitempty"`
	AgentID       string  `json:"agent_id,omitempty"`
	ClientToken   string  `json:"client_token,omitempty"`
	APIVersion    string  `json:"api_version,omitempty"`
	RatePerSecond float64 `json:"rate_per_second,omitempty"`
	// ServiceAccountJSON is the RBM agent's Google service-account key (the JSON key
	// file's content), from which access tokens are minted and renewed.
	ServiceAccountJSON string `json:"service_account_json,omitempty"`
}
