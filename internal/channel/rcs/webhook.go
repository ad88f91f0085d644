package rcs

import (
	"crypto/hmac"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/msg"
)

// SignatureHeader is the request header carrying an event's signature.
const SignatureHeader = "X-Goog-Signature"

// ErrBadSignature means a webhook request could not be authenticated: a wrong or
// missing X-Goog-Signature, a handshake with the wrong client token, or no client
// token configured to check against.
var ErrBadSignature = errors.New("rcs webhook: bad signature")

// Event is one parsed webhook request. At most one field is set; none is set for
// events Parley does not act on (IS_TYPING and other user events).
type Event struct {
	// Secret is set for the setup handshake: answer 200 with it as the plain-text body.
	Secret string
	// Message is a message the user sent.
	Message *channel.Inbound
	// Status is a delivery or read receipt for a message the agent sent.
	Status *channel.Status
}

// ParseWebhook authenticates and parses a POST to the agent's webhook. The setup
// handshake {"clientToken","secret"} is accepted when clientToken matches; an event
// arrives in a Pub/Sub-style envelope whose message.data is the base64 event JSON, and
// signatureHeader must be base64(HMAC-SHA512(decoded data, clientToken)). Failed
// authentication gives an error wrapping ErrBadSignature; malformed bodies give other
// errors. Google retries anything but a 200 for days, so the caller should answer 200
// even when this fails and only drop the request.
func ParseWebhook(body []byte, signatureHeader, clientToken string) (*Event, error) {
	if clientToken == "" {
		return nil, fmt.Errorf("%w: no client token is configured to verify with", ErrBadSignature)
	}
	var env struct {
		ClientToken string `json:"clientToken"`
		Secret      string `json:"secret"`
		Message     *struct {
			Data string `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("rcs webhook: %w", err)
	}

	if env.Secret != "" {
		if subtle.ConstantTimeCompare([]byte(env.ClientToken), []byte(clientToken)) != 1 {
			return nil, fmt.Errorf("%w: handshake client token does not match", ErrBadSignature)
		}
		return &Event{Secret: env.Secret}, nil
	}
	if env.Message == nil || env.Message.Data == "" {
		return nil, errors.New("rcs webhook: body is neither a handshake nor an event envelope")
	}
	data, err := decodeBase64(env.Message.Data)
	if err != nil {
		return nil, fmt.Errorf("rcs webhook: message.data: %w", err)
	}
	if !validSignature(data, signatureHeader, clientToken) {
		return nil, fmt.Errorf("%w: %s does not match the event", ErrBadSignature, SignatureHeader)
	}
	return parseEvent(data)
}

// validSignature compares the header with base64(HMAC-SHA512(data, clientToken)) in
// constant time.
func validSignature(data []byte, header, clientToken string) bool {
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(header))
	if err != nil || len(got) != sha512.Size {
		return false
	}
	mac := hmac.New(sha512.New, []byte(clientToken))
	mac.Write(data)
	return hmac.Equal(got, mac.Sum(nil))
}

// decodeBase64 reads standard base64 (what Pub/Sub sends), tolerating the URL-safe
// alphabet and missing padding.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// rbmEvent is a decoded UserMessage or UserEvent.
type rbmEvent struct {
	SenderPhoneNumber  string  `json:"senderPhoneNumber"`
	MessageID          string  `json:"messageId"`
	EventID            string  `json:"eventId"`
	EventType          string  `json:"eventType"`
	SendTime           string  `json:"sendTime"`
	AgentID            string  `json:"agentId"`
	Text               *string `json:"text"`
	SuggestionResponse *struct {
		PostbackData string `json:"postbackData"`
		Text         string `json:"text"`
		Type         string `json:"type"`
	} `json:"suggestionResponse"`
	UserFile *struct {
		Payload struct {
			MimeType string `json:"mimeType"`
			FileURI  string `json:"fileUri"`
			FileName string `json:"fileName"`
		} `json:"payload"`
	} `json:"userFile"`
	Location *struct {
		Latitude  float64 `json:"latitude"`
		Longitude float64 `json:"longitude"`
	} `json:"location"`
}

func parseEvent(data []byte) (*Event, error) {
	var ev rbmEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, fmt.Errorf("rcs webhook: event: %w", err)
	}
	if ev.SenderPhoneNumber == "" {
		return nil, errors.New("rcs webhook: event has no senderPhoneNumber")
	}
	from := strings.TrimPrefix(strings.TrimSpace(ev.SenderPhoneNumber), "+")
	at := parseTime(ev.SendTime)

	if ev.EventType != "" {
		var status string
		switch ev.EventType {
		case "DELIVERED":
			status = "delivered"
		case "READ":
			status = "read"
		default:
			return &Event{}, nil // IS_TYPING and the like change nothing
		}
		if ev.MessageID == "" {
			return nil, fmt.Errorf("rcs webhook: %s event has no messageId", ev.EventType)
		}
		return &Event{Status: &channel.Status{
			ProviderMessageID: ev.MessageID, Status: status, Recipient: from, Timestamp: at,
		}}, nil
	}

	in := &channel.Inbound{
		ProviderMessageID: ev.MessageID,
		From:              from,
		Timestamp:         at,
		Raw:               json.RawMessage(append([]byte(nil), data...)),
	}
	switch {
	case ev.SuggestionResponse != nil:
		in.Type = "suggestionResponse"
		in.Payload, in.Text = ev.SuggestionResponse.PostbackData, ev.SuggestionResponse.Text
	case ev.Text != nil:
		in.Type, in.Text = "text", *ev.Text
	case ev.UserFile != nil:
		in.Type = "userFile"
		p := ev.UserFile.Payload
		if p.FileURI == "" {
			in.Unsupported = "file message without a file URI"
			break
		}
		in.Media = &msg.Media{Type: mediaType(p.MimeType), URL: p.FileURI, Filename: p.FileName}
	case ev.Location != nil:
		in.Type = "location"
		in.Text = strconv.FormatFloat(ev.Location.Latitude, 'f', -1, 64) + "," +
			strconv.FormatFloat(ev.Location.Longitude, 'f', -1, 64)
	default:
		in.Unsupported = "message has no text, suggestion response, file or location"
	}
	if in.ProviderMessageID == "" {
		in.ProviderMessageID = ev.EventID // older payloads identify text by eventId only
	}
	return &Event{Message: in}, nil
}

// mediaType maps a MIME type to msg.Media's types.
func mediaType(mime string) string {
	major, _, _ := strings.Cut(strings.ToLower(mime), "/")
	switch major {
	case "image", "video", "audio":
		return major
	}
	return "document"
}

// parseTime reads an RFC 3339 timestamp; the zero time when absent or unreadable.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}
