package rcs

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/msg"
)

const clientToken = "client-token-xyz"

func signEvent(data []byte, token string) string {
	mac := hmac.New(sha512.New, []byte(token))
	mac.Write(data)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// wrap puts an event into the Pub/Sub-style envelope Google posts.
func wrap(event string) []byte {
	b, _ := json.Marshal(map[string]any{
		"message": map[string]any{
			"data":        base64.StdEncoding.EncodeToString([]byte(event)),
			"messageId":   "2070443601311540",
			"publishTime": "2026-01-02T03:04:05.678Z",
		},
		"subscription": "projects/rbm-agent/subscriptions/rbm-agent-sub",
	})
	return b
}

func TestParseWebhookHandshake(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		token   string
		secret  string
		wantBad bool
	}{
		{"good", `{"clientToken":"client-token-xyz","secret":"1234567890"}`, clientToken, "1234567890", false},
		{"wrong token", `{"clientToken":"other","secret":"1234567890"}`, clientToken, "", true},
		{"missing token", `{"secret":"1234567890"}`, clientToken, "", true},
		{"nothing configured", `{"clientToken":"","secret":"1234567890"}`, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ParseWebhook([]byte(tt.body), "", tt.token)
			if tt.wantBad {
				if !errors.Is(err, ErrBadSignature) {
					t.Fatalf("err = %v, want ErrBadSignature", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.Secret != tt.secret || ev.Message != nil || ev.Status != nil {
				t.Errorf("event = %+v, want only Secret %q", ev, tt.secret)
			}
		})
	}
}

func TestParseWebhookSignature(t *testing.T) {
	event := `{"senderPhoneNumber":"+12223334444","messageId":"m1","sendTime":"2026-01-02T03:04:05Z","agentId":"a","text":"hi"}`
	body := wrap(event)
	good := signEvent([]byte(event), clientToken)
	tests := []struct {
		name   string
		header string
		token  string
		ok     bool
	}{
		{"good", good, clientToken, true},
		{"good with spaces", " " + good + "\n", clientToken, true},
		{"missing", "", clientToken, false},
		{"wrong token", signEvent([]byte(event), "other"), clientToken, false},
		{"signed over the envelope, not the data", signEvent(body, clientToken), clientToken, false},
		{"SHA-256 length", base64.StdEncoding.EncodeToString(make([]byte, 32)), clientToken, false},
		{"not base64", "!!!" + good[3:], clientToken, false},
		{"hex instead of base64", strings.Repeat("ab", 64), clientToken, false},
		{"no token configured", good, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ParseWebhook(body, tt.header, tt.token)
			if tt.ok {
				if err != nil || ev.Message == nil {
					t.Fatalf("ParseWebhook = %+v, %v; want a message", ev, err)
				}
				return
			}
			if !errors.Is(err, ErrBadSignature) || ev != nil {
				t.Fatalf("ParseWebhook = %+v, %v; want ErrBadSignature", ev, err)
			}
		})
	}
}

func TestParseWebhookEvents(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	tests := []struct {
		name    string
		event   string
		message *channel.Inbound
		status  *channel.Status
	}{
		{"text",
			`{"senderPhoneNumber":"+12223334444","messageId":"MxA1","sendTime":"2026-01-02T03:04:05.123456Z","agentId":"a","text":"Where is my order?"}`,
			&channel.Inbound{ProviderMessageID: "MxA1", From: "12223334444", Type: "text", Text: "Where is my order?", Timestamp: at}, nil},
		{"text identified by eventId only",
			`{"senderPhoneNumber":"+12223334444","eventId":"EvX","agentId":"a","text":"Hi"}`,
			&channel.Inbound{ProviderMessageID: "EvX", From: "12223334444", Type: "text", Text: "Hi"}, nil},
		{"suggestion response",
			`{"senderPhoneNumber":"+12223334444","messageId":"MxA2","sendTime":"2026-01-02T03:04:05.123456Z",
			  "suggestionResponse":{"postbackData":"flow_order||data_choice=yes","text":"Yes","type":"REPLY"}}`,
			&channel.Inbound{ProviderMessageID: "MxA2", From: "12223334444", Type: "suggestionResponse",
				Text: "Yes", Payload: "flow_order||data_choice=yes", Timestamp: at}, nil},
		{"image file",
			`{"senderPhoneNumber":"+12223334444","messageId":"MxA3","sendTime":"2026-01-02T03:04:05.123456Z",
			  "userFile":{"payload":{"mimeType":"image/jpeg","fileSizeBytes":"12345","fileUri":"https://rcs-user-content-us.storage.googleapis.com/abc","fileName":"box.jpg"},
			  "thumbnail":{"mimeType":"image/jpeg","fileUri":"https://x/thumb"}}}`,
			&channel.Inbound{ProviderMessageID: "MxA3", From: "12223334444", Type: "userFile", Timestamp: at,
				Media: &msg.Media{Type: "image", URL: "https://rcs-user-content-us.storage.googleapis.com/abc", Filename: "box.jpg"}}, nil},
		{"pdf file",
			`{"senderPhoneNumber":"+12223334444","messageId":"MxA4","userFile":{"payload":{"mimeType":"application/pdf","fileUri":"https://x/f.pdf","fileName":"f.pdf"}}}`,
			&channel.Inbound{ProviderMessageID: "MxA4", From: "12223334444", Type: "userFile",
				Media: &msg.Media{Type: "document", URL: "https://x/f.pdf", Filename: "f.pdf"}}, nil},
		{"location",
			`{"senderPhoneNumber":"+12223334444","messageId":"MxA5","location":{"latitude":37.422,"longitude":-122.0841}}`,
			&channel.Inbound{ProviderMessageID: "MxA5", From: "12223334444", Type: "location", Text: "37.422,-122.0841"}, nil},
		{"unknown content",
			`{"senderPhoneNumber":"+12223334444","messageId":"MxA6","somethingNew":{}}`,
			&channel.Inbound{ProviderMessageID: "MxA6", From: "12223334444",
				Unsupported: "message has no text, suggestion response, file or location"}, nil},
		{"delivered",
			`{"senderPhoneNumber":"+12223334444","eventType":"DELIVERED","eventId":"E1","messageId":"out-1","sendTime":"2026-01-02T03:04:05.123456Z","agentId":"a"}`,
			nil, &channel.Status{ProviderMessageID: "out-1", Status: "delivered", Recipient: "12223334444", Timestamp: at}},
		{"read",
			`{"senderPhoneNumber":"+12223334444","eventType":"READ","eventId":"E2","messageId":"out-1","agentId":"a"}`,
			nil, &channel.Status{ProviderMessageID: "out-1", Status: "read", Recipient: "12223334444"}},
		{"typing", `{"senderPhoneNumber":"+12223334444","eventType":"IS_TYPING","eventId":"E3","agentId":"a"}`, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ParseWebhook(wrap(tt.event), signEvent([]byte(tt.event), clientToken), clientToken)
			if err != nil {
				t.Fatalf("ParseWebhook: %v", err)
			}
			if ev.Secret != "" {
				t.Errorf("Secret = %q on an event", ev.Secret)
			}
			if !reflect.DeepEqual(ev.Status, tt.status) {
				t.Errorf("Status = %+v, want %+v", ev.Status, tt.status)
			}
			if tt.message == nil {
				if ev.Message != nil {
					t.Errorf("Message = %+v, want none", ev.Message)
				}
				return
			}
			if ev.Message == nil {
				t.Fatal("no message")
			}
			got := *ev.Message
			if string(got.Raw) != tt.event {
				t.Errorf("Raw = %s, want the decoded event", got.Raw)
			}
			got.Raw = nil
			if !reflect.DeepEqual(got, *tt.message) {
				t.Errorf("message\n got %+v\nwant %+v", got, *tt.message)
			}
		})
	}
}

func TestParseWebhookMalformed(t *testing.T) {
	signed := func(event string) ([]byte, string) { return wrap(event), signEvent([]byte(event), clientToken) }
	noSender, noSenderSig := signed(`{"messageId":"m","text":"hi"}`)
	badEvent, badEventSig := signed(`not json`)
	noID, noIDSig := signed(`{"senderPhoneNumber":"+1222","eventType":"READ"}`)
	tests := []struct {
		name string
		body []byte
		sig  string
	}{
		{"not JSON", []byte(`{`), ""},
		{"empty object", []byte(`{}`), ""},
		{"no data", []byte(`{"message":{"messageId":"1"}}`), ""},
		{"data not base64", []byte(`{"message":{"data":"***"}}`), "x"},
		{"event not JSON", badEvent, badEventSig},
		{"event without sender", noSender, noSenderSig},
		{"receipt without messageId", noID, noIDSig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ParseWebhook(tt.body, tt.sig, clientToken)
			if err == nil || ev != nil {
				t.Fatalf("ParseWebhook = %+v, %v; want an error", ev, err)
			}
			if errors.Is(err, ErrBadSignature) {
				t.Errorf("a malformed body was reported as a bad signature: %v", err)
			}
		})
	}
}

func FuzzParseWebhook(f *testing.F) {
	events := []string{
		`{"senderPhoneNumber":"+12223334444","messageId":"m","sendTime":"2026-01-02T03:04:05Z","text":"hi"}`,
		`{"senderPhoneNumber":"+12223334444","messageId":"m","suggestionResponse":{"postbackData":"p","text":"t","type":"REPLY"}}`,
		`{"senderPhoneNumber":"+12223334444","messageId":"m","userFile":{"payload":{"mimeType":"image/png","fileUri":"u"}}}`,
		`{"senderPhoneNumber":"+12223334444","messageId":"m","location":{"latitude":1,"longitude":2}}`,
		`{"senderPhoneNumber":"+12223334444","eventType":"DELIVERED","messageId":"m"}`,
		`{"senderPhoneNumber":"+12223334444","eventType":"IS_TYPING"}`,
	}
	for _, e := range events {
		f.Add(wrap(e), signEvent([]byte(e), clientToken), clientToken)
	}
	f.Add([]byte(`{"clientToken":"client-token-xyz","secret":"s"}`), "", clientToken)
	f.Add([]byte(`{"message":{"data":"e30="}}`), "", "")
	f.Fuzz(func(t *testing.T, body []byte, sig, token string) {
		ev, err := ParseWebhook(body, sig, token)
		if err != nil {
			if ev != nil {
				t.Fatal("error with a non-nil event")
			}
			return
		}
		if token == "" {
			t.Fatal("accepted a request with no client token configured")
		}
		set := 0
		if ev.Secret != "" {
			set++
		}
		if ev.Message != nil {
			set++
			if strings.HasPrefix(ev.Message.From, "+") {
				t.Fatalf("From %q keeps the +", ev.Message.From)
			}
		}
		if ev.Status != nil {
			set++
		}
		if set > 1 {
			t.Fatalf("more than one field set: %+v", ev)
		}
	})
}
