package api_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/api"
	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/channel/registry"
	"github.com/parleyhq/parley/internal/engine"
)

// Credentials the channel tests configure.
const (
	waToken       = "EAAGtest-graph-token-0001"
	waAppSecret   = "app-secret-0123456789"
	waVerifyToken = "verify-token-abcdef"
	waPhoneID     = "104242" // the fixtures' metadata.phone_number_id
	rbmAgent      = "parley_test_agent"
	rbmToken      = "ya29.test-rbm-token-0001"
	rbmClient     = "client-token-9876543210"
)

// withChannels wires the channel registry into the engine and the API, as the server does.
func withChannels(t *testing.T, cfg *engine.Config, deps *api.Deps) {
	reg := registry.New(deps.Store, registry.Options{})
	cfg.Channels, deps.Channels = reg, reg
}

// eachChannel runs fn against a fresh env with channels on every database engine.
func eachChannel(t *testing.T, fn func(t *testing.T, e *env)) { each(t, fn, withChannels) }

func channelPath(nb auth.NewBot, ch string) string {
	return "/admin/v1/customers/" + itoa(nb.CustomerID) + "/bots/" + nb.BotKey + "/channels/" + ch
}

// useWhatsApp points bot nb's whatsapp channel at the fake Graph API.
func (e *env) useWhatsApp(nb auth.NewBot, graphURL string) {
	e.t.Helper()
	r := e.admin("PUT", channelPath(nb, "whatsapp"), map[string]any{"adapter": "whatsapp", "base_url": graphURL,
		"phone_number_id": waPhoneID, "token": waToken, "app_secret": waAppSecret, "verify_token": waVerifyToken})
	wantStatus(e.t, r, 200, api.CodeSuccess)
}

// useRCS points bot nb's rcs channel at the fake RBM API.
func (e *env) useRCS(nb auth.NewBot, rbmURL string) {
	e.t.Helper()
	r := e.admin("PUT", channelPath(nb, "rcs"), map[string]any{"adapter": "rcs", "base_url": rbmURL,
		"agent_id": rbmAgent, "token": rbmToken, "client_token": rbmClient})
	wantStatus(e.t, r, 200, api.CodeSuccess)
}

func signWhatsApp(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// postWhatsApp posts a webhook body to bot nb, signed with secret ("" sends no signature).
func (e *env) postWhatsApp(nb auth.NewBot, body []byte, secret string) response {
	e.t.Helper()
	var hdr []string
	if secret != "" {
		hdr = []string{"X-Hub-Signature-256", signWhatsApp(body, secret)}
	}
	return e.do("POST", "/webhooks/whatsapp/"+nb.BotKey, "", body, hdr...)
}

// rbmEvent wraps an RBM event in the Pub/Sub envelope and signs it with the client token.
func rbmEvent(event any, clientToken string) (body []byte, signature string) {
	data, _ := json.Marshal(event)
	mac := hmac.New(sha512.New, []byte(clientToken))
	mac.Write(data)
	body, _ = json.Marshal(map[string]any{"message": map[string]any{"data": base64.StdEncoding.EncodeToString(data),
		"messageId": "pubsub-1", "publishTime": time.Now().UTC().Format(time.RFC3339)}, "subscription": "projects/p/subscriptions/s"})
	return body, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// webhookResult is the summary a webhook answers with.
type webhookResult struct {
	Messages   int      `json:"messages"`
	Duplicates int      `json:"duplicates"`
	Statuses   int      `json:"statuses"`
	Unmatched  int      `json:"unmatched_statuses"`
	Ignored    int      `json:"ignored"`
	Started    []string `json:"started_run_ids"`
	Resumed    []string `json:"resumed_run_ids"`
}

// convMessage is one message of the conversations API.
type convMessage struct {
	MessageID  string          `json:"message_id"`
	Sender     string          `json:"sender"`
	Channel    string          `json:"channel"`
	Type       string          `json:"type"`
	Text       string          `json:"text"`
	Payload    json.RawMessage `json:"payload"`
	Status     string          `json:"status"`
	Error      string          `json:"error"`
	ProviderID string          `json:"provider_message_id"`
	RunID      string          `json:"run_id"`
}

// conversation reads a user's history; nil when the bot does not know the user.
func (e *env) conversation(nb auth.NewBot, channelUserID string) []convMessage {
	e.t.Helper()
	r := e.do("GET", botPath("v1.0", nb)+"/channel-user/"+channelUserID+"/conversations", nb.APIKey, nil)
	if r.HTTP == 400 && r.Status.Code == api.CodeInvalidBotOrCustomer {
		return nil
	}
	wantStatus(e.t, r, 200, api.CodeSuccess)
	var c struct {
		Conversations []convMessage `json:"conversations"`
	}
	r.obj(e.t, &c)
	return c.Conversations
}

// userAttrs reads a user's attributes through the store.
func (e *env) userAttrs(nb auth.NewBot, channelUserID string) map[string]string {
	e.t.Helper()
	u, err := e.st.UserByChannelID(context.Background(), mustBot(e.t, e, nb).ID, channelUserID)
	if err != nil {
		e.t.Fatalf("user %s: %v", channelUserID, err)
	}
	return u.Attrs
}

// waitRun polls a run until it settles (completed, failed or waiting).
func (e *env) waitRun(nb auth.NewBot, runID string) engine.RunView {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.do("GET", botPath("v2.0", nb)+"/runs/"+runID, nb.APIKey, nil)
		wantStatus(e.t, r, 200, api.CodeSuccess)
		v := runOf(e.t, r)
		if v.Status == "completed" || v.Status == "failed" || v.Status == "waiting" {
			return v
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("run %s did not settle: %+v", runID, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// graphCall is one request the fake Graph API accepted.
type graphCall struct {
	To   string
	Type string
	Body map[string]any
}

// fakeGraph is a strict fake of the Graph API's /{phone-number-id}/messages. It checks
// every request's method, path, headers and JSON shape (a mismatch fails the test), and
// answers with Meta's success shape, or with Meta's error envelope for recipients listed
// in refuse.
type fakeGraph struct {
	*httptest.Server
	t  *testing.T
	mu sync.Mutex
	// ids are handed out as message ids before generated ones.
	ids   []string
	calls []graphCall
	n     int
	// received counts every message request per recipient, refused ones included.
	received map[string]int
}

// graphRefusals maps recipients to the Graph API error they get: HTTP status and body.
var graphRefusals = map[string]struct {
	status int
	body   string
}{
	"919800131026": {400, `{"error":{"message":"(#131026) Message Undeliverable.","type":"OAuthException","code":131026,"error_data":{"messaging_product":"whatsapp","details":"Message Undeliverable."},"fbtrace_id":"AbCdEf1"}}`},
	"919800130429": {400, `{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429,"error_data":{"messaging_product":"whatsapp","details":"Cloud API message throughput has been reached."},"fbtrace_id":"AbCdEf2"}}`},
	"919800000500": {500, `{"error":{"message":"An unknown error has occurred.","type":"OAuthException","code":1,"fbtrace_id":"AbCdEf3"}}`},
	"919800000190": {401, `{"error":{"message":"Error validating access token: Session has expired.","type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":"AbCdEf4"}}`},
}

var digitsOnly = regexp.MustCompile(`^[0-9]{8,15}$`)

func newFakeGraph(t *testing.T) *fakeGraph {
	f := &fakeGraph{t: t}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeGraph) serve(w http.ResponseWriter, r *http.Request) {
	fail := func(format string, args ...any) {
		f.t.Errorf("fake Graph API: "+format, args...)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":{"message":"(#100) Invalid parameter","type":"OAuthException","code":100,"fbtrace_id":"x"}}`)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v21.0/"+waPhoneID+"/messages" {
		fail("%s %s, want POST /v21.0/%s/messages", r.Method, r.URL.Path, waPhoneID)
		return
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+waToken {
		fail("Authorization %q", got)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		fail("Content-Type %q", ct)
		return
	}
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		fail("body %s: %v", raw, err)
		return
	}
	to, _ := body["to"].(string)
	typ, _ := body["type"].(string)
	if body["messaging_product"] != "whatsapp" || body["recipient_type"] != "individual" || !digitsOnly.MatchString(to) {
		fail("envelope %s", raw)
		return
	}
	if err := checkGraphMessage(typ, body); err != "" {
		fail("%s message %s: %s", typ, raw, err)
		return
	}
	f.mu.Lock()
	if f.received == nil {
		f.received = map[string]int{}
	}
	f.received[to]++
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if refusal, ok := graphRefusals[to]; ok {
		w.WriteHeader(refusal.status)
		_, _ = io.WriteString(w, refusal.body)
		return
	}
	f.mu.Lock()
	f.calls = append(f.calls, graphCall{To: to, Type: typ, Body: body})
	var id string
	if len(f.ids) > 0 {
		id, f.ids = f.ids[0], f.ids[1:]
	} else {
		f.n++
		id = fmt.Sprintf("wamid.HBgMOTE5ODEyMzAwMDAxFQIAERgS%04d", f.n)
	}
	f.mu.Unlock()
	_, _ = fmt.Fprintf(w, `{"messaging_product":"whatsapp","contacts":[{"input":%q,"wa_id":%q}],"messages":[{"id":%q}]}`, to, to, id)
}

// checkGraphMessage checks a message object against the Cloud API's shapes.
func checkGraphMessage(typ string, body map[string]any) string {
	obj, _ := body[typ].(map[string]any)
	if obj == nil {
		return "no " + typ + " object"
	}
	switch typ {
	case "text":
		if s, _ := obj["body"].(string); s == "" {
			return "text.body is empty"
		}
	case "template":
		name, _ := obj["name"].(string)
		lang, _ := obj["language"].(map[string]any)
		if name == "" || lang == nil || lang["code"] == "" || lang["policy"] != "deterministic" {
			return "template needs a name and language{code, policy: deterministic}"
		}
		if _, ok := obj["namespace"]; ok {
			return "the Cloud API takes no namespace"
		}
		comps, _ := obj["components"].([]any)
		for _, c := range comps {
			cm, _ := c.(map[string]any)
			if cm["type"] == "button" {
				if _, ok := cm["index"].(string); !ok || cm["sub_type"] != "quick_reply" {
					return "a button component needs sub_type quick_reply and a string index"
				}
			}
		}
	case "interactive":
		if obj["type"] != "button" && obj["type"] != "list" {
			return "interactive.type must be button or list"
		}
	default:
		return "unexpected type"
	}
	return ""
}

// sent returns the accepted calls so far.
func (f *fakeGraph) sent() []graphCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]graphCall(nil), f.calls...)
}

// requests returns how many message requests for recipient to arrived, refused or not.
func (f *fakeGraph) requests(to string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.received[to]
}

// nextIDs makes the next accepted messages get these ids.
func (f *fakeGraph) nextIDs(ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = append(f.ids, ids...)
}

// rbmCall is one agent message the fake RBM accepted.
type rbmCall struct {
	Phone     string
	MessageID string
	Body      map[string]any
}

// fakeRBM is a strict fake of RBM: capability checks (404 NOT_FOUND for phones not in
// capable) and agent messages, checking paths, query parameters, headers and shapes.
type fakeRBM struct {
	*httptest.Server
	t       *testing.T
	capable map[string]bool
	mu      sync.Mutex
	calls   []rbmCall
	checks  int
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func newFakeRBM(t *testing.T, capable ...string) *fakeRBM {
	f := &fakeRBM{t: t, capable: map[string]bool{}}
	for _, p := range capable {
		f.capable[p] = true
	}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeRBM) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fail := func(format string, args ...any) {
		f.t.Errorf("fake RBM: "+format, args...)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":{"code":400,"message":"Request contains an invalid argument.","status":"INVALID_ARGUMENT"}}`)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+rbmToken {
		fail("Authorization %q", got)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/phones/")
	phone, method, _ := strings.Cut(rest, "/")
	q := r.URL.Query()
	if !ok || !strings.HasPrefix(phone, "+") || q.Get("agentId") != rbmAgent {
		fail("%s %s", r.Method, r.URL)
		return
	}
	switch {
	case r.Method == http.MethodGet && method == "capabilities":
		if !uuidPattern.MatchString(q.Get("requestId")) {
			fail("requestId %q is not a UUID", q.Get("requestId"))
			return
		}
		f.mu.Lock()
		f.checks++
		f.mu.Unlock()
		if !f.capable[phone] {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND"}}`)
			return
		}
		_, _ = io.WriteString(w, `{"features":["RICHCARD_STANDALONE","RICHCARD_CAROUSEL","ACTION_CREATE_CALENDAR_EVENT"]}`)
	case r.Method == http.MethodPost && method == "agentMessages":
		id := q.Get("messageId")
		if !uuidPattern.MatchString(id) {
			fail("messageId %q is not a UUID", id)
			return
		}
		var body map[string]any
		raw, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(raw, &body); err != nil {
			fail("body %s", raw)
			return
		}
		cm, _ := body["contentMessage"].(map[string]any)
		if cm == nil || (cm["text"] == nil && cm["richCard"] == nil && cm["contentInfo"] == nil) {
			fail("contentMessage %s", raw)
			return
		}
		f.mu.Lock()
		f.calls = append(f.calls, rbmCall{Phone: phone, MessageID: id, Body: body})
		f.mu.Unlock()
		_, _ = fmt.Fprintf(w, `{"name":"phones/%s/agentMessages/%s","sendTime":%q,"contentMessage":%s}`,
			phone, id, time.Now().UTC().Format(time.RFC3339Nano), mustJSON(cm))
	default:
		fail("%s %s", r.Method, r.URL.Path)
	}
}

func (f *fakeRBM) sent() []rbmCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]rbmCall(nil), f.calls...)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
