package rcs

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/msg"
)

const (
	testAgent = "parley_test_agent"
	testToken = "ya29.test-token"
	testPhone = "+12223334444"
)

// fakeRBM stands in for the RBM API: it records every request and answers each with
// the configured status, headers and body.
type fakeRBM struct {
	mu       sync.Mutex
	requests []recorded
	status   int
	reply    string
	headers  map[string]string
}

type recorded struct {
	method  string
	path    string // decoded
	rawPath string // as sent
	query   url.Values
	header  http.Header
	body    []byte
}

func (f *fakeRBM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, recorded{r.Method, r.URL.Path, r.URL.EscapedPath(), r.URL.Query(), r.Header.Clone(), b})
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

func (f *fakeRBM) last(t *testing.T) recorded {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		t.Fatal("no request reached the fake RBM API")
	}
	return f.requests[len(f.requests)-1]
}

func newFake(t *testing.T, status int, reply string, headers map[string]string) (*fakeRBM, *Client) {
	t.Helper()
	f := &fakeRBM{status: status, reply: reply, headers: headers}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(channel.Config{BaseURL: srv.URL, AgentID: testAgent, Token: testToken}, srv.Client())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return f, c
}

func okReply(id string) string {
	return `{"name":"phones/+12223334444/agentMessages/` + id + `","sendTime":"2026-01-02T03:04:05.123456Z","contentMessage":{"text":"x"}}`
}

var testRecipient = channel.Recipient{Phone: testPhone, ChannelUserID: "12223334444"}

func TestSendShapes(t *testing.T) {
	btns := func(n int) []msg.Button {
		out := make([]msg.Button, n)
		for i := range out {
			out[i] = msg.Button{ID: "id" + string(rune('a'+i)), Title: "B" + string(rune('a'+i))}
		}
		return out
	}
	sugJSON := func(n int) string {
		var parts []string
		for i := range n {
			c := string(rune('a' + i))
			parts = append(parts, `{"reply":{"text":"B`+c+`","postbackData":"id`+c+`"}}`)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	tests := []struct {
		name    string
		content msg.Content
		want    string
	}{
		{"text", msg.Content{Text: "Your order A1 has shipped"},
			`{"contentMessage":{"text":"Your order A1 has shipped"}}`},
		{"text with suggestions, title as postback when ID empty",
			msg.Content{Text: "Pick one", Buttons: []msg.Button{{ID: "flow_x||data_a=1", Title: "Yes"}, {Title: "No"}}},
			`{"contentMessage":{"text":"Pick one","suggestions":[
				{"reply":{"text":"Yes","postbackData":"flow_x||data_a=1"}},{"reply":{"text":"No","postbackData":"No"}}]}}`},
		{"eleven suggestions", msg.Content{Text: "Pick", Buttons: btns(11)},
			`{"contentMessage":{"text":"Pick","suggestions":` + sugJSON(11) + `}}`},
		{"media without caption", msg.Content{Media: &msg.Media{Type: "document", URL: "https://cdn.example.com/i.pdf", Filename: "i.pdf"}},
			`{"contentMessage":{"contentInfo":{"fileUrl":"https://cdn.example.com/i.pdf"}}}`},
		{"image with caption becomes a card", msg.Content{Media: &msg.Media{Type: "image", URL: "https://cdn.example.com/a.jpg", Caption: "Your parcel"}},
			`{"contentMessage":{"richCard":{"standaloneCard":{"cardOrientation":"VERTICAL","cardContent":{
				"description":"Your parcel","media":{"height":"MEDIUM","contentInfo":{"fileUrl":"https://cdn.example.com/a.jpg"}}}}}}}`},
		{"card", msg.Content{Card: &msg.Card{Title: "Red shoes", Description: "Size 42", MediaURL: "https://cdn.example.com/s.jpg",
			Buttons: []msg.Button{{ID: "buy", Title: "Buy"}, {Title: "Later"}}}},
			`{"contentMessage":{"richCard":{"standaloneCard":{"cardOrientation":"VERTICAL","cardContent":{
				"title":"Red shoes","description":"Size 42",
				"media":{"height":"MEDIUM","contentInfo":{"fileUrl":"https://cdn.example.com/s.jpg"}},
				"suggestions":[{"reply":{"text":"Buy","postbackData":"buy"}},{"reply":{"text":"Later","postbackData":"Later"}}]}}}}}`},
		{"card without media", msg.Content{Card: &msg.Card{Title: "Hello"}},
			`{"contentMessage":{"richCard":{"standaloneCard":{"cardOrientation":"VERTICAL","cardContent":{"title":"Hello"}}}}}`},
		{"card with six buttons puts chips under the card", msg.Content{Card: &msg.Card{Title: "T", Buttons: btns(6)}},
			`{"contentMessage":{"richCard":{"standaloneCard":{"cardOrientation":"VERTICAL","cardContent":{"title":"T"}}},
				"suggestions":` + sugJSON(6) + `}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t, http.StatusOK, okReply("x"), nil)
			sent, err := c.Send(context.Background(), testRecipient, tt.content, "run-1/step-2")
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			r := f.last(t)
			if r.method != http.MethodPost {
				t.Errorf("method = %s", r.method)
			}
			if want := "/v1/phones/" + testPhone + "/agentMessages"; r.path != want || r.rawPath != want {
				t.Errorf("path = %q (raw %q), want %q", r.path, r.rawPath, want)
			}
			if got := r.query.Get("agentId"); got != testAgent {
				t.Errorf("agentId = %q", got)
			}
			id := r.query.Get("messageId")
			if _, err := uuid.Parse(id); err != nil {
				t.Errorf("messageId %q is not a UUID: %v", id, err)
			}
			if len(r.query) != 2 {
				t.Errorf("query = %v, want only messageId and agentId", r.query)
			}
			if got := r.header.Get("Authorization"); got != "Bearer "+testToken {
				t.Errorf("Authorization = %q", got)
			}
			if got := r.header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q", got)
			}
			if want := (channel.Sent{ProviderMessageID: id, Status: "sent"}); sent != want {
				t.Errorf("Sent = %+v, want %+v", sent, want)
			}
			assertJSONEqual(t, r.body, tt.want)
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
		gb, _ := json.Marshal(g)
		wb, _ := json.Marshal(w)
		t.Errorf("body mismatch\n got: %s\nwant: %s", gb, wb)
	}
}

func TestSendMessageIDIsDeterministic(t *testing.T) {
	f, c := newFake(t, http.StatusOK, okReply("x"), nil)
	send := func(to channel.Recipient, key string) string {
		t.Helper()
		if _, err := c.Send(context.Background(), to, msg.Content{Text: "hi"}, key); err != nil {
			t.Fatal(err)
		}
		return f.last(t).query.Get("messageId")
	}
	other := channel.Recipient{Phone: "+447700900123"}
	a1, a2 := send(testRecipient, "key-A"), send(testRecipient, "key-A")
	b := send(testRecipient, "key-B")
	o := send(other, "key-A")
	r1, r2 := send(testRecipient, ""), send(testRecipient, "")

	if a1 != a2 {
		t.Errorf("a retried send changed its messageId: %s then %s", a1, a2)
	}
	if a1 == b {
		t.Errorf("two idempotency keys gave the same messageId %s", a1)
	}
	if a1 == o {
		t.Errorf("the same key for two phones gave the same messageId %s", a1)
	}
	if r1 == r2 {
		t.Errorf("sends without a key reused messageId %s", r1)
	}
	want, _ := MessageID(testAgent, testPhone, "key-A")
	if a1 != want {
		t.Errorf("messageId = %s, MessageID() = %s", a1, want)
	}
	if u := uuid.MustParse(a1); u.Version() != 5 {
		t.Errorf("messageId version = %d, want 5 (name-based SHA-1)", u.Version())
	}
}

func TestSendRejectsBadContentLocally(t *testing.T) {
	tooMany := make([]msg.Button, 12)
	for i := range tooMany {
		tooMany[i] = msg.Button{Title: "b"}
	}
	tests := []struct {
		name    string
		to      channel.Recipient
		content msg.Content
		mention string
	}{
		{"template", testRecipient, msg.Content{Template: &msg.Template{Name: "order_update", Language: msg.TemplateLang{Code: "en"}}}, "template"},
		{"text too long", testRecipient, msg.Content{Text: strings.Repeat("é", MaxTextLength+1)}, "3072"},
		{"twelve suggestions", testRecipient, msg.Content{Text: "pick", Buttons: tooMany}, "11"},
		{"twelve card buttons", testRecipient, msg.Content{Card: &msg.Card{Title: "t", Buttons: tooMany}}, "11"},
		{"long suggestion", testRecipient, msg.Content{Text: "pick", Buttons: []msg.Button{{Title: strings.Repeat("x", 26)}}}, "25"},
		{"button without title", testRecipient, msg.Content{Text: "pick", Buttons: []msg.Button{{ID: "x"}}}, "title"},
		{"buttons without text", testRecipient, msg.Content{Buttons: []msg.Button{{Title: "a"}}}, "text"},
		{"empty", testRecipient, msg.Content{}, "empty"},
		{"empty card", testRecipient, msg.Content{Card: &msg.Card{}}, "card"},
		{"long card title", testRecipient, msg.Content{Card: &msg.Card{Title: strings.Repeat("t", 201)}}, "200"},
		{"unknown media", testRecipient, msg.Content{Media: &msg.Media{Type: "gif", URL: "https://x/y"}}, "gif"},
		{"media without URL", testRecipient, msg.Content{Media: &msg.Media{Type: "image"}}, "URL"},
		{"no phone", channel.Recipient{}, msg.Content{Text: "hi"}, "E.164"},
		{"phone with letters", channel.Recipient{Phone: "+1222abc"}, msg.Content{Text: "hi"}, "E.164"},
		{"phone without plus", channel.Recipient{Phone: "12223334444"}, msg.Content{Text: "hi"}, "E.164"},
		{"phone too long", channel.Recipient{Phone: "+1234567890123456"}, msg.Content{Text: "hi"}, "E.164"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t, http.StatusOK, okReply("x"), nil)
			_, err := c.Send(context.Background(), tt.to, tt.content, "k")
			var ce *channel.Error
			if !errors.As(err, &ce) || ce.Kind != channel.KindInvalid || ce.Retryable {
				t.Fatalf("err = %#v, want a non-retryable KindInvalid *channel.Error", err)
			}
			if !strings.Contains(ce.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", ce.Error(), tt.mention)
			}
			if len(f.requests) != 0 {
				t.Errorf("the RBM API was called for invalid content")
			}
		})
	}
}

func TestSendFallsBackToChannelUserID(t *testing.T) {
	f, c := newFake(t, http.StatusOK, okReply("x"), nil)
	if _, err := c.Send(context.Background(), channel.Recipient{ChannelUserID: "12223334444"}, msg.Content{Text: "hi"}, "k"); err != nil {
		t.Fatal(err)
	}
	if got := f.last(t).path; got != "/v1/phones/+12223334444/agentMessages" {
		t.Errorf("path = %q", got)
	}
}

func googleErr(code int, status, message string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": message, "status": status}})
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
		retryAfter time.Duration
		contains   []string
	}{
		{"404 not on RCS", 404, googleErr(404, "NOT_FOUND", "Requested entity was not found."), nil,
			channel.KindUndeliverable, false, 0, []string{"not reachable on RCS", "NOT_FOUND", "HTTP 404"}},
		{"403 agent not launched", 403, googleErr(403, "PERMISSION_DENIED", "Agent not launched on carrier"), nil,
			channel.KindUndeliverable, false, 0, []string{"not launched", "PERMISSION_DENIED", "Agent not launched on carrier"}},
		{"429 rate limited with Retry-After", 429, googleErr(429, "RESOURCE_EXHAUSTED", "Quota exceeded"),
			map[string]string{"Retry-After": "12"}, channel.KindRateLimited, true, 12 * time.Second, []string{"RESOURCE_EXHAUSTED"}},
		{"500", 500, googleErr(500, "INTERNAL", "Internal error"), nil,
			channel.KindUnavailable, true, 0, []string{"INTERNAL"}},
		{"503 plain", 503, `Service Unavailable`, map[string]string{"Retry-After": "5"},
			channel.KindUnavailable, true, 5 * time.Second, []string{"HTTP 503", "Service Unavailable"}},
		{"401", 401, googleErr(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."), nil,
			channel.KindAuth, false, 0, []string{"UNAUTHENTICATED"}},
		{"400 invalid argument", 400, googleErr(400, "INVALID_ARGUMENT", "Invalid value at 'agent_message.content_message'"), nil,
			channel.KindInvalid, false, 0, []string{"INVALID_ARGUMENT", "content_message"}},
		{"409 of another kind", 409, googleErr(409, "ABORTED", "conflict"), nil,
			channel.KindInvalid, false, 0, []string{"ABORTED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := newFake(t, tt.status, tt.body, tt.headers)
			_, err := c.Send(context.Background(), testRecipient, msg.Content{Text: "hi"}, "k")
			var ce *channel.Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v (%T), want *channel.Error", err, err)
			}
			if ce.Kind != tt.kind || ce.Retryable != tt.retryable || ce.HTTPStatus != tt.status || ce.RetryAfter != tt.retryAfter {
				t.Errorf("got kind=%s retryable=%v status=%d retryAfter=%v, want %s %v %d %v",
					ce.Kind, ce.Retryable, ce.HTTPStatus, ce.RetryAfter, tt.kind, tt.retryable, tt.status, tt.retryAfter)
			}
			for _, s := range tt.contains {
				if !strings.Contains(ce.Error(), s) {
					t.Errorf("error %q does not contain %q", ce.Error(), s)
				}
			}
		})
	}
}

func TestSendDuplicateIsSuccess(t *testing.T) {
	f, c := newFake(t, http.StatusConflict, googleErr(409, "ALREADY_EXISTS", "Message with this ID already exists"), nil)
	sent, err := c.Send(context.Background(), testRecipient, msg.Content{Text: "hi"}, "k")
	if err != nil {
		t.Fatalf("a duplicate of an accepted send failed: %v", err)
	}
	if id := f.last(t).query.Get("messageId"); sent.ProviderMessageID != id || sent.Status != "sent" {
		t.Errorf("Sent = %+v, want id %s", sent, id)
	}
}

func TestSendNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	c, err := New(channel.Config{BaseURL: srv.URL, AgentID: testAgent, Token: testToken}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	_, err = c.Send(context.Background(), testRecipient, msg.Content{Text: "hi"}, "k")
	var ce *channel.Error
	if !errors.As(err, &ce) || ce.Kind != channel.KindUnavailable || !ce.Retryable {
		t.Fatalf("err = %#v, want retryable KindUnavailable", err)
	}
	if _, err := c.Reachable(context.Background(), testRecipient); !errors.As(err, &ce) || ce.Kind != channel.KindUnavailable {
		t.Fatalf("Reachable err = %#v, want KindUnavailable", err)
	}
}

func TestReachable(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		want    bool
		wantErr channel.Kind
	}{
		{"200 capable", 200, `{"features":["RICHCARD_STANDALONE","RICHCARD_CAROUSEL","ACTION_DIAL"]}`, true, ""},
		{"404 not RCS", 404, googleErr(404, "NOT_FOUND", "Requested entity was not found."), false, ""},
		{"403 agent not launched", 403, googleErr(403, "PERMISSION_DENIED", "not launched"), false, ""},
		{"401", 401, googleErr(401, "UNAUTHENTICATED", "bad token"), false, channel.KindAuth},
		{"429", 429, googleErr(429, "RESOURCE_EXHAUSTED", "slow down"), false, channel.KindRateLimited},
		{"500", 500, googleErr(500, "INTERNAL", "oops"), false, channel.KindUnavailable},
		{"400", 400, googleErr(400, "INVALID_ARGUMENT", "bad phone"), false, channel.KindInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t, tt.status, tt.body, nil)
			got, err := c.Reachable(context.Background(), testRecipient)
			if got != tt.want {
				t.Errorf("Reachable = %v, want %v", got, tt.want)
			}
			var ce *channel.Error
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("err = %v, want nil", err)
			case tt.wantErr != "" && (!errors.As(err, &ce) || ce.Kind != tt.wantErr):
				t.Errorf("err = %#v, want kind %s", err, tt.wantErr)
			}
			r := f.last(t)
			if r.method != http.MethodGet || r.path != "/v1/phones/"+testPhone+"/capabilities" {
				t.Errorf("request = %s %s", r.method, r.path)
			}
			if r.query.Get("agentId") != testAgent {
				t.Errorf("agentId = %q", r.query.Get("agentId"))
			}
			if _, err := uuid.Parse(r.query.Get("requestId")); err != nil {
				t.Errorf("requestId %q is not a UUID", r.query.Get("requestId"))
			}
			if r.header.Get("Authorization") != "Bearer "+testToken {
				t.Errorf("Authorization = %q", r.header.Get("Authorization"))
			}
		})
	}
}

func TestReachableRequestIDsDiffer(t *testing.T) {
	f, c := newFake(t, 200, `{}`, nil)
	for range 2 {
		if _, err := c.Reachable(context.Background(), testRecipient); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := f.requests[0].query.Get("requestId"), f.requests[1].query.Get("requestId"); a == b {
		t.Errorf("two capability checks shared requestId %s", a)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     channel.Config
		wantErr string
		base    string
	}{
		{"defaults", channel.Config{AgentID: "a", Token: "t"}, "", DefaultBaseURL},
		{"override, trailing slash", channel.Config{BaseURL: "http://127.0.0.1:9/", AgentID: "a", Token: "t"}, "", "http://127.0.0.1:9"},
		{"no agent", channel.Config{Token: "t"}, "agent_id", ""},
		{"no token", channel.Config{AgentID: "a"}, "token", ""},
		{"bad base", channel.Config{BaseURL: "rbm.local", AgentID: "a", Token: "t"}, "base_url", ""},
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
			if c.base != tt.base || !c.External() {
				t.Errorf("base = %q, External = %v", c.base, c.External())
			}
		})
	}
}

// The client must satisfy the interfaces the engine uses.
var (
	_ channel.Sender = (*Client)(nil)
	_ channel.Prober = (*Client)(nil)
)
