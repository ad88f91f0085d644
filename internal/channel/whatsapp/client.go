// Package whatsapp is the WhatsApp Business Cloud API adapter: it sends messages through
// the Graph API's /{phone-number-id}/messages endpoint and parses the webhooks Meta posts
// back (messages, button taps and delivery statuses).
package whatsapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/msg"
)

// Defaults used when the bot's settings leave them empty.
const (
	DefaultBaseURL    = "https://graph.facebook.com"
	DefaultAPIVersion = "v21.0"
)

const (
	// maxResponseBytes caps how much of a Graph response is read: replies are small,
	// and a misbehaving proxy must not make us buffer without limit.
	maxResponseBytes = 1 << 20
	// defaultTimeout bounds a send when the caller gives no http.Client.
	defaultTimeout = 30 * time.Second

	maxReplyButtons = 3  // interactive "button" messages take at most 3
	maxListRows     = 10 // one list section; lists take at most 10 rows in all
	listMenuLabel   = "Choose"
)

// Client sends messages for one WhatsApp business phone number.
type Client struct {
	endpoint string // {base}/{version}/{phone-number-id}/messages
	token    string
	hc       *http.Client
}

// New returns a client for cfg. PhoneNumberID and Token are required; BaseURL and
// APIVersion default to DefaultBaseURL and DefaultAPIVersion. hc may be nil.
func New(cfg channel.Config, hc *http.Client) (*Client, error) {
	if strings.TrimSpace(cfg.PhoneNumberID) == "" {
		return nil, errors.New("whatsapp: phone_number_id is required")
	}
	if strings.TrimSpace(cfg.Token) == "" {
		return nil, errors.New("whatsapp: token (a Graph API access token) is required")
	}
	base, err := channel.BaseURL(cfg.BaseURL, DefaultBaseURL)
	if err != nil {
		return nil, fmt.Errorf("whatsapp: %w", err)
	}
	version := strings.Trim(strings.TrimSpace(cfg.APIVersion), "/")
	if version == "" {
		version = DefaultAPIVersion
	}
	if hc == nil {
		hc = &http.Client{Timeout: defaultTimeout}
	}
	return &Client{
		endpoint: base + "/" + url.PathEscape(version) + "/" + url.PathEscape(strings.TrimSpace(cfg.PhoneNumberID)) + "/messages",
		token:    cfg.Token,
		hc:       hc,
	}, nil
}

// External reports true: a send reaches the user's phone.
func (c *Client) External() bool { return true }

// Send posts c to the recipient. The Cloud API has no idempotency key, so
// idempotencyKey is not sent; the engine's own record of the send guards retries.
func (c *Client) Send(ctx context.Context, to channel.Recipient, content msg.Content, idempotencyKey string) (channel.Sent, error) {
	recipient := strings.TrimSpace(to.ChannelUserID)
	if recipient == "" {
		recipient = strings.TrimPrefix(strings.TrimSpace(to.Phone), "+")
	}
	if recipient == "" {
		return channel.Sent{}, invalid("recipient has no WhatsApp id or phone number")
	}
	m, err := buildMessage(content)
	if err != nil {
		return channel.Sent{}, err
	}
	m.MessagingProduct = "whatsapp"
	m.RecipientType = "individual"
	m.To = recipient
	body, err := json.Marshal(m)
	if err != nil {
		return channel.Sent{}, invalid("encode message: " + err.Error())
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return channel.Sent{}, fmt.Errorf("whatsapp: build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")

	resp, err := c.hc.Do(req)
	if err != nil {
		return channel.Sent{}, &channel.Error{
			Kind:      channel.KindUnavailable,
			Retryable: true,
			Message:   "whatsapp: send: " + err.Error(),
		}
	}
	defer resp.Body.Close()
	raw, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return channel.Sent{}, classify(resp, raw)
	}
	if readErr != nil {
		// The message was accepted (2xx) but its id was lost: a retry could send it twice.
		return channel.Sent{}, &channel.Error{Kind: channel.KindUnavailable, HTTPStatus: resp.StatusCode,
			Message: "whatsapp: read response: " + readErr.Error()}
	}
	var ok sendResponse
	if err := json.Unmarshal(raw, &ok); err != nil || len(ok.Messages) == 0 || ok.Messages[0].ID == "" {
		return channel.Sent{}, &channel.Error{Kind: channel.KindUnavailable, HTTPStatus: resp.StatusCode,
			Message: "whatsapp: accepted but the response has no message id: " + channel.Snippet(raw)}
	}
	return channel.Sent{ProviderMessageID: ok.Messages[0].ID, Status: "sent"}, nil
}

// outMessage is the body of POST /messages. Exactly one of the type fields is set.
type outMessage struct {
	MessagingProduct string       `json:"messaging_product"`
	RecipientType    string       `json:"recipient_type"`
	To               string       `json:"to"`
	Type             string       `json:"type"`
	Text             *outText     `json:"text,omitempty"`
	Image            *outMedia    `json:"image,omitempty"`
	Video            *outMedia    `json:"video,omitempty"`
	Audio            *outMedia    `json:"audio,omitempty"`
	Document         *outMedia    `json:"document,omitempty"`
	Interactive      *interactive `json:"interactive,omitempty"`
	Template         *outTemplate `json:"template,omitempty"`
}

type outText struct {
	PreviewURL bool   `json:"preview_url"`
	Body       string `json:"body"`
}

type outMedia struct {
	Link     string `json:"link"`
	Caption  string `json:"caption,omitempty"`
	Filename string `json:"filename,omitempty"`
}

type interactive struct {
	Type   string     `json:"type"` // button | list
	Header *header    `json:"header,omitempty"`
	Body   bodyText   `json:"body"`
	Action actionSpec `json:"action"`
}

type header struct {
	Type  string    `json:"type"` // text | image
	Text  string    `json:"text,omitempty"`
	Image *outMedia `json:"image,omitempty"`
}

type bodyText struct {
	Text string `json:"text"`
}

type actionSpec struct {
	Buttons  []replyButton `json:"buttons,omitempty"`
	Button   string        `json:"button,omitempty"` // a list's menu label
	Sections []listSection `json:"sections,omitempty"`
}

type replyButton struct {
	Type  string `json:"type"` // always "reply"
	Reply struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	} `json:"reply"`
}

type listSection struct {
	Rows []listRow `json:"rows"`
}

type listRow struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

// outTemplate is the Cloud API's template object. msg.Template's Namespace is an
// On-Premises/BSP field the Cloud API rejects, so it is not carried over.
type outTemplate struct {
	Name       string           `json:"name"`
	Language   outLanguage      `json:"language"`
	Components []map[string]any `json:"components,omitempty"`
}

type outLanguage struct {
	Code   string `json:"code"`
	Policy string `json:"policy"`
}

type sendResponse struct {
	Messages []struct {
		ID string `json:"id"`
	} `json:"messages"`
}

// buildMessage maps content to the Cloud API's message object, taking the main body in
// the order msg.Content.Kind uses: template, card, media, then text with buttons.
func buildMessage(c msg.Content) (*outMessage, error) {
	switch {
	case c.Template != nil:
		return templateMessage(c.Template)
	case c.Card != nil:
		return cardMessage(c.Card)
	case c.Media != nil:
		if len(c.Buttons) > 0 {
			return nil, invalid("buttons cannot go with a media message; use a card")
		}
		m := *c.Media
		if m.Caption == "" {
			m.Caption = c.Text
		}
		return mediaMessage(m)
	case len(c.Buttons) > 0:
		return buttonsMessage(nil, c.Text, c.Buttons)
	case strings.TrimSpace(c.Text) != "":
		return &outMessage{Type: "text", Text: &outText{Body: c.Text}}, nil
	}
	return nil, invalid("the message is empty: no text, media, card or template")
}

func templateMessage(t *msg.Template) (*outMessage, error) {
	if t.Name == "" {
		return nil, invalid("template has no name")
	}
	if t.Language.Code == "" {
		return nil, invalid("template " + t.Name + " has no language code")
	}
	policy := t.Language.Policy
	if policy == "" {
		policy = "deterministic" // the only policy the Cloud API accepts
	}
	return &outMessage{Type: "template", Template: &outTemplate{
		Name:       t.Name,
		Language:   outLanguage{Code: t.Language.Code, Policy: policy},
		Components: t.Components,
	}}, nil
}

func mediaMessage(m msg.Media) (*outMessage, error) {
	if m.URL == "" {
		return nil, invalid("media has no URL")
	}
	om := &outMedia{Link: m.URL, Caption: m.Caption}
	out := &outMessage{Type: m.Type}
	switch m.Type {
	case "image":
		out.Image = om
	case "video":
		out.Video = om
	case "audio":
		om.Caption = "" // the Cloud API rejects captions on audio
		out.Audio = om
	case "document":
		om.Filename = m.Filename
		out.Document = om
	default:
		return nil, invalid(fmt.Sprintf("media type %q is not one of image, video, audio, document", m.Type))
	}
	return out, nil
}

// cardMessage renders an RCS-style card: with buttons as an interactive message whose
// header is the card's image, without as an image with a caption, or as text.
func cardMessage(card *msg.Card) (*outMessage, error) {
	text := joinNonEmpty("\n\n", card.Title, card.Description)
	if len(card.Buttons) > 0 {
		var h *header
		if card.MediaURL != "" {
			h = &header{Type: "image", Image: &outMedia{Link: card.MediaURL}}
		}
		return buttonsMessage(h, text, card.Buttons)
	}
	if card.MediaURL != "" {
		return mediaMessage(msg.Media{Type: "image", URL: card.MediaURL, Caption: text})
	}
	if text == "" {
		return nil, invalid("the card is empty: no title, description or media")
	}
	return &outMessage{Type: "text", Text: &outText{Body: text}}, nil
}

// buttonsMessage is an interactive reply-button message for up to 3 buttons and a
// one-section list for 4 to 10. Lists only take a text header, so an image header is
// dropped when a card has more than 3 buttons.
func buttonsMessage(h *header, text string, buttons []msg.Button) (*outMessage, error) {
	if strings.TrimSpace(text) == "" {
		return nil, invalid("buttons need a text to go with them")
	}
	if len(buttons) > maxListRows {
		return nil, invalid(fmt.Sprintf("%d buttons is more than WhatsApp's %d", len(buttons), maxListRows))
	}
	ids := make([]string, len(buttons))
	for i, b := range buttons {
		if b.Title == "" {
			return nil, invalid(fmt.Sprintf("button %d has no title", i+1))
		}
		ids[i] = b.ID
		if ids[i] == "" {
			ids[i] = b.Title
		}
	}
	in := &interactive{Body: bodyText{Text: text}}
	if len(buttons) <= maxReplyButtons {
		in.Type = "button"
		in.Header = h
		for i, b := range buttons {
			rb := replyButton{Type: "reply"}
			rb.Reply.ID, rb.Reply.Title = ids[i], b.Title
			in.Action.Buttons = append(in.Action.Buttons, rb)
		}
	} else {
		in.Type = "list"
		sec := listSection{}
		for i, b := range buttons {
			sec.Rows = append(sec.Rows, listRow{ID: ids[i], Title: b.Title})
		}
		in.Action.Button = listMenuLabel
		in.Action.Sections = []listSection{sec}
	}
	return &outMessage{Type: "interactive", Interactive: in}, nil
}

// graphError is the Graph API's error envelope.
type graphError struct {
	Error struct {
		Message   string `json:"message"`
		Type      string `json:"type"`
		Code      int    `json:"code"`
		ErrorData struct {
			Details string `json:"details"`
		} `json:"error_data"`
		FBTraceID string `json:"fbtrace_id"`
	} `json:"error"`
}

// classify turns a non-2xx response into a *channel.Error. Meta asks that handling
// follow the numeric code, so the code decides first and the HTTP status only when the
// code is unknown or absent.
func classify(resp *http.Response, raw []byte) *channel.Error {
	var ge graphError
	_ = json.Unmarshal(raw, &ge) // a body that is not the envelope leaves the zero value
	e := &channel.Error{ProviderCode: ge.Error.Code, HTTPStatus: resp.StatusCode}

	switch code := ge.Error.Code; {
	case code == 131047:
		e.Kind = channel.KindWindowClosed
	case code == 130429 || code == 131056 || code == 4 || code == 80007:
		e.Kind, e.Retryable = channel.KindRateLimited, true
	case code == 131057, code == 1, code == 2:
		// 131057: throughput upgrade in progress; 1 and 2: Graph's "unknown error" and
		// "service temporarily unavailable", which Meta says to retry.
		e.Kind, e.Retryable = channel.KindUnavailable, true
	case code == 131026 || code == 131049 || code == 131048:
		e.Kind = channel.KindUndeliverable
	case code == 190:
		e.Kind = channel.KindAuth
	case code == 100:
		e.Kind = channel.KindInvalid
	case resp.StatusCode == http.StatusUnauthorized:
		e.Kind = channel.KindAuth
	case resp.StatusCode == http.StatusTooManyRequests:
		e.Kind, e.Retryable = channel.KindRateLimited, true
	case resp.StatusCode >= 500:
		e.Kind, e.Retryable = channel.KindUnavailable, true
	default:
		e.Kind = channel.KindInvalid
	}
	if e.Retryable {
		e.RetryAfter = channel.RetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}

	var b strings.Builder
	fmt.Fprintf(&b, "whatsapp: HTTP %d", resp.StatusCode)
	if ge.Error.Message != "" {
		b.WriteString(": " + ge.Error.Message)
	} else if len(raw) > 0 {
		b.WriteString(": " + channel.Snippet(raw))
	}
	if d := ge.Error.ErrorData.Details; d != "" && d != ge.Error.Message {
		b.WriteString(" (" + d + ")")
	}
	if ge.Error.FBTraceID != "" {
		b.WriteString(" [fbtrace_id " + ge.Error.FBTraceID + "]")
	}
	e.Message = b.String()
	return e
}

func invalid(m string) *channel.Error {
	return &channel.Error{Kind: channel.KindInvalid, Message: "whatsapp: " + m}
}

func joinNonEmpty(sep string, parts ...string) string {
	var keep []string
	for _, p := range parts {
		if strings.TrimSpace(p) != "" {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, sep)
}
