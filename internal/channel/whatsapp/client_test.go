package whatsapp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/msg"
)

const (
	testPhoneID = "104242"
	testToken   = "EAAG-test-token"
	okResponse  = `{"messaging_product":"whatsapp","contacts":[{"input":"919812300001","wa_id":"919812300001"}],"messages":[{"id":"wamid.HBgLMTIzNDU2Nzg5MBUCABEYEjQ1"}]}`
)

// fakeGraph is a stand-in for the Graph API's /messages endpoint. It records the last
// request and answers with the configured status, headers and body.
type fakeGraph struct {
	mu      sync.Mutex
	calls   int
	method  string
	path    string
	header  http.Header
	body    []byte
	status  int
	reply   string
	headers map[string]string
}

func (f *fakeGraph) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.calls++
	f.method, f.path, f.header, f.body = r.Method, r.URL.Path, r.Header.Clone(), b
	status, reply, headers := f.status, f.reply, f.headers
	f.mu.Unlock()
	for k, v := range headers {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	io.WriteString(w, reply)
}

func newFake(t *testing.T, status int, reply string, headers map[string]string) (*fakeGraph, *Client) {
	t.Helper()
	f := &fakeGraph{status: status, reply: reply, headers: headers}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(channel.Config{BaseURL: srv.URL, PhoneNumberID: testPhoneID, Token: testToken}, srv.Client())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return f, c
}

var testRecipient = channel.Recipient{Phone: "+919812300001", ChannelUserID: "919812300001"}

func TestSendShapes(t *testing.T) {
	btn := func(id, title string) msg.Button { return msg.Button{ID: id, Title: title} }
	tests := []struct {
		name    string
		content msg.Content
		want    string // the JSON body the Graph API must receive
	}{
		{
			name:    "text",
			content: msg.Content{Text: "Your order A1 has shipped"},
			want: `{"messaging_product":"whatsapp","recipient_type":"individual","to":"919812300001",
				"type":"text","text":{"preview_url":false,"body":"Your order A1 has shipped"}}`,
		},
		{
			name:    "three buttons, title used when id is empty",
			content: msg.Content{Text: "Pick one", Buttons: []msg.Button{btn("yes_id", "Yes"), btn("", "No"), btn("m", "Maybe")}},
			want: `{"messaging_product":"whatsapp","recipient_type":"individual","to":"919812300001","type":"interactive",
				"interactive":{"type":"button","body":{"text":"Pick one"},"action":{"buttons":[
					{"type":"reply","reply":{"id":"yes_id","title":"Yes"}},
					{"type":"reply","reply":{"id":"No","title":"No"}},
					{"type":"reply","reply":{"id":"m","title":"Maybe"}}]}}}`,
		},
		{
			name:    "one button",
			content: msg.Content{Text: "OK?", Buttons: []msg.Button{btn("flow_x||data_a=1", "OK")}},
			want: `{"messaging_product":"whatsapp","recipient_type":"individual","to":"919812300001","type":"interactive",
				"interactive":{"type":"button","body":{"text":"OK?"},"action":{"buttons":[
					{"type":"reply","reply":{"id":"flow_x||data_a=1","title":"OK"}}]}}}`,
		},
		{
			name: "four buttons become a list",
			content: msg.Content{Text: "Size?", Buttons: []msg.Button{
				btn("s", "Small"), btn("m", "Medium"), btn("l", "Large"), btn("", "XL")}},
			want: `{"messaging_product":"whatsapp","recipient_type":"individual","to":"919812300001","type":"interactive",
				"interactive":{"type":"list","body":{"text":"Size?"},"action":{"button":"Choose","sections":[{"rows":[
					{"id":"s","title":"Small"},{"id":"m","title":"Medium"},{"id":"l","title":"Large"},{"id":"XL","title":"XL"}]}]}}}`,
		},
		{
			name:    "image with caption",
			content: msg.Content{Media: &msg.Media{Type: "image", URL: "https://cdn.example.com/a.jpg", Caption: "Your parcel"}},
			want: `{"messaging_product":"whatsapp","recipient_type":"individual","to":"919812300001","type":"image",
				"image":{"link":"https://cdn.example.com/a.jpg","caption":"Your parcel"}}`,
		},
		{
			name:    "video",
			content: msg.Content{Media: &msg.Media{Type: "video", URL: "https://cdn.example.com/v.mp4"}},
			want: `{"messaging_product":"whatsapp","recipient_type":"individual","to":"919812300001","type":"video",
				"video":{"link":"https://cdn.example.com/v.mp4"}}`,
		},
		{
			name:    "audio drops the caption",
			content: msg.Content{Media: &msg.Media{Type: "audio", URL: "https://cdn.example.com/a.mp3", Caption: "ignored"}},
			want: `{"messaging_product":"whatsapp","recipient_type":"individual","to":"919812300001","type":"audio",
				"audio":{"link":"https://cdn.example.com/a.mp3"}}`,
		},
		{
			name:    "document with filename",
			content: msg.Content{Media: &msg.Media{Type: "document", URL: "https://cdn.example.com/i.pdf", Caption: "Invoice", Filename: "invoice-12345.pdf"}},
			want: `{"messaging_product":"whatsapp","recipient_type":"individual","to":"919812300001","type":"document",
				"document":{"link":"https://cdn.example.com/i.pdf","caption":"Invoice","filename":"invoice-12345.pdf"}}`,
		},
		{
			name: "card with buttons: image header",
			content: msg.Content{Card: &msg.Card{Title: "Red shoes", Description: "Size 42, in stock",
				MediaURL: "https://cdn.example.com/shoes.jpg", Buttons: []msg.Button{btn("buy", "Buy"), btn("", "Later")}}},
			want: `{"messaging_product":"whatsapp","recipient_type":"individual","to":"919812300001","type":"interactive",
				"interactive":{"type":"button",
					"header":{"type":"image","image":{"link":"https://cdn.example.com/shoes.jpg"}},
					"body":{"text":"Red shoes\n\nSize 42, in stock"},
					"action":{"buttons":[{"type":"reply","reply":{"id":"buy","title":"Buy"}},{"type":"reply","reply":{"id":"Later","title":"Later"}}]}}}`,
		},
		{
			name:    "card without buttons: image with caption",
			content: msg.Content{Card: &msg.Card{Title: "Red shoes", Description: "Size 42", MediaURL: "https://cdn.example.com/shoes.jpg"}},
			want: `{"messaging_product":"whatsapp","recipient_type":"individual","to":"919812300001","type":"image",
				"image":{"link":"https://cdn.example.com/shoes.jpg","caption":"Red shoes\n\nSize 42"}}`,
		},
		{
			name:    "card without media: text",
			content: msg.Content{Card: &msg.Card{Title: "Red shoes", Description: "Size 42"}},
			want: `{"messaging_product":"whatsapp","recipient_type":"individual","to":"919812300001","type":"text",
				"text":{"preview_url":false,"body":"Red shoes\n\nSize 42"}}`,
		},
		{
			name: "template: components passed through, namespace left out",
			content: msg.Content{Template: &msg.Template{
				Name: "order_update", Namespace: "c8ae5f90_307a_ca4c_b8f6_d1e2a2573574",
				Language: msg.TemplateLang{Code: "en_US", Policy: "deterministic"},
				Components: []map[string]any{
					{"type": "header", "parameters": []any{map[string]any{"type": "image", "image": map[string]any{"link": "https://cdn.example.com/h.jpg"}}}},
					{"type": "body", "parameters": []any{map[string]any{"type": "text", "text": "Asha"}}},
					{"type": "button", "sub_type": "quick_reply", "index": "0",
						"parameters": []any{map[string]any{"type": "payload", "payload": "flow_7bbb||data_personx_response=declined_invoice_no_12345"}}},
				},
			}},
			want: `{"messaging_product":"whatsapp","recipient_type":"individual","to":"919812300001","type":"template",
				"template":{"name":"order_update","language":{"code":"en_US","policy":"deterministic"},"components":[
					{"type":"header","parameters":[{"type":"image","image":{"link":"https://cdn.example.com/h.jpg"}}]},
					{"type":"body","parameters":[{"type":"text","text":"Asha"}]},
					{"type":"button","sub_type":"quick_reply","index":"0","parameters":[{"type":"payload","payload":"flow_7bbb||data_personx_response=declined_invoice_no_12345"}]}]}}`,
		},
		{
			name:    "template without policy defaults to deterministic",
			content: msg.Content{Template: &msg.Template{Name: "hello_world", Language: msg.TemplateLang{Code: "en_US"}}},
			want: `{"messaging_product":"whatsapp","recipient_type":"individual","to":"919812300001","type":"template",
				"template":{"name":"hello_world","language":{"code":"en_US","policy":"deterministic"}}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t, http.StatusOK, okResponse, nil)
			sent, err := c.Send(context.Background(), testRecipient, tt.content, "idem-1")
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if want := (channel.Sent{ProviderMessageID: "wamid.HBgLMTIzNDU2Nzg5MBUCABEYEjQ1", Status: "sent"}); sent != want {
				t.Errorf("Sent = %+v, want %+v", sent, want)
			}
			if f.method != http.MethodPost {
				t.Errorf("method = %s, want POST", f.method)
			}
			if want := "/v21.0/" + testPhoneID + "/messages"; f.path != want {
				t.Errorf("path = %q, want %q", f.path, want)
			}
			if got := f.header.Get("Authorization"); got != "Bearer "+testToken {
				t.Errorf("Authorization = %q", got)
			}
			if got := f.header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q", got)
			}
			assertJSONEqual(t, f.body, tt.want)
		})
	}
}

func assertJSONEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("request body is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expectation JSON: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("body mismatch\n got: %s\nwant: %s", got, compact(json.RawMessage(want)))
	}
}

func TestSendRecipient(t *testing.T) {
	tests := []struct {
		name string
		to   channel.Recipient
		want string
	}{
		{"channel user id wins", channel.Recipient{Phone: "+15550001111", ChannelUserID: "15550002222"}, "15550002222"},
		{"phone without plus as fallback", channel.Recipient{Phone: "+15550001111"}, "15550001111"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t, http.StatusOK, okResponse, nil)
			if _, err := c.Send(context.Background(), tt.to, msg.Content{Text: "hi"}, ""); err != nil {
				t.Fatalf("Send: %v", err)
			}
			var body struct {
				To string `json:"to"`
			}
			if err := json.Unmarshal(f.body, &body); err != nil {
				t.Fatal(err)
			}
			if body.To != tt.want {
				t.Errorf("to = %q, want %q", body.To, tt.want)
			}
		})
	}
}

func TestSendRejectsBadContentLocally(t *testing.T) {
	many := make([]msg.Button, 11)
	for i := range many {
		many[i] = msg.Button{Title: "b"}
	}
	tests := []struct {
		name    string
		to      channel.Recipient
		content msg.Content
	}{
		{"empty", testRecipient, msg.Content{}},
		{"blank text", testRecipient, msg.Content{Text: "  "}},
		{"no recipient", channel.Recipient{}, msg.Content{Text: "hi"}},
		{"eleven buttons", testRecipient, msg.Content{Text: "pick", Buttons: many}},
		{"buttons without text", testRecipient, msg.Content{Buttons: []msg.Button{{Title: "a"}}}},
		{"button without title", testRecipient, msg.Content{Text: "pick", Buttons: []msg.Button{{ID: "x"}}}},
		{"unknown media type", testRecipient, msg.Content{Media: &msg.Media{Type: "gif", URL: "https://x/y"}}},
		{"media without URL", testRecipient, msg.Content{Media: &msg.Media{Type: "image"}}},
		{"media with buttons", testRecipient, msg.Content{Media: &msg.Media{Type: "image", URL: "https://x/y"}, Buttons: []msg.Button{{Title: "a"}}}},
		{"empty card", testRecipient, msg.Content{Card: &msg.Card{}}},
		{"template without name", testRecipient, msg.Content{Template: &msg.Template{Language: msg.TemplateLang{Code: "en"}}}},
		{"template without language", testRecipient, msg.Content{Template: &msg.Template{Name: "t"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t, http.StatusOK, okResponse, nil)
			_, err := c.Send(context.Background(), tt.to, tt.content, "")
			var ce *channel.Error
			if !errors.As(err, &ce) || ce.Kind != channel.KindInvalid || ce.Retryable {
				t.Fatalf("err = %#v, want a non-retryable KindInvalid *channel.Error", err)
			}
			if f.calls != 0 {
				t.Errorf("the Graph API was called %d times for invalid content", f.calls)
			}
		})
	}
}

func graphErr(code int, message, details string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"message": message, "type": "OAuthException", "code": code,
		"error_data": map[string]any{"messaging_product": "whatsapp", "details": details},
		"fbtrace_id": "AbCdEf123",
	}})
	return string(b)
}

func TestSendErrorMapping(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       string
		headers    map[string]string
		kind       channel.Kind
		retryable  bool
		code       int
		retryAfter time.Duration
		contains   []string
	}{
		{"131047 window closed", 400, graphErr(131047, "(#131047) Re-engagement message", "More than 24 hours have passed"),
			nil, channel.KindWindowClosed, false, 131047, 0,
			[]string{"HTTP 400", "Re-engagement message", "More than 24 hours", "AbCdEf123"}},
		{"130429 rate limit with Retry-After", 400, graphErr(130429, "(#130429) Rate limit hit", "Cloud API message throughput has been reached."),
			map[string]string{"Retry-After": "7"}, channel.KindRateLimited, true, 130429, 7 * time.Second,
			[]string{"Rate limit hit", "throughput"}},
		{"131056 pair rate limit", 400, graphErr(131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit", ""),
			nil, channel.KindRateLimited, true, 131056, 0, []string{"pair rate limit"}},
		{"4 app rate limit", 400, graphErr(4, "(#4) Application request limit reached", ""),
			nil, channel.KindRateLimited, true, 4, 0, nil},
		{"80007 WABA rate limit", 400, graphErr(80007, "(#80007) Rate limit issues", ""),
			nil, channel.KindRateLimited, true, 80007, 0, nil},
		{"131057 throughput upgrade", 400, graphErr(131057, "(#131057) Account in maintenance mode", ""),
			map[string]string{"Retry-After": "60"}, channel.KindUnavailable, true, 131057, time.Minute, nil},
		{"131026 undeliverable", 400, graphErr(131026, "(#131026) Message Undeliverable", "Receiver is incapable of receiving this message"),
			nil, channel.KindUndeliverable, false, 131026, 0, []string{"incapable"}},
		{"131049 ecosystem", 400, graphErr(131049, "(#131049) This message was not delivered to maintain healthy ecosystem engagement.", ""),
			nil, channel.KindUndeliverable, false, 131049, 0, nil},
		{"131048 spam rate limit", 400, graphErr(131048, "(#131048) Spam rate limit hit", ""),
			nil, channel.KindUndeliverable, false, 131048, 0, nil},
		{"190 expired token", 401, graphErr(190, "Error validating access token: Session has expired", ""),
			nil, channel.KindAuth, false, 190, 0, []string{"HTTP 401", "Session has expired"}},
		{"190 even with HTTP 400", 400, graphErr(190, "Invalid OAuth access token", ""),
			nil, channel.KindAuth, false, 190, 0, nil},
		{"HTTP 401 without envelope", 401, `Unauthorized`,
			nil, channel.KindAuth, false, 0, 0, []string{"HTTP 401", "Unauthorized"}},
		{"100 invalid parameter", 400, graphErr(100, "(#100) Invalid parameter", "Parameter value is not valid"),
			nil, channel.KindInvalid, false, 100, 0, []string{"Invalid parameter", "Parameter value is not valid"}},
		{"unknown code on 400", 400, graphErr(132001, "(#132001) Template name does not exist in the translation", ""),
			nil, channel.KindInvalid, false, 132001, 0, []string{"Template name"}},
		{"404 without envelope", 404, `not found`,
			nil, channel.KindInvalid, false, 0, 0, []string{"HTTP 404"}},
		{"HTTP 500 with 131000", 500, graphErr(131000, "Something went wrong", ""),
			nil, channel.KindUnavailable, true, 131000, 0, []string{"HTTP 500"}},
		{"HTTP 503 plain, Retry-After date", 503, `<html>busy</html>`,
			map[string]string{"Retry-After": time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)},
			channel.KindUnavailable, true, 0, 90 * time.Second, []string{"HTTP 503", "busy"}},
		{"code 2 temporarily unavailable", 400, graphErr(2, "Service temporarily unavailable", ""),
			nil, channel.KindUnavailable, true, 2, 0, nil},
		{"HTTP 429 without code", 429, `{}`,
			map[string]string{"Retry-After": "3"}, channel.KindRateLimited, true, 0, 3 * time.Second, nil},
		{"Retry-After ignored when not retryable", 400, graphErr(131047, "x", ""),
			map[string]string{"Retry-After": "30"}, channel.KindWindowClosed, false, 131047, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := newFake(t, tt.status, tt.body, tt.headers)
			_, err := c.Send(context.Background(), testRecipient, msg.Content{Text: "hi"}, "k")
			var ce *channel.Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v (%T), want *channel.Error", err, err)
			}
			if ce.Kind != tt.kind || ce.Retryable != tt.retryable || ce.ProviderCode != tt.code || ce.HTTPStatus != tt.status {
				t.Errorf("got kind=%s retryable=%v code=%d status=%d, want %s %v %d %d",
					ce.Kind, ce.Retryable, ce.ProviderCode, ce.HTTPStatus, tt.kind, tt.retryable, tt.code, tt.status)
			}
			// HTTP dates have one-second resolution; allow for it and for test latency.
			if d := ce.RetryAfter - tt.retryAfter; d < -2*time.Second || d > 0 || (tt.retryAfter == 0) != (ce.RetryAfter == 0) {
				t.Errorf("RetryAfter = %v, want %v", ce.RetryAfter, tt.retryAfter)
			}
			for _, s := range tt.contains {
				if !strings.Contains(ce.Error(), s) {
					t.Errorf("error %q does not contain %q", ce.Error(), s)
				}
			}
		})
	}
}

func TestSendNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	c, err := New(channel.Config{BaseURL: srv.URL, PhoneNumberID: testPhoneID, Token: testToken}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	srv.Close() // nothing listens any more
	_, err = c.Send(context.Background(), testRecipient, msg.Content{Text: "hi"}, "k")
	var ce *channel.Error
	if !errors.As(err, &ce) || ce.Kind != channel.KindUnavailable || !ce.Retryable || ce.HTTPStatus != 0 {
		t.Fatalf("err = %#v, want retryable KindUnavailable with no HTTP status", err)
	}
}

func TestSendSuccessWithoutID(t *testing.T) {
	tests := []struct{ name, body string }{
		{"no messages", `{"messaging_product":"whatsapp","messages":[]}`},
		{"not JSON", `ok`},
		// The cap: a valid reply hidden after more than 1 MiB is cut off, not read whole.
		{"beyond the read cap", strings.Repeat(" ", maxResponseBytes) + okResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := newFake(t, http.StatusOK, tt.body, nil)
			_, err := c.Send(context.Background(), testRecipient, msg.Content{Text: "hi"}, "k")
			var ce *channel.Error
			if !errors.As(err, &ce) || ce.Retryable {
				t.Fatalf("err = %#v, want a non-retryable *channel.Error (the message may have gone out)", err)
			}
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name     string
		cfg      channel.Config
		wantErr  string
		endpoint string
	}{
		{"defaults", channel.Config{PhoneNumberID: "123", Token: "t"}, "", "https://graph.facebook.com/v21.0/123/messages"},
		{"overrides", channel.Config{BaseURL: "http://127.0.0.1:9/graph/", APIVersion: "v25.0", PhoneNumberID: "123", Token: "t"}, "",
			"http://127.0.0.1:9/graph/v25.0/123/messages"},
		{"no phone number id", channel.Config{Token: "t"}, "phone_number_id", ""},
		{"no token", channel.Config{PhoneNumberID: "123"}, "token", ""},
		{"relative base URL", channel.Config{BaseURL: "graph.local", PhoneNumberID: "123", Token: "t"}, "base_url", ""},
		{"bad scheme", channel.Config{BaseURL: "ftp://graph.local", PhoneNumberID: "123", Token: "t"}, "base_url", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.endpoint != tt.endpoint {
				t.Errorf("endpoint = %q, want %q", c.endpoint, tt.endpoint)
			}
			if !c.External() {
				t.Error("External() = false")
			}
		})
	}
}

// The client must satisfy the interface the engine uses.
var _ channel.Sender = (*Client)(nil)
