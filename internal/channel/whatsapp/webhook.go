package whatsapp

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/msg"
)

// SignatureHeader is the request header carrying the webhook body's signature.
const SignatureHeader = "X-Hub-Signature-256"

// MediaIDPrefix marks an inbound Media.URL that is a Graph API media id, not a URL:
// the file has to be fetched from the Graph API with the bot's token.
const MediaIDPrefix = "wa-media:"

// formSubmittedText stands in for a WhatsApp Flow reply that carries no body text.
const formSubmittedText = "Form submitted"

const webhookObject = "whatsapp_business_account"

// VerifySignature reports whether header ("sha256=<hex>") is the HMAC-SHA256 of the raw
// request body keyed with the app secret. It is false for an empty secret or header and
// for a header that is not well-formed hex of the right length.
func VerifySignature(body []byte, header, appSecret string) bool {
	if appSecret == "" {
		return false
	}
	const prefix = "sha256="
	header = strings.TrimSpace(header)
	if len(header) <= len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return false
	}
	got, err := hex.DecodeString(header[len(prefix):])
	if err != nil || len(got) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// VerifyHandshake checks Meta's GET subscription request: hub.mode must be "subscribe"
// and hub.verify_token must equal verifyToken, which must not be empty. On success the
// caller answers 200 with challenge as a plain-text body; otherwise 403.
func VerifyHandshake(q url.Values, verifyToken string) (challenge string, ok bool) {
	if verifyToken == "" || q.Get("hub.mode") != "subscribe" {
		return "", false
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("hub.verify_token")), []byte(verifyToken)) != 1 {
		return "", false
	}
	challenge = q.Get("hub.challenge")
	if challenge == "" {
		return "", false
	}
	return challenge, true
}

// Batch is everything one webhook delivery carried.
type Batch struct {
	Messages []channel.Inbound
	Statuses []channel.Status
	// PhoneNumberIDs are the business phone number ids (metadata.phone_number_id) the
	// changes were for, each once, in the order seen; the caller checks them against
	// the bot's configuration.
	PhoneNumberIDs []string
}

// ParseWebhook parses a notification POST body (after its signature has been checked).
// It fails on malformed JSON, on an object other than whatsapp_business_account and on
// a change whose value does not have the documented shape. A single message it cannot
// understand comes out with Unsupported set rather than failing the batch; a status it
// cannot read is skipped. Changes for fields other than "messages" are ignored.
func ParseWebhook(body []byte) (*Batch, error) {
	var n notification
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, fmt.Errorf("whatsapp webhook: %w", err)
	}
	if n.Object != webhookObject {
		return nil, fmt.Errorf("whatsapp webhook: object %q is not %s", n.Object, webhookObject)
	}
	b := &Batch{}
	seen := map[string]bool{}
	for ei, entry := range n.Entry {
		for ci, change := range entry.Changes {
			if change.Field != "" && change.Field != "messages" {
				continue
			}
			if len(change.Value) == 0 || string(change.Value) == "null" {
				continue
			}
			var v changeValue
			if err := json.Unmarshal(change.Value, &v); err != nil {
				return nil, fmt.Errorf("whatsapp webhook: entry %d change %d: %w", ei, ci, err)
			}
			if id := v.Metadata.PhoneNumberID; id != "" && !seen[id] {
				seen[id] = true
				b.PhoneNumberIDs = append(b.PhoneNumberIDs, id)
			}
			for _, raw := range v.Messages {
				b.Messages = append(b.Messages, parseMessage(raw, v.Contacts, len(v.Messages) == 1))
			}
			for _, raw := range v.Statuses {
				if s, ok := parseStatus(raw); ok {
					b.Statuses = append(b.Statuses, s)
				}
			}
		}
	}
	return b, nil
}

type notification struct {
	Object string `json:"object"`
	Entry  []struct {
		ID      string `json:"id"`
		Changes []struct {
			Field string          `json:"field"`
			Value json.RawMessage `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

type changeValue struct {
	Metadata struct {
		PhoneNumberID string `json:"phone_number_id"`
	} `json:"metadata"`
	Contacts []contact         `json:"contacts"`
	Messages []json.RawMessage `json:"messages"`
	Statuses []json.RawMessage `json:"statuses"`
}

type contact struct {
	Profile struct {
		Name     string `json:"name"`
		Username string `json:"username"`
	} `json:"profile"`
	WaID string `json:"wa_id"`
	// UserID is the business-scoped user id of a user who shows a username instead of
	// a phone number.
	UserID string `json:"user_id"`
}

type inMessage struct {
	From       string   `json:"from"`
	FromUserID string   `json:"from_user_id"`
	ID         string   `json:"id"`
	Timestamp  unixTime `json:"timestamp"`
	Type       string   `json:"type"`
	Text       *struct {
		Body string `json:"body"`
	} `json:"text"`
	Button *struct {
		Payload string `json:"payload"`
		Text    string `json:"text"`
	} `json:"button"`
	Interactive *struct {
		Type        string    `json:"type"`
		ButtonReply *idTitle  `json:"button_reply"`
		ListReply   *idTitle  `json:"list_reply"`
		NFMReply    *nfmReply `json:"nfm_reply"`
	} `json:"interactive"`
	Image    *inMedia `json:"image"`
	Video    *inMedia `json:"video"`
	Audio    *inMedia `json:"audio"`
	Document *inMedia `json:"document"`
	Sticker  *inMedia `json:"sticker"`
	Voice    *inMedia `json:"voice"`
	Location *struct {
		Latitude  float64 `json:"latitude"`
		Longitude float64 `json:"longitude"`
	} `json:"location"`
	Errors []graphEventError `json:"errors"`
}

type idTitle struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

type nfmReply struct {
	Name string `json:"name"`
	Body string `json:"body"`
	// ResponseJSON is documented as a string holding JSON; an object is accepted too.
	ResponseJSON json.RawMessage `json:"response_json"`
}

type inMedia struct {
	ID       string `json:"id"`
	MimeType string `json:"mime_type"`
	Caption  string `json:"caption"`
	Filename string `json:"filename"`
}

// graphEventError is an error inside a webhook (messages[].errors, statuses[].errors).
type graphEventError struct {
	Code      int    `json:"code"`
	Title     string `json:"title"`
	Message   string `json:"message"`
	ErrorData struct {
		Details string `json:"details"`
	} `json:"error_data"`
}

type inStatus struct {
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	RecipientID string            `json:"recipient_id"`
	Timestamp   unixTime          `json:"timestamp"`
	Errors      []graphEventError `json:"errors"`
}

// unixTime reads Unix seconds given as a string (as Meta sends them) or a number. An
// unreadable value gives the zero time instead of failing the whole message.
type unixTime struct{ time.Time }

func (u *unixTime) UnmarshalJSON(b []byte) error {
	s := strings.Trim(strings.TrimSpace(string(b)), `"`)
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil && secs > 0 {
		u.Time = time.Unix(secs, 0).UTC()
	}
	return nil
}

// parseMessage turns one messages[] item into an Inbound. onlyMessage lets a lone
// contact name a lone message even when the ids are written differently.
func parseMessage(raw json.RawMessage, contacts []contact, onlyMessage bool) channel.Inbound {
	in := channel.Inbound{Raw: compact(raw)}
	var m inMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		// Keep what identifies the message so it is still stored once.
		var ids struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		}
		_ = json.Unmarshal(raw, &ids)
		in.ProviderMessageID, in.Type = ids.ID, ids.Type
		in.Unsupported = "malformed message: " + err.Error()
		return in
	}
	in.ProviderMessageID = m.ID
	in.From = strings.TrimPrefix(strings.TrimSpace(m.From), "+")
	in.UserID = m.FromUserID
	in.Type = m.Type
	in.Timestamp = m.Timestamp.Time
	if c := findContact(contacts, in.From, in.UserID, onlyMessage); c != nil {
		in.Name = c.Profile.Name
		if in.UserID == "" {
			in.UserID = c.UserID
		}
	}

	if len(m.Errors) > 0 {
		in.Unsupported = describeErrors(m.Errors)
		return in
	}
	switch m.Type {
	case "text":
		if m.Text == nil {
			in.Unsupported = "text message without a text"
			break
		}
		in.Text = m.Text.Body
	case "button":
		if m.Button == nil {
			in.Unsupported = "button message without a button"
			break
		}
		in.Text, in.Payload = m.Button.Text, m.Button.Payload
	case "interactive":
		parseInteractive(&in, &m)
	case "image", "video", "audio", "document", "sticker", "voice":
		media := map[string]*inMedia{
			"image": m.Image, "video": m.Video, "audio": m.Audio,
			"document": m.Document, "sticker": m.Sticker, "voice": m.Voice,
		}[m.Type]
		if media == nil || media.ID == "" {
			in.Unsupported = m.Type + " message without a media id"
			break
		}
		in.Media = &msg.Media{Type: m.Type, URL: MediaIDPrefix + media.ID, Caption: media.Caption, Filename: media.Filename}
		in.Text = media.Caption
	case "location":
		if m.Location == nil {
			in.Unsupported = "location message without a location"
			break
		}
		in.Text = strconv.FormatFloat(m.Location.Latitude, 'f', -1, 64) + "," +
			strconv.FormatFloat(m.Location.Longitude, 'f', -1, 64)
	case "":
		in.Unsupported = "message has no type"
	default:
		in.Unsupported = fmt.Sprintf("message type %q is not supported", m.Type)
	}
	return in
}

func parseInteractive(in *channel.Inbound, m *inMessage) {
	it := m.Interactive
	if it == nil {
		in.Unsupported = "interactive message without an interactive object"
		return
	}
	var reply *idTitle
	switch it.Type {
	case "button_reply":
		reply = it.ButtonReply
	case "list_reply":
		reply = it.ListReply
	case "nfm_reply":
		if it.NFMReply == nil {
			in.Unsupported = "nfm_reply without a reply"
			return
		}
		in.Payload = jsonText(it.NFMReply.ResponseJSON)
		in.Text = it.NFMReply.Body
		if in.Text == "" {
			in.Text = formSubmittedText
		}
		return
	default:
		in.Unsupported = fmt.Sprintf("interactive type %q is not supported", it.Type)
		return
	}
	if reply == nil {
		in.Unsupported = it.Type + " without a reply"
		return
	}
	in.Payload, in.Text = reply.ID, reply.Title
}

// jsonText returns a JSON string's content, or other JSON as written.
func jsonText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	return string(compact(raw))
}

// findContact returns the contact that sent the message: matched by phone (ignoring a
// "+", which Meta writes in some payloads and not in others) or by business-scoped user
// id; failing that, the only contact of a change that holds only one message.
func findContact(contacts []contact, from, userID string, onlyMessage bool) *contact {
	for i := range contacts {
		c := &contacts[i]
		if from != "" && strings.TrimPrefix(c.WaID, "+") == from {
			return c
		}
		if userID != "" && c.UserID == userID {
			return c
		}
	}
	if len(contacts) == 1 && onlyMessage {
		return &contacts[0]
	}
	return nil
}

// describeErrors explains why Meta could not deliver a message's content to us.
func describeErrors(errs []graphEventError) string {
	e := errs[0]
	reason := e.Title
	if reason == "" {
		reason = e.Message
	}
	if reason == "" {
		reason = "error"
	}
	if d := e.ErrorData.Details; d != "" && d != reason {
		reason += ": " + d
	}
	if e.Code != 0 {
		reason += fmt.Sprintf(" (code %d)", e.Code)
	}
	return reason
}

func parseStatus(raw json.RawMessage) (channel.Status, bool) {
	var s inStatus
	if err := json.Unmarshal(raw, &s); err != nil || s.ID == "" || s.Status == "" {
		return channel.Status{}, false
	}
	st := channel.Status{
		ProviderMessageID: s.ID,
		Status:            s.Status,
		Recipient:         strings.TrimPrefix(s.RecipientID, "+"),
		Timestamp:         s.Timestamp.Time,
	}
	if len(s.Errors) > 0 {
		st.ErrorCode = s.Errors[0].Code
		st.ErrorTitle = s.Errors[0].Title
		if st.ErrorTitle == "" {
			st.ErrorTitle = s.Errors[0].Message
		}
	}
	return st, true
}

// compact strips insignificant white space so the stored Raw is the message alone.
func compact(raw json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return append(json.RawMessage(nil), raw...)
	}
	return buf.Bytes()
}
