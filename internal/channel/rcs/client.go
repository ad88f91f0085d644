// Package rcs is the Google RCS Business Messaging (RBM) adapter: it sends agent
// messages, checks whether a phone can be reached over RCS, and parses the events
// Google posts to the agent's webhook.
package rcs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/msg"
)

// DefaultBaseURL is Google's global RBM endpoint; regional hosts can be set as BaseURL.
const DefaultBaseURL = "https://rcsbusinessmessaging.googleapis.com"

// RBM limits checked before sending, so the error names the problem instead of a bare
// 400 from Google.
const (
	MaxTextLength      = 3072 // characters in a text message
	MaxSuggestions     = 11   // suggestion chips on one message
	MaxCardSuggestions = 4    // suggestions inside a rich card's content
	MaxSuggestionText  = 25   // characters on a suggestion chip
	MaxCardTitle       = 200
	MaxCardDescription = 2000
)

const (
	// maxResponseBytes caps how much of a response is read.
	maxResponseBytes = 1 << 20
	defaultTimeout   = 30 * time.Second
)

// messageIDNamespace scopes the name-based UUIDs derived from idempotency keys, so they
// cannot collide with UUIDs another system derives from the same text.
var messageIDNamespace = uuid.MustParse("6f1c2a4e-8d3b-4f57-9a0e-2b7c5d9e1f43")

// Client sends messages as one RBM agent.
type Client struct {
	base    string
	agentID string
	tokens  tokenSource
	hc      *http.Client
}

// New returns a client for cfg. AgentID is required, and a way to authenticate: the
// agent's service-account key (ServiceAccountJSON), from which the client mints access
// tokens for the rcsbusinessmessaging scope and renews them before they expire, or a
// static OAuth2 access token (Token), which Google lets expire after about an hour and
// which is kept only for existing settings. The key wins when both are set. BaseURL
// defaults to DefaultBaseURL. hc may be nil; it also calls the token endpoint.
func New(cfg channel.Config, hc *http.Client) (*Client, error) {
	if strings.TrimSpace(cfg.AgentID) == "" {
		return nil, errors.New("rcs: agent_id is required")
	}
	base, err := channel.BaseURL(cfg.BaseURL, DefaultBaseURL)
	if err != nil {
		return nil, fmt.Errorf("rcs: %w", err)
	}
	if hc == nil {
		hc = &http.Client{Timeout: defaultTimeout}
	}
	c := &Client{base: base, agentID: strings.TrimSpace(cfg.AgentID), hc: hc}
	switch {
	case strings.TrimSpace(cfg.ServiceAccountJSON) != "":
		sa, err := ParseServiceAccount(cfg.ServiceAccountJSON)
		if err != nil {
			return nil, fmt.Errorf("rcs: service_account_json: %w", err)
		}
		c.tokens = newAccountTokens(sa, hc)
	case strings.TrimSpace(cfg.Token) != "":
		c.tokens = staticToken(cfg.Token)
	default:
		return nil, errors.New("rcs: service_account_json (the agent's service-account key) or token (an OAuth2 access token) is required")
	}
	return c, nil
}

// External reports true: a send reaches the user's phone.
// DropsDuplicates is true: the messageId is derived from the idempotency key and RBM
// ignores a repeated one, so a send interrupted by a crash may be sent again safely.
func (c *Client) DropsDuplicates() bool { return true }

func (c *Client) External() bool { return true }

// MessageID is the RBM messageId used for a send: a name-based UUID of the agent, the
// phone and the idempotency key, so a retried send carries the same id and Google drops
// it as a duplicate. An empty key gets a random id (no protection is possible).
func MessageID(agentID, phone, idempotencyKey string) (string, error) {
	if idempotencyKey == "" {
		id, err := uuid.NewRandom()
		if err != nil {
			return "", fmt.Errorf("rcs: message id: %w", err)
		}
		return id.String(), nil
	}
	// NUL separators keep ("a","bc") and ("ab","c") apart.
	name := agentID + "\x00" + phone + "\x00" + idempotencyKey
	return uuid.NewSHA1(messageIDNamespace, []byte(name)).String(), nil
}

// Send delivers content to the recipient's phone as an RBM agent message.
func (c *Client) Send(ctx context.Context, to channel.Recipient, content msg.Content, idempotencyKey string) (channel.Sent, error) {
	phone, err := e164(to)
	if err != nil {
		return channel.Sent{}, err
	}
	cm, err := buildContent(content)
	if err != nil {
		return channel.Sent{}, err
	}
	body, err := json.Marshal(agentMessage{ContentMessage: cm})
	if err != nil {
		return channel.Sent{}, invalid("encode message: " + err.Error())
	}
	id, err := MessageID(c.agentID, phone, idempotencyKey)
	if err != nil {
		return channel.Sent{}, &channel.Error{Kind: channel.KindUnavailable, Retryable: true, Message: err.Error()}
	}
	q := url.Values{"messageId": {id}, "agentId": {c.agentID}}
	resp, raw, err := c.do(ctx, http.MethodPost, c.phoneURL(phone, "agentMessages", q), body)
	if err != nil {
		return channel.Sent{}, err
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return channel.Sent{ProviderMessageID: id, Status: "sent"}, nil
	case resp.StatusCode == http.StatusConflict && googleStatus(raw) == "ALREADY_EXISTS":
		// The id is derived from the idempotency key, so a conflict means an earlier
		// attempt of this very send was accepted: report it as sent, not as a failure.
		return channel.Sent{ProviderMessageID: id, Status: "sent"}, nil
	}
	return channel.Sent{}, classify(resp, raw)
}

// Reachable runs a capability check: true when the phone can receive RBM messages from
// this agent, false (and no error) when Google answers 404 or 403, which both mean "not
// on RCS for this agent"; any other answer is an error.
func (c *Client) Reachable(ctx context.Context, to channel.Recipient) (bool, error) {
	phone, err := e164(to)
	if err != nil {
		return false, err
	}
	rid, err := uuid.NewRandom()
	if err != nil {
		return false, fmt.Errorf("rcs: request id: %w", err)
	}
	q := url.Values{"requestId": {rid.String()}, "agentId": {c.agentID}}
	resp, raw, err := c.do(ctx, http.MethodGet, c.phoneURL(phone, "capabilities", q), nil)
	if err != nil {
		return false, err
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return true, nil
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusForbidden:
		return false, nil
	}
	return false, classify(resp, raw)
}

func (c *Client) phoneURL(phone, method string, q url.Values) string {
	return c.base + "/v1/phones/" + url.PathEscape(phone) + "/" + method + "?" + q.Encode()
}

// do sends one request and reads at most maxResponseBytes of the answer. A transport
// failure, or a token that cannot be had, comes back as a *channel.Error. A 401 to a
// minted token (expired or revoked early) gets one more try with a new token; both
// calls RBM serves are safe to repeat (a send's messageId makes a repeat a duplicate).
func (c *Client) do(ctx context.Context, method, u string, body []byte) (*http.Response, []byte, error) {
	tok, err := c.tokens.token(ctx)
	if err != nil {
		return nil, nil, err
	}
	resp, raw, err := c.once(ctx, method, u, body, tok)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !c.tokens.rejected(tok) {
		return resp, raw, err
	}
	if tok, err = c.tokens.token(ctx); err != nil {
		return nil, nil, err
	}
	return c.once(ctx, method, u, body, tok)
}

func (c *Client) once(ctx context.Context, method, u string, body []byte, token string) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, nil, fmt.Errorf("rcs: build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, &channel.Error{Kind: channel.KindUnavailable, Retryable: true,
			Message: fmt.Sprintf("rcs: %s %s: %v", method, req.URL.Path, err)}
	}
	defer resp.Body.Close()
	// A read error leaves a short body; the status code still decides the outcome.
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	return resp, raw, nil
}

// e164 returns the recipient's number as RBM addresses it: "+" and 2 to 15 digits.
func e164(to channel.Recipient) (string, error) {
	p := strings.TrimSpace(to.Phone)
	if p == "" && to.ChannelUserID != "" {
		p = "+" + strings.TrimPrefix(strings.TrimSpace(to.ChannelUserID), "+")
	}
	digits, ok := strings.CutPrefix(p, "+")
	if !ok || len(digits) < 2 || len(digits) > 15 || digits[0] == '0' {
		return "", invalid(fmt.Sprintf("recipient %q is not an E.164 phone number", p))
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return "", invalid(fmt.Sprintf("recipient %q is not an E.164 phone number", p))
		}
	}
	return p, nil
}

// agentMessage is the body of phones.agentMessages.create.
type agentMessage struct {
	ContentMessage *contentMessage `json:"contentMessage"`
}

// contentMessage holds exactly one of text, contentInfo or richCard, plus suggestions.
type contentMessage struct {
	Text        string       `json:"text,omitempty"`
	ContentInfo *contentInfo `json:"contentInfo,omitempty"`
	RichCard    *richCard    `json:"richCard,omitempty"`
	Suggestions []suggestion `json:"suggestions,omitempty"`
}

type contentInfo struct {
	FileURL string `json:"fileUrl"`
}

type richCard struct {
	StandaloneCard standaloneCard `json:"standaloneCard"`
}

type standaloneCard struct {
	CardOrientation string      `json:"cardOrientation"`
	CardContent     cardContent `json:"cardContent"`
}

type cardContent struct {
	Title       string       `json:"title,omitempty"`
	Description string       `json:"description,omitempty"`
	Media       *cardMedia   `json:"media,omitempty"`
	Suggestions []suggestion `json:"suggestions,omitempty"`
}

type cardMedia struct {
	Height      string      `json:"height"`
	ContentInfo contentInfo `json:"contentInfo"`
}

type suggestion struct {
	Reply suggestedReply `json:"reply"`
}

type suggestedReply struct {
	Text         string `json:"text"`
	PostbackData string `json:"postbackData"`
}

// buildContent maps content to an RBM contentMessage, taking the main body in the order
// msg.Content.Kind uses: template, card, media, then text with buttons.
func buildContent(c msg.Content) (*contentMessage, error) {
	switch {
	case c.Template != nil:
		return nil, invalid("RCS has no message templates: template " + strconv.Quote(c.Template.Name) +
			" is a WhatsApp template; send text, media or a card on RCS")
	case c.Card != nil:
		return cardContentMessage(c.Card.Title, c.Card.Description, c.Card.MediaURL, c.Card.Buttons)
	case c.Media != nil:
		return mediaContent(c)
	}
	if strings.TrimSpace(c.Text) == "" {
		if len(c.Buttons) > 0 {
			return nil, invalid("buttons need a text to go with them")
		}
		return nil, invalid("the message is empty: no text, media or card")
	}
	if n := utf8.RuneCountInString(c.Text); n > MaxTextLength {
		return nil, invalid(fmt.Sprintf("text is %d characters, more than RCS's %d", n, MaxTextLength))
	}
	sugs, err := suggestions(c.Buttons, MaxSuggestions)
	if err != nil {
		return nil, err
	}
	return &contentMessage{Text: c.Text, Suggestions: sugs}, nil
}

// mediaContent sends a file by URL. RBM takes no caption beside a file, so an image or
// video with a caption goes out as a rich card whose description is the caption rather
// than losing it; other files lose the caption (a card cannot show them).
func mediaContent(c msg.Content) (*contentMessage, error) {
	m := c.Media
	if m.URL == "" {
		return nil, invalid("media has no URL")
	}
	switch m.Type {
	case "image", "video", "audio", "document":
	default:
		return nil, invalid(fmt.Sprintf("media type %q is not one of image, video, audio, document", m.Type))
	}
	caption := m.Caption
	if caption == "" {
		caption = c.Text
	}
	if caption != "" && (m.Type == "image" || m.Type == "video") {
		return cardContentMessage("", caption, m.URL, c.Buttons)
	}
	sugs, err := suggestions(c.Buttons, MaxSuggestions)
	if err != nil {
		return nil, err
	}
	return &contentMessage{ContentInfo: &contentInfo{FileURL: m.URL}, Suggestions: sugs}, nil
}

// cardContentMessage builds a vertical standalone card. A card holds at most 4
// suggestions; 5 to 11 buttons go on the message as chips under the card instead.
func cardContentMessage(title, description, mediaURL string, buttons []msg.Button) (*contentMessage, error) {
	if title == "" && description == "" && mediaURL == "" {
		return nil, invalid("the card is empty: no title, description or media")
	}
	if n := utf8.RuneCountInString(title); n > MaxCardTitle {
		return nil, invalid(fmt.Sprintf("card title is %d characters, more than RCS's %d", n, MaxCardTitle))
	}
	if n := utf8.RuneCountInString(description); n > MaxCardDescription {
		return nil, invalid(fmt.Sprintf("card description is %d characters, more than RCS's %d", n, MaxCardDescription))
	}
	sugs, err := suggestions(buttons, MaxSuggestions)
	if err != nil {
		return nil, err
	}
	cc := cardContent{Title: title, Description: description}
	if mediaURL != "" {
		cc.Media = &cardMedia{Height: "MEDIUM", ContentInfo: contentInfo{FileURL: mediaURL}}
	}
	out := &contentMessage{RichCard: &richCard{StandaloneCard: standaloneCard{CardOrientation: "VERTICAL", CardContent: cc}}}
	if len(sugs) <= MaxCardSuggestions {
		out.RichCard.StandaloneCard.CardContent.Suggestions = sugs
	} else {
		out.Suggestions = sugs
	}
	return out, nil
}

// suggestions turns buttons into suggested replies; the postback data is the button's
// ID, or its title when the ID is empty.
func suggestions(buttons []msg.Button, limit int) ([]suggestion, error) {
	if len(buttons) > limit {
		return nil, invalid(fmt.Sprintf("%d buttons is more than RCS's %d suggestions", len(buttons), limit))
	}
	var out []suggestion
	for i, b := range buttons {
		if b.Title == "" {
			return nil, invalid(fmt.Sprintf("button %d has no title", i+1))
		}
		if n := utf8.RuneCountInString(b.Title); n > MaxSuggestionText {
			return nil, invalid(fmt.Sprintf("button %q is %d characters, more than RCS's %d", b.Title, n, MaxSuggestionText))
		}
		data := b.ID
		if data == "" {
			data = b.Title
		}
		out = append(out, suggestion{Reply: suggestedReply{Text: b.Title, PostbackData: data}})
	}
	return out, nil
}

// googleError is Google's API error envelope.
type googleError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
	} `json:"error"`
}

func googleStatus(raw []byte) string {
	var ge googleError
	_ = json.Unmarshal(raw, &ge)
	return ge.Error.Status
}

// classify turns a non-2xx response into a *channel.Error. Google's error code mirrors
// the HTTP status, so the status decides.
func classify(resp *http.Response, raw []byte) *channel.Error {
	var ge googleError
	_ = json.Unmarshal(raw, &ge) // a body that is not the envelope leaves the zero value
	e := &channel.Error{ProviderCode: ge.Error.Code, HTTPStatus: resp.StatusCode}
	var why string
	switch s := resp.StatusCode; {
	case s == http.StatusNotFound:
		e.Kind, why = channel.KindUndeliverable, "the phone is not reachable on RCS"
	case s == http.StatusForbidden:
		e.Kind, why = channel.KindUndeliverable, "the agent is not launched for this user's carrier, or may not message this user"
	case s == http.StatusTooManyRequests:
		e.Kind, e.Retryable = channel.KindRateLimited, true
	case s == http.StatusUnauthorized:
		e.Kind, why = channel.KindAuth, "the access token is missing, invalid or expired"
	case s >= 500:
		e.Kind, e.Retryable = channel.KindUnavailable, true
	default:
		e.Kind = channel.KindInvalid
	}
	if e.Retryable {
		e.RetryAfter = channel.RetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}

	var b strings.Builder
	fmt.Fprintf(&b, "rcs: HTTP %d", resp.StatusCode)
	if why != "" {
		b.WriteString(": " + why)
	}
	if ge.Error.Status != "" {
		b.WriteString(": " + ge.Error.Status)
	}
	if ge.Error.Message != "" {
		b.WriteString(": " + ge.Error.Message)
	} else if ge.Error.Status == "" && len(raw) > 0 {
		b.WriteString(": " + channel.Snippet(raw))
	}
	e.Message = b.String()
	return e
}

func invalid(m string) *channel.Error {
	return &channel.Error{Kind: channel.KindInvalid, Message: "rcs: " + m}
}
