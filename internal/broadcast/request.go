package broadcast

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parleyhq/parley/internal/msg"
	"github.com/parleyhq/parley/internal/phone"
)

// The wire shapes of the vendor's broadcast APIs. Real clients spell keys in camelCase
// ("broadcastTitle", "channelUserIds", "phoneNumber") and sometimes in lower case
// ("phonenumber"); encoding/json matches keys regardless of case, so both land here.

// V1Request is the body of POST /bot-api/v1.0/.../broadcast: an audience rule and
// direct content.
type V1Request struct {
	BroadcastID    json.RawMessage `json:"broadcastId"`
	BroadcastTitle string          `json:"broadcastTitle"`
	PublishedOn    *string         `json:"publishedOn"`
	Audience       *Audience       `json:"audience"`
	Payload        *V1Payload      `json:"payload"`
	Status         json.RawMessage `json:"status"`
}

// Audience selects the recipients: existing users of the bot on these channels.
type Audience struct {
	Rule *AudienceRule `json:"rule"`
}

// AudienceRule lists the channels and the users' channel user ids.
type AudienceRule struct {
	Channels       []string `json:"channels"`
	ChannelUserIDs []string `json:"channelUserIds"`
}

// V1Payload is direct content: messages sent in order.
type V1Payload struct {
	Type    string        `json:"type"`
	Content []ContentItem `json:"content"`
}

// ContentItem is one message of a broadcast, {"type": ..., "data": {...}}:
//   - text: {"message": "..."}
//   - buttons (also quick_reply): {"message": "...", "buttons": [{"id": "...", "title": "..."}]}
//   - image, video, audio, document: {"url": "...", "caption": "...", "filename": "..."}
//   - card: {"title", "description", "media_url", "buttons"}
//   - template (v2): {"template": {name, namespace, language, components}} beside "type"
type ContentItem struct {
	Type     string          `json:"type"`
	Data     json.RawMessage `json:"data,omitempty"`
	Template *msg.Template   `json:"template,omitempty"`
}

// V2Request is the body of POST /bot-api/v2.0/.../broadcast (the "wrapper"): users to
// create or update, and a WhatsApp template.
type V2Request struct {
	BroadcastID    json.RawMessage `json:"broadcastId"`
	BroadcastTitle string          `json:"broadcastTitle"`
	PublishedOn    *string         `json:"publishedOn"`
	Platform       string          `json:"platform"`
	Users          []V2User        `json:"users"`
	Payload        *V2Payload      `json:"payload"`
	Status         json.RawMessage `json:"status"`
}

// V2User is a recipient of the wrapper API, created or updated with these attributes.
type V2User struct {
	PhoneNumber  json.RawMessage `json:"phoneNumber"`
	Email        string          `json:"email"`
	Organization string          `json:"organization"`
	Title        string          `json:"title"`
	LastName     string          `json:"lastName"`
	FirstName    string          `json:"firstName"`
	UserName     string          `json:"userName"`
}

// V2Payload is the wrapper's content: whatsapp_template with template items.
type V2Payload struct {
	Type    string        `json:"type"`
	Content []ContentItem `json:"content"`
}

// Channels a v1 audience may name. "sandbox" reaches users whose channel the bot serves
// with the sandbox adapter.
const (
	ChannelWhatsApp = "whatsapp"
	ChannelRCS      = "rcs"
	ChannelSandbox  = "sandbox"
)

// Plan is a validated broadcast, ready to store.
type Plan struct {
	APIVersion int
	Title      string
	// PublishAt is when to publish (the request's publishedOn, or now).
	PublishAt time.Time
	Channels  []string
	Content   []msg.Content
	// Recipients are channel user ids, in the order given, without repeats.
	Recipients []string
	// Users are v2's users to create or update as the broadcast is stored.
	Users []UserUpdate
	// Request is the request to answer with, in its own shape.
	Request json.RawMessage
}

// UserUpdate is a v2 user to create or update.
type UserUpdate struct {
	Digits string
	E164   string
	Attrs  map[string]string
}

// InputError is a request the API refuses (400), naming the field.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputErr(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

// maxTitle bounds a broadcast's title.
const maxTitle = 200

// PlanV1 validates a v1 request. max bounds the recipients.
func PlanV1(req V1Request, now time.Time, max int) (*Plan, error) {
	p := &Plan{APIVersion: 1, Title: strings.TrimSpace(req.BroadcastTitle)}
	if err := p.common(req.PublishedOn, now); err != nil {
		return nil, err
	}
	if req.Audience == nil || req.Audience.Rule == nil {
		return nil, inputErr("audience.rule is required: {\"channels\": [...], \"channelUserIds\": [...]}")
	}
	rule := req.Audience.Rule
	if len(rule.Channels) == 0 {
		return nil, inputErr("audience.rule.channels is empty: name whatsapp, rcs or sandbox")
	}
	seen := map[string]bool{}
	for i, c := range rule.Channels {
		c = strings.ToLower(strings.TrimSpace(c))
		switch c {
		case ChannelWhatsApp, ChannelRCS, ChannelSandbox:
		default:
			return nil, inputErr("audience.rule.channels[%d]: unknown channel %q (use whatsapp, rcs or sandbox)", i, rule.Channels[i])
		}
		if !seen[c] {
			seen[c] = true
			p.Channels = append(p.Channels, c)
		}
	}
	if len(rule.ChannelUserIDs) == 0 {
		return nil, inputErr("audience.rule.channelUserIds is empty: list the users' channel user ids (phone numbers with country code)")
	}
	if len(rule.ChannelUserIDs) > max {
		return nil, inputErr("audience.rule.channelUserIds has %d recipients, more than this server's maximum of %d per broadcast", len(rule.ChannelUserIDs), max)
	}
	ids := map[string]bool{}
	for i, id := range rule.ChannelUserIDs {
		id = strings.TrimPrefix(strings.TrimSpace(id), "+")
		if id == "" || len(id) > 100 || !cleanText(id) {
			return nil, inputErr("audience.rule.channelUserIds[%d] is not a channel user id", i)
		}
		if !ids[id] {
			ids[id] = true
			p.Recipients = append(p.Recipients, id)
		}
	}
	if req.Payload == nil {
		return nil, inputErr("payload is required: {\"type\": \"direct\", \"content\": [...]}")
	}
	if t := strings.ToLower(req.Payload.Type); t != "direct" {
		return nil, inputErr("payload.type %q is not supported here: v1 broadcasts send \"direct\" content (templates go through the v2 broadcast API)", req.Payload.Type)
	}
	var err error
	if p.Content, err = contents(req.Payload.Content, false); err != nil {
		return nil, err
	}
	req.BroadcastID, req.Status = nil, nil
	p.Request, err = json.Marshal(req)
	return p, err
}

// PlanV2 validates a v2 request. max bounds the users.
func PlanV2(req V2Request, now time.Time, max int) (*Plan, error) {
	p := &Plan{APIVersion: 2, Title: strings.TrimSpace(req.BroadcastTitle), Channels: []string{ChannelWhatsApp}}
	if err := p.common(req.PublishedOn, now); err != nil {
		return nil, err
	}
	if pl := strings.ToLower(strings.TrimSpace(req.Platform)); pl != "whatsapp" {
		return nil, inputErr("platform %q is not supported: the v2 broadcast sends WhatsApp templates (\"platform\": \"whatsapp\")", req.Platform)
	}
	if len(req.Users) == 0 {
		return nil, inputErr("users is empty: list the recipients, each with a phoneNumber")
	}
	if len(req.Users) > max {
		return nil, inputErr("users has %d entries, more than this server's maximum of %d per broadcast", len(req.Users), max)
	}
	byDigits := map[string]int{}
	for i, u := range req.Users {
		raw, err := phoneText(u.PhoneNumber)
		if err != nil {
			return nil, inputErr("users[%d].phoneNumber: %v", i, err)
		}
		num, err := phone.Parse(raw)
		if err != nil {
			return nil, inputErr("users[%d].phoneNumber %q: %v", i, raw, err)
		}
		attrs := map[string]string{"user.channel": ChannelWhatsApp, "user.phone_no": num.E164}
		for name, v := range map[string]string{"user.email": u.Email, "user.organization": u.Organization, "user.title": u.Title,
			"user.last_name": u.LastName, "user.first_name": u.FirstName, "user.user_name": u.UserName} {
			v = strings.TrimSpace(v)
			if v == "" {
				continue
			}
			if len(v) > 4096 || !cleanText(v) {
				return nil, inputErr("users[%d]: %s is longer than 4096 characters or not text", i, name)
			}
			attrs[name] = v
		}
		if j, dup := byDigits[num.Digits]; dup {
			p.Users[j].Attrs = attrs // the later entry wins, as in an upsert
			continue
		}
		byDigits[num.Digits] = len(p.Users)
		p.Users = append(p.Users, UserUpdate{Digits: num.Digits, E164: num.E164, Attrs: attrs})
		p.Recipients = append(p.Recipients, num.Digits)
	}
	if req.Payload == nil {
		return nil, inputErr("payload is required: {\"type\": \"whatsapp_template\", \"content\": [{\"type\": \"template\", \"template\": {...}}]}")
	}
	if t := strings.ToLower(req.Payload.Type); t != "whatsapp_template" {
		return nil, inputErr("payload.type %q is not supported: the v2 broadcast sends \"whatsapp_template\"", req.Payload.Type)
	}
	var err error
	if p.Content, err = contents(req.Payload.Content, true); err != nil {
		return nil, err
	}
	req.BroadcastID, req.Status = nil, nil
	p.Request, err = json.Marshal(req)
	return p, err
}

func (p *Plan) common(publishedOn *string, now time.Time) error {
	if len(p.Title) > maxTitle || !cleanText(p.Title) {
		return inputErr("broadcastTitle must be text of at most %d characters", maxTitle)
	}
	p.PublishAt = now
	if publishedOn == nil || strings.TrimSpace(*publishedOn) == "" {
		return nil
	}
	t, err := parseTime(*publishedOn)
	if err != nil {
		return inputErr("publishedOn %q is not a UTC ISO-8601 time such as 2019-06-03T06:48:27.170Z", *publishedOn)
	}
	if t.After(now) {
		p.PublishAt = t
	}
	return nil
}

// parseTime reads ISO-8601 with or without a zone (no zone means UTC, as the vendor's
// examples are).
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05.999999999Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not an ISO-8601 time")
}

func phoneText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", fmt.Errorf("is required (the number with country code, e.g. 919876543210)")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if strings.TrimSpace(s) == "" {
			return "", fmt.Errorf("is empty")
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), nil
	}
	return "", fmt.Errorf("must be a string such as \"919876543210\"")
}

// maxContent bounds the messages of one broadcast.
const maxContent = 10

func contents(items []ContentItem, templates bool) ([]msg.Content, error) {
	if len(items) == 0 {
		return nil, inputErr("payload.content is empty: list at least one message")
	}
	if len(items) > maxContent {
		return nil, inputErr("payload.content has %d messages, more than %d", len(items), maxContent)
	}
	out := make([]msg.Content, len(items))
	for i, it := range items {
		c, err := content(it, templates)
		if err != nil {
			return nil, inputErr("payload.content[%d]: %v", i, err)
		}
		out[i] = c
	}
	return out, nil
}

func content(it ContentItem, templates bool) (msg.Content, error) {
	typ := strings.ToLower(strings.TrimSpace(it.Type))
	if templates {
		if typ != "template" {
			return msg.Content{}, fmt.Errorf("type %q is not supported: a whatsapp_template payload holds {\"type\": \"template\", \"template\": {...}}", it.Type)
		}
		t := it.Template
		switch {
		case t == nil:
			return msg.Content{}, fmt.Errorf("template is required")
		case strings.TrimSpace(t.Name) == "":
			return msg.Content{}, fmt.Errorf("template.name is required: the approved template's name")
		case strings.TrimSpace(t.Language.Code) == "":
			return msg.Content{}, fmt.Errorf("template.language.code is required, e.g. \"en\"")
		}
		for j, comp := range t.Components {
			if comp == nil {
				return msg.Content{}, fmt.Errorf("template.components[%d] must be an object", j)
			}
		}
		return msg.Content{Template: t}, nil
	}
	var c msg.Content
	switch typ {
	case "text":
		var d struct {
			Message string `json:"message"`
		}
		if err := strictData(it.Data, &d); err != nil {
			return c, err
		}
		c.Text = d.Message
	case "buttons", "quick_reply":
		var d struct {
			Message string       `json:"message"`
			Buttons []msg.Button `json:"buttons"`
		}
		if err := strictData(it.Data, &d); err != nil {
			return c, err
		}
		if len(d.Buttons) == 0 || len(d.Buttons) > 10 {
			return c, fmt.Errorf("data.buttons must hold 1 to 10 buttons")
		}
		for j, b := range d.Buttons {
			if strings.TrimSpace(b.Title) == "" || len([]rune(b.Title)) > 20 {
				return c, fmt.Errorf("data.buttons[%d].title must be 1 to 20 characters", j)
			}
		}
		c.Text, c.Buttons = d.Message, d.Buttons
	case "image", "video", "audio", "document":
		var m msg.Media
		if err := strictData(it.Data, &m); err != nil {
			return c, err
		}
		m.Type = typ
		if !webURL(m.URL) {
			return c, fmt.Errorf("data.url must be an http(s) URL")
		}
		c.Media = &m
	case "card":
		var cd msg.Card
		if err := strictData(it.Data, &cd); err != nil {
			return c, err
		}
		if cd.Title == "" && cd.Description == "" && cd.MediaURL == "" {
			return c, fmt.Errorf("a card needs a title, a description or a media_url")
		}
		if cd.MediaURL != "" && !webURL(cd.MediaURL) {
			return c, fmt.Errorf("data.media_url must be an http(s) URL")
		}
		c.Card = &cd
	case "template":
		return c, fmt.Errorf("templates are sent with the v2 broadcast API (payload.type whatsapp_template)")
	default:
		return c, fmt.Errorf("unknown type %q: use text, buttons, image, video, audio, document or card", it.Type)
	}
	if c.Text != "" && (len(c.Text) > 4096 || !cleanText(c.Text)) {
		return c, fmt.Errorf("data.message must be text of at most 4096 characters")
	}
	if c.Text == "" && c.Media == nil && c.Card == nil {
		return c, fmt.Errorf("data.message is empty")
	}
	return c, nil
}

func strictData(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return fmt.Errorf("data is required")
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("data: %v", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

func webURL(s string) bool {
	return (strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")) && len(s) > len("https://") && len(s) <= 2048
}

// cleanText reports whether s is valid UTF-8 without NUL bytes (which PostgreSQL cannot
// store in text).
func cleanText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}
