package api_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/api"
	"github.com/parleyhq/parley/internal/auth"
)

const whatsappFixtures = "../../../shared/fixtures/whatsapp"

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(whatsappFixtures, name))
	if err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return b
}

func webhookOf(t *testing.T, r response) webhookResult {
	t.Helper()
	wantStatus(t, r, 200, api.CodeSuccess)
	var res webhookResult
	r.obj(t, &res)
	return res
}

// sendTemplateAPI sends a minimal template through the template API.
func (e *env) sendTemplateAPI(nb auth.NewBot, phone string) response {
	e.t.Helper()
	return e.do("POST", "/whatsapp-api/v1.0/customer/"+itoa(nb.CustomerID)+"/bot/"+nb.BotKey+"/template", nb.APIKey,
		`{"phoneNumber": "`+phone+`", "payload": {"name": "order_update", "namespace": "980c3243-2d2a-4d2d-a572-b2a50552cb04",
		  "language": {"code": "en", "policy": "deterministic"}, "components": []}}`)
}

func TestWhatsAppWebhookHandshake(t *testing.T) {
	eachChannel(t, func(t *testing.T, e *env) {
		graph := newFakeGraph(t)
		e.useWhatsApp(e.a, graph.URL)
		verify := func(nb auth.NewBot, q string) response {
			return e.do("GET", "/webhooks/whatsapp/"+nb.BotKey+"?"+q, "", nil)
		}
		tests := []struct {
			name     string
			bot      auth.NewBot
			query    string
			wantHTTP int
		}{
			{"good", e.a, "hub.mode=subscribe&hub.verify_token=" + waVerifyToken + "&hub.challenge=1158201444", 200},
			{"wrong token", e.a, "hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1158201444", 403},
			{"no token", e.a, "hub.mode=subscribe&hub.challenge=1158201444", 403},
			{"wrong mode", e.a, "hub.mode=unsubscribe&hub.verify_token=" + waVerifyToken + "&hub.challenge=1", 403},
			{"no challenge", e.a, "hub.mode=subscribe&hub.verify_token=" + waVerifyToken, 403},
			{"bot on the sandbox", e.b, "hub.mode=subscribe&hub.verify_token=" + waVerifyToken + "&hub.challenge=1", 403},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := verify(tt.bot, tt.query)
				if r.HTTP != tt.wantHTTP {
					t.Fatalf("HTTP %d, want %d: %s", r.HTTP, tt.wantHTTP, r.Body)
				}
				if tt.wantHTTP == 200 {
					if string(r.Body) != "1158201444" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
						t.Fatalf("answer %q (%s), want the raw challenge as text/plain", r.Body, r.Header.Get("Content-Type"))
					}
				} else if bytes.Contains(r.Body, []byte(waVerifyToken)) {
					t.Fatalf("the refusal echoes the verify token: %s", r.Body)
				}
			})
		}
		wantStatus(t, e.do("GET", "/webhooks/whatsapp/0000000000000000?hub.mode=subscribe", "", nil), 404, api.CodeNotFound)
	})
}

func TestWhatsAppWebhookSignature(t *testing.T) {
	eachChannel(t, func(t *testing.T, e *env) {
		graph := newFakeGraph(t)
		e.useWhatsApp(e.a, graph.URL)
		body := readFixture(t, "text.json")
		tests := []struct {
			name     string
			bot      auth.NewBot
			body     []byte
			sig      string // header value; "" = none
			wantHTTP int
		}{
			{"missing signature", e.a, body, "", 401},
			{"signed with another secret", e.a, body, signWhatsApp(body, "not-the-secret"), 401},
			{"signature of other bytes", e.a, body, signWhatsApp(append([]byte(" "), body...), waAppSecret), 401},
			{"malformed signature", e.a, body, "sha256=zz", 401},
			{"sha1 signature", e.a, body, "sha1=" + strings.Repeat("0", 40), 401},
			{"bot without an app secret", e.b, body, signWhatsApp(body, waAppSecret), 401},
			{"signed garbage", e.a, []byte("not json"), signWhatsApp([]byte("not json"), waAppSecret), 400},
			{"signed other object", e.a, []byte(`{"object":"page","entry":[]}`), signWhatsApp([]byte(`{"object":"page","entry":[]}`), waAppSecret), 400},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var hdr []string
				if tt.sig != "" {
					hdr = []string{"X-Hub-Signature-256", tt.sig}
				}
				r := e.do("POST", "/webhooks/whatsapp/"+tt.bot.BotKey, "", tt.body, hdr...)
				if r.HTTP != tt.wantHTTP {
					t.Fatalf("HTTP %d, want %d: %s", r.HTTP, tt.wantHTTP, r.Body)
				}
			})
		}
		// Nothing was stored by any of them.
		if conv := e.conversation(e.a, "919812300001"); conv != nil {
			t.Fatalf("refused deliveries stored %+v", conv)
		}
		// The same body, signed, is accepted.
		if res := webhookOf(t, e.postWhatsApp(e.a, body, waAppSecret)); res.Messages != 1 {
			t.Fatalf("result %+v", res)
		}
		wantStatus(t, e.postWhatsApp(auth.NewBot{BotKey: "0000000000000000"}, body, waAppSecret), 404, api.CodeNotFound)
	})
}

// TestWhatsAppFixtures posts every fixture, signed, to a bot of its own (most fixtures
// share message ids), checks its effect as the fixtures' README describes, then posts it
// again and checks nothing is stored twice.
func TestWhatsAppFixtures(t *testing.T) {
	const asha = "919812300001"
	type check func(t *testing.T, e *env, nb auth.NewBot, graph *fakeGraph, res webhookResult)
	// one returns the single message of a user's conversation.
	one := func(t *testing.T, e *env, nb auth.NewBot, user string) convMessage {
		t.Helper()
		conv := e.conversation(nb, user)
		if len(conv) != 1 {
			t.Fatalf("conversation of %s = %+v, want one message", user, conv)
		}
		if conv[0].Sender != "user" || conv[0].Status != "received" || conv[0].Channel != "whatsapp" {
			t.Fatalf("message %+v, want a received user message", conv[0])
		}
		return conv[0]
	}
	// lastBot returns the newest bot message of a user's conversation.
	lastBot := func(t *testing.T, e *env, nb auth.NewBot) convMessage {
		t.Helper()
		conv := e.conversation(nb, asha)
		for i := len(conv) - 1; i >= 0; i-- {
			if conv[i].Sender == "bot" {
				return conv[i]
			}
		}
		t.Fatalf("no bot message in %+v", conv)
		return convMessage{}
	}
	startedFlow := func(attr, want string) check {
		return func(t *testing.T, e *env, nb auth.NewBot, graph *fakeGraph, res webhookResult) {
			if len(res.Started) != 1 {
				t.Fatalf("result %+v, want one started run", res)
			}
			if v := e.waitRun(nb, res.Started[0]); v.Status != "completed" {
				t.Fatalf("started run %+v", v)
			}
			if got := e.userAttrs(nb, asha)[attr]; got != want {
				t.Fatalf("attribute %s = %q, want %q", attr, got, want)
			}
			// The flow's reply went out: the user had just written, so text is allowed.
			if calls := graph.sent(); len(calls) != 1 || calls[0].Type != "text" || calls[0].To != asha {
				t.Fatalf("provider calls %+v, want the flow's text reply", calls)
			}
		}
	}
	tests := map[string]struct {
		// setup prepares the bot before the delivery (flows, earlier outbound messages).
		setup func(t *testing.T, e *env, nb auth.NewBot, graph *fakeGraph)
		check check
	}{
		"text.json": {check: func(t *testing.T, e *env, nb auth.NewBot, _ *fakeGraph, res webhookResult) {
			m := one(t, e, nb, asha)
			if m.Type != "text" || m.Text != "Where is my order A1?" || m.ProviderID != "wamid.HBgMOTE5ODEyMzAwMDAxFQIAEhggQTE" {
				t.Fatalf("message %+v", m)
			}
			a := e.userAttrs(nb, asha)
			if a["user.user_name"] != "Asha Rao" || a["user.phone_no"] != "+"+asha || a["user.channel"] != "whatsapp" {
				t.Fatalf("user attributes %v", a)
			}
		}},
		"button.json": {
			setup: func(t *testing.T, e *env, nb auth.NewBot, _ *fakeGraph) {
				e.importFlow(nb, `{"key": "EBAE1F6090D54CC3B7689F02C04A004F", "start": "m", "nodes": [
					{"id": "m", "type": "message", "text": "Noted: {{personx_response}}", "next": "end"}, {"id": "end", "type": "end"}]}`)
			},
			check: startedFlow("personx_response", "declined_invoice_no_12345"),
		},
		"button_reply.json": {
			setup: func(t *testing.T, e *env, nb auth.NewBot, _ *fakeGraph) {
				e.importFlow(nb, `{"key": "order_update", "start": "m", "nodes": [
					{"id": "m", "type": "message", "text": "You said {{choice}}", "next": "end"}, {"id": "end", "type": "end"}]}`)
			},
			check: startedFlow("choice", "yes"),
		},
		"list_reply.json": {check: func(t *testing.T, e *env, nb auth.NewBot, _ *fakeGraph, res webhookResult) {
			m := one(t, e, nb, asha)
			if m.Type != "interactive" || m.Text != "Medium" || !bytes.Contains(m.Payload, []byte(`"size_m"`)) || len(res.Started) != 0 {
				t.Fatalf("message %+v (result %+v)", m, res)
			}
		}},
		"image.json": {check: func(t *testing.T, e *env, nb auth.NewBot, _ *fakeGraph, _ webhookResult) {
			m := one(t, e, nb, asha)
			if m.Type != "image" || m.Text != "Damaged box" || !bytes.Contains(m.Payload, []byte(`"1480932465566"`)) {
				t.Fatalf("message %+v", m)
			}
		}},
		"flow_reply.json": {check: func(t *testing.T, e *env, nb auth.NewBot, _ *fakeGraph, _ webhookResult) {
			m := one(t, e, nb, asha)
			if m.Type != "interactive" || m.Text != "Sent" || !bytes.Contains(m.Payload, []byte("flow_token")) {
				t.Fatalf("message %+v", m)
			}
		}},
		"status_delivered.json": {
			setup: func(t *testing.T, e *env, nb auth.NewBot, graph *fakeGraph) {
				graph.nextIDs("wamid.OUTBOUND0001")
				wantStatus(t, e.sendTemplateAPI(nb, asha), 200, api.CodeSuccess)
			},
			check: func(t *testing.T, e *env, nb auth.NewBot, _ *fakeGraph, res webhookResult) {
				if m := lastBot(t, e, nb); m.Status != "delivered" || m.ProviderID != "wamid.OUTBOUND0001" {
					t.Fatalf("message %+v, want delivered", m)
				}
				if res.Statuses != 1 || res.Unmatched != 0 {
					t.Fatalf("result %+v", res)
				}
			},
		},
		"status_read.json": {
			setup: func(t *testing.T, e *env, nb auth.NewBot, graph *fakeGraph) {
				graph.nextIDs("wamid.OUTBOUND0001")
				wantStatus(t, e.sendTemplateAPI(nb, asha), 200, api.CodeSuccess)
			},
			check: func(t *testing.T, e *env, nb auth.NewBot, _ *fakeGraph, _ webhookResult) {
				if m := lastBot(t, e, nb); m.Status != "read" {
					t.Fatalf("message %+v, want read", m)
				}
				// A late "delivered" (statuses arrive in any order) does not undo "read".
				webhookOf(t, e.postWhatsApp(nb, readFixture(t, "status_delivered.json"), waAppSecret))
				if m := lastBot(t, e, nb); m.Status != "read" {
					t.Fatalf("after a late delivered: %+v, want read", m)
				}
			},
		},
		"status_failed.json": {
			setup: func(t *testing.T, e *env, nb auth.NewBot, graph *fakeGraph) {
				graph.nextIDs("wamid.OUTBOUND0002")
				wantStatus(t, e.sendTemplateAPI(nb, asha), 200, api.CodeSuccess)
			},
			check: func(t *testing.T, e *env, nb auth.NewBot, _ *fakeGraph, _ webhookResult) {
				m := lastBot(t, e, nb)
				if m.Status != "failed" || !strings.Contains(m.Error, "Re-engagement message") || !strings.Contains(m.Error, "131047") {
					t.Fatalf("message %+v, want failed with the provider's reason and code", m)
				}
			},
		},
		"multiple.json": {check: func(t *testing.T, e *env, nb auth.NewBot, _ *fakeGraph, res webhookResult) {
			if m := one(t, e, nb, asha); m.Text != "first" {
				t.Fatalf("first user's message %+v", m)
			}
			if m := one(t, e, nb, "918888800002"); m.Text != "second" {
				t.Fatalf("second user's message %+v", m)
			}
			if got := e.userAttrs(nb, "918888800002")["user.user_name"]; got != "Ravi K" {
				t.Fatalf("second user's name %q", got)
			}
			if res.Messages != 2 {
				t.Fatalf("result %+v", res)
			}
		}},
		"username_only.json": {check: func(t *testing.T, e *env, nb auth.NewBot, _ *fakeGraph, _ webhookResult) {
			m := one(t, e, nb, "IN.5021337")
			if m.Text != "hi, no number shown" {
				t.Fatalf("message %+v", m)
			}
			a := e.userAttrs(nb, "IN.5021337")
			if a["user.user_name"] != "Kim" || a["user.phone_no"] != "" {
				t.Fatalf("user attributes %v: want the profile name and no phone", a)
			}
		}},
		"unsupported.json": {check: func(t *testing.T, e *env, nb auth.NewBot, _ *fakeGraph, res webhookResult) {
			m := one(t, e, nb, asha)
			if m.Type != "unsupported" || !strings.Contains(m.Error, "Message type unknown") || !strings.Contains(m.Error, "131051") {
				t.Fatalf("message %+v, want it stored with its reason", m)
			}
			if len(res.Started)+len(res.Resumed) != 0 {
				t.Fatalf("an unsupported message acted: %+v", res)
			}
		}},
	}

	files, _ := filepath.Glob(filepath.Join(whatsappFixtures, "*.json"))
	if len(files) == 0 {
		t.Skip("no WhatsApp fixtures at " + whatsappFixtures)
	}
	for _, f := range files {
		if _, ok := tests[filepath.Base(f)]; !ok {
			t.Errorf("fixture %s has no expectation in this test", filepath.Base(f))
		}
	}

	eachChannel(t, func(t *testing.T, e *env) {
		for name, tt := range tests {
			t.Run(name, func(t *testing.T) {
				nb, err := e.auth.CreateBot(context.Background(), "fixtures", name)
				if err != nil {
					t.Fatal(err)
				}
				graph := newFakeGraph(t)
				e.useWhatsApp(nb, graph.URL)
				if tt.setup != nil {
					tt.setup(t, e, nb, graph)
				}
				body := readFixture(t, name)
				res := webhookOf(t, e.postWhatsApp(nb, body, waAppSecret))
				tt.check(t, e, nb, graph, res)

				// Meta redelivers: nothing new is stored or started.
				before := map[string]int{}
				for _, u := range []string{asha, "918888800002", "IN.5021337"} {
					before[u] = len(e.conversation(nb, u))
				}
				again := webhookOf(t, e.postWhatsApp(nb, body, waAppSecret))
				if again.Duplicates != again.Messages || len(again.Started) != 0 || len(again.Resumed) != 0 {
					t.Fatalf("redelivery result %+v, want only duplicates", again)
				}
				for u, n := range before {
					if got := len(e.conversation(nb, u)); got != n {
						t.Fatalf("redelivery changed %s's conversation from %d to %d messages", u, n, got)
					}
				}
			})
		}
	})
}

// TestWhatsAppWebhookRouting: Meta posts all numbers of an app to one callback URL, so
// an event for another number goes to the bot serving it, if that bot's app secret
// verifies the delivery too.
func TestWhatsAppWebhookRouting(t *testing.T) {
	eachChannel(t, func(t *testing.T, e *env) {
		graph := newFakeGraph(t)
		e.useWhatsApp(e.a, graph.URL) // serves 104242
		put := func(nb auth.NewBot, phoneID, secret string) {
			wantStatus(t, e.admin("PUT", channelPath(nb, "whatsapp"), map[string]any{"adapter": "whatsapp",
				"phone_number_id": phoneID, "token": waToken, "app_secret": secret}), 200, api.CodeSuccess)
		}
		put(e.b, "200200", waAppSecret)      // same Meta app as a
		put(e.c, "300300", "another-secret") // another app
		text := readFixture(t, "text.json")

		// Posted to b's URL, for a's number: stored for a.
		res := webhookOf(t, e.postWhatsApp(e.b, text, waAppSecret))
		if res.Messages != 1 || len(e.conversation(e.a, "919812300001")) != 1 || e.conversation(e.b, "919812300001") != nil {
			t.Fatalf("result %+v: want the message stored for bot a only", res)
		}
		// For c's number, but not signed with c's secret: skipped, stored nowhere.
		forC := bytes.ReplaceAll(bytes.ReplaceAll(text, []byte(`"104242"`), []byte(`"300300"`)), []byte("QTE"), []byte("QTF"))
		res = webhookOf(t, e.postWhatsApp(e.b, forC, waAppSecret))
		if res.Messages != 0 || res.Ignored != 1 || e.conversation(e.c, "919812300001") != nil {
			t.Fatalf("result %+v: want the event skipped", res)
		}
		// For a number no bot serves: skipped.
		res = webhookOf(t, e.postWhatsApp(e.a, bytes.ReplaceAll(forC, []byte(`"300300"`), []byte(`"999999"`)), waAppSecret))
		if res.Ignored != 1 {
			t.Fatalf("result %+v: want the event skipped", res)
		}
	})
}

func TestTemplateAPI(t *testing.T) {
	eachChannel(t, func(t *testing.T, e *env) {
		graph := newFakeGraph(t)
		e.useWhatsApp(e.a, graph.URL)
		path := "/whatsapp-api/v1.0/customer/" + itoa(e.a.CustomerID) + "/bot/" + e.a.BotKey + "/template"
		// The seed's example, with both index forms.
		payload := `{"components": [
			{"type": "header", "parameters": [{"type": "document", "document": {"filename": "form.pdf", "link": "https://example.com/form.pdf"}}]},
			{"type": "body", "parameters": [{"type": "text", "text": "john"}, {"type": "text", "text": "john"}]},
			{"index": 0, "parameters": [{"payload": "flow_7bbb608c3b4b4e848f36cd2ccd7cfa35||data_personx_response=declined_invoice_no_12345", "type": "payload"}], "sub_type": "quick_reply", "type": "button"},
			{"index": "1", "parameters": [{"payload": "flow_e30d44bcca4c49d49976d3ac0416c405||data_personx_response=approved_invoice_no_12345", "type": "payload"}], "sub_type": "quick_reply", "type": "button"}],
			"namespace": "980c3243-2d2a-4d2d-a572-b2a50552cb04", "name": "renuka_sugars_paytest",
			"language": {"policy": "deterministic", "code": "en"}}`

		ok := []struct {
			name, body, digits string
		}{
			{"phoneNumber with +", `{"phoneNumber": "+919019486731", "payload": ` + payload + `}`, "919019486731"},
			{"phonenumber without +", `{"phonenumber": "919019486732", "payload": ` + payload + `}`, "919019486732"},
			{"number as a JSON number", `{"phoneNumber": 919019486733, "payload": ` + payload + `}`, "919019486733"},
		}
		for i, tt := range ok {
			r := e.do("POST", path, e.a.APIKey, tt.body)
			wantStatus(t, r, 200, api.CodeSuccess)
			var out struct {
				MessageID       string `json:"message_id"`
				StoredMessageID string `json:"stored_message_id"`
				Status          string `json:"status"`
			}
			r.obj(t, &out)
			calls := graph.sent()
			if len(calls) != i+1 {
				t.Fatalf("%s: %d provider calls", tt.name, len(calls))
			}
			c := calls[i]
			tmpl := c.Body["template"].(map[string]any)
			if c.To != tt.digits || c.Type != "template" || tmpl["name"] != "renuka_sugars_paytest" || len(tmpl["components"].([]any)) != 4 {
				t.Fatalf("%s: provider got %+v", tt.name, c.Body)
			}
			if !strings.HasPrefix(out.MessageID, "wamid.") || out.Status != "sent" || out.StoredMessageID == "" {
				t.Fatalf("%s: response %s", tt.name, r.Obj)
			}
			// The conversation holds it as a bot template message, and the user exists.
			conv := e.conversation(e.a, tt.digits)
			if len(conv) != 1 || conv[0].Sender != "bot" || conv[0].Type != "template" || conv[0].ProviderID != out.MessageID ||
				conv[0].MessageID != out.StoredMessageID || conv[0].Status != "sent" || conv[0].Text != "renuka_sugars_paytest" {
				t.Fatalf("%s: conversation %+v", tt.name, conv)
			}
			if a := e.userAttrs(e.a, tt.digits); a["user.phone_no"] != "+"+tt.digits || a["user.channel"] != "whatsapp" {
				t.Fatalf("%s: user %v", tt.name, a)
			}
		}

		tmplBody := func(phone string) string { return `{"phoneNumber": "` + phone + `", "payload": ` + payload + `}` }
		bad := []struct {
			name     string
			body     string
			wantHTTP int
			wantCode int
			detail   string
		}{
			{"undeliverable", tmplBody("+919800131026"), 400, api.CodeMessageNotSent, "131026"},
			{"bad token", tmplBody("919800000190"), 400, api.CodeMessageNotSent, "190"},
			{"rate limited", tmplBody("919800130429"), 429, api.CodeRateLimited, "130429"},
			{"provider outage", tmplBody("919800000500"), 503, api.CodeUnavailable, "unknown error"},
			{"no phone", `{"payload": ` + payload + `}`, 400, api.CodeInvalidInput, "phoneNumber is required"},
			{"bad phone", tmplBody("12345"), 400, api.CodeInvalidInput, "phoneNumber"},
			{"phone as an object", `{"phoneNumber": {"n": 1}, "payload": ` + payload + `}`, 400, api.CodeInvalidInput, "phoneNumber"},
			{"no payload", `{"phoneNumber": "919019486731"}`, 400, api.CodeInvalidInput, "payload is required"},
			{"no name", `{"phoneNumber": "919019486731", "payload": {"language": {"code": "en"}}}`, 400, api.CodeInvalidInput, "payload.name"},
			{"no language", `{"phoneNumber": "919019486731", "payload": {"name": "x"}}`, 400, api.CodeInvalidInput, "language.code"},
			{"components not objects", `{"phoneNumber": "919019486731", "payload": {"name": "x", "language": {"code": "en"}, "components": [1]}}`, 400, api.CodeInvalidInput, "components"},
			{"not JSON", `phone=1`, 400, api.CodeInvalidInput, "JSON"},
		}
		for _, tt := range bad {
			t.Run(tt.name, func(t *testing.T) {
				r := e.do("POST", path, e.a.APIKey, tt.body)
				wantStatus(t, r, tt.wantHTTP, tt.wantCode)
				if !strings.Contains(r.Status.Details, tt.detail) {
					t.Fatalf("details %q do not mention %q", r.Status.Details, tt.detail)
				}
				if bytes.Contains(r.Body, []byte(waToken)) {
					t.Fatal("the error echoes the provider token")
				}
			})
		}
		// A refused template stays in the conversation as failed, with the provider's
		// reason: it was stored as pending before the call. One refused for a passing
		// reason (rate limit, outage) is not kept, so that sending it again is a new try.
		if conv := e.conversation(e.a, "919800131026"); len(conv) != 1 || conv[0].Status != "failed" || !strings.Contains(conv[0].Error, "131026") {
			t.Fatalf("refused template in the conversation: %+v", conv)
		}
		for _, d := range []string{"919800130429", "919800000500"} {
			if conv := e.conversation(e.a, d); len(conv) != 0 {
				t.Fatalf("a template refused for a passing reason was kept: %+v", conv)
			}
		}

		// A bot with no WhatsApp settings sends through the sandbox.
		r := e.do("POST", "/whatsapp-api/v1.0/customer/"+itoa(e.b.CustomerID)+"/bot/"+e.b.BotKey+"/template", e.b.APIKey, tmplBody("919019486731"))
		wantStatus(t, r, 200, api.CodeSuccess)
		if !strings.Contains(string(r.Obj), `"message_id":"sandbox.`) {
			t.Fatalf("sandbox template = %s", r.Obj)
		}
		// The platform API's authentication applies.
		wantStatus(t, e.do("POST", path, "", tmplBody("919019486731")), 401, api.CodeUnauthorized)
		wantStatus(t, e.do("POST", path, e.b.APIKey, tmplBody("919019486731")), 403, api.CodeForbidden)
	})
}

// TestEndToEndTemplateButton is the end-to-end case: an API trigger runs a flow
// that sends a WhatsApp template with two quick-reply buttons; the user taps one; the
// signed webhook starts the flow the button names, with the button's attributes; the
// conversations API shows the whole exchange in order.
func TestEndToEndTemplateButton(t *testing.T) {
	eachChannel(t, func(t *testing.T, e *env) {
		graph := newFakeGraph(t)
		e.useWhatsApp(e.a, graph.URL)
		const declined, approved = "7BBB608C3B4B4E848F36CD2CCD7CFA35", "E30D44BCCA4C49D49976D3AC0416C405"
		reply := func(key, word string) string {
			return `{"key": "` + key + `", "start": "thanks", "nodes": [
				{"id": "thanks", "type": "message", "text": "Invoice ` + word + `: {{personx_response}}", "next": "end"},
				{"id": "end", "type": "end"}]}`
		}
		e.importFlow(e.a, reply(declined, "declined"))
		e.importFlow(e.a, reply(approved, "approved"))
		e.importFlow(e.a, `{"key": "invoice_notice", "start": "ask", "nodes": [
			{"id": "ask", "type": "message", "template": {"name": "invoice_approval", "namespace": "980c3243-2d2a-4d2d-a572-b2a50552cb04",
			 "language": {"code": "en", "policy": "deterministic"}, "components": [
			  {"type": "body", "parameters": [{"type": "text", "text": "{{invoice_no}}"}]},
			  {"type": "button", "sub_type": "quick_reply", "index": 0, "parameters": [{"type": "payload",
			   "payload": "flow_`+strings.ToLower(declined)+`||data_personx_response=declined_invoice_no_{{invoice_no}}"}]},
			  {"type": "button", "sub_type": "quick_reply", "index": 1, "parameters": [{"type": "payload",
			   "payload": "flow_`+strings.ToLower(approved)+`||data_personx_response=approved_invoice_no_{{invoice_no}}"}]}]},
			 "next": "end"},
			{"id": "end", "type": "end"}]}`)

		// 1. The API trigger runs the flow; the template reaches the Graph API.
		graph.nextIDs("wamid.TEMPLATEOUT1")
		r := e.do("POST", botPath("v2.0", e.a)+"/flow/invoice_notice?wait=true", e.a.APIKey,
			`{"user.channel": "whatsapp", "user.phone_no": "+919812300001", "invoice_no": "12345"}`)
		wantStatus(t, r, 200, api.CodeSuccess)
		if v := runOf(t, r); v.Status != "completed" {
			t.Fatalf("trigger run %+v", v)
		}
		calls := graph.sent()
		if len(calls) != 1 || calls[0].Type != "template" || calls[0].To != "919812300001" {
			t.Fatalf("provider calls %+v", calls)
		}
		comps := calls[0].Body["template"].(map[string]any)["components"].([]any)
		button := comps[1].(map[string]any)["parameters"].([]any)[0].(map[string]any)["payload"]
		wantPayload := "flow_" + strings.ToLower(declined) + "||data_personx_response=declined_invoice_no_12345"
		if button != wantPayload || comps[0].(map[string]any)["parameters"].([]any)[0].(map[string]any)["text"] != "12345" {
			t.Fatalf("template components %v", comps)
		}

		// 2. Meta reports it delivered.
		delivered := bytes.ReplaceAll(readFixture(t, "status_delivered.json"), []byte("wamid.OUTBOUND0001"), []byte("wamid.TEMPLATEOUT1"))
		if res := webhookOf(t, e.postWhatsApp(e.a, delivered, waAppSecret)); res.Statuses != 1 || res.Unmatched != 0 {
			t.Fatalf("status result %+v", res)
		}

		// 3. The user taps "Decline": a signed webhook with the button's payload.
		tap := fmt.Sprintf(`{"object": "whatsapp_business_account", "entry": [{"id": "700100200300400", "changes": [{"field": "messages",
			"value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550104242", "phone_number_id": %q},
			 "contacts": [{"profile": {"name": "Asha Rao"}, "wa_id": "919812300001"}],
			 "messages": [{"from": "919812300001", "id": "wamid.TAP1", "timestamp": "%d", "type": "button",
			  "button": {"payload": %q, "text": "Decline"}, "context": {"from": "15550104242", "id": "wamid.TEMPLATEOUT1"}}]}}]}]}`,
			waPhoneID, time.Now().Unix(), button)
		res := webhookOf(t, e.postWhatsApp(e.a, []byte(tap), waAppSecret))
		if len(res.Started) != 1 {
			t.Fatalf("tap result %+v, want one started run", res)
		}

		// 4. The second flow ran with the payload's attributes.
		v := e.waitRun(e.a, res.Started[0])
		if v.Status != "completed" || v.FlowKey != declined {
			t.Fatalf("button run %+v", v)
		}
		if got := e.userAttrs(e.a, "919812300001")["personx_response"]; got != "declined_invoice_no_12345" {
			t.Fatalf("personx_response = %q", got)
		}
		calls = graph.sent()
		if len(calls) != 2 || calls[1].Type != "text" || calls[1].Body["text"].(map[string]any)["body"] != "Invoice declined: declined_invoice_no_12345" {
			t.Fatalf("provider calls %+v", calls)
		}

		// 5. The conversations API shows the whole exchange, in order.
		conv := e.conversation(e.a, "919812300001")
		want := []struct{ sender, typ, text, status string }{
			{"bot", "template", "invoice_approval", "delivered"},
			{"user", "button", "Decline", "received"},
			{"bot", "text", "Invoice declined: declined_invoice_no_12345", "sent"},
		}
		if len(conv) != len(want) {
			t.Fatalf("conversation %+v", conv)
		}
		for i, w := range want {
			c := conv[i]
			if c.Sender != w.sender || c.Type != w.typ || c.Text != w.text || c.Status != w.status {
				t.Fatalf("message %d = %+v, want %+v", i, c, w)
			}
		}
		if conv[0].ProviderID != "wamid.TEMPLATEOUT1" || conv[1].ProviderID != "wamid.TAP1" {
			t.Fatalf("provider ids %q, %q", conv[0].ProviderID, conv[1].ProviderID)
		}
	})
}

// TestWhatsAppWindowInRuns: a text to a user who never wrote fails the run with the
// window's reason and reaches no provider; after the user writes, the same flow sends.
func TestWhatsAppWindowInRuns(t *testing.T) {
	eachChannel(t, func(t *testing.T, e *env) {
		graph := newFakeGraph(t)
		e.useWhatsApp(e.a, graph.URL)
		e.importFlow(e.a, orderFlow)
		trig := botPath("v2.0", e.a) + "/flow/order_update?wait=true"
		body := `{"user.phone_no": "919812300001", "order_id": "A1"}`

		v := runOf(t, e.do("POST", trig, e.a.APIKey, body))
		if v.Status != "failed" || !strings.Contains(v.Error, "24-hour") || !strings.Contains(v.Error, "template") {
			t.Fatalf("run %+v, want it failed for the 24-hour window", v)
		}
		if got := runOf(t, e.do("GET", botPath("v2.0", e.a)+"/runs/"+v.RunID, e.a.APIKey, nil)); got.Error != v.Error {
			t.Fatalf("run read back %+v", got)
		}
		if calls := graph.sent(); len(calls) != 0 {
			t.Fatalf("the provider was called: %+v", calls)
		}
		// The attempt is in the history as a failed message, with the reason.
		if conv := e.conversation(e.a, "919812300001"); len(conv) != 1 || conv[0].Status != "failed" || !strings.Contains(conv[0].Error, "24-hour") {
			t.Fatalf("conversation %+v", conv)
		}

		webhookOf(t, e.postWhatsApp(e.a, readFixture(t, "text.json"), waAppSecret))
		v = runOf(t, e.do("POST", trig, e.a.APIKey, body))
		if v.Status != "completed" {
			t.Fatalf("run after the user wrote: %+v", v)
		}
		if calls := graph.sent(); len(calls) != 1 || calls[0].Body["text"].(map[string]any)["body"] != "Order A1 is on its way" {
			t.Fatalf("provider calls %+v", calls)
		}
	})
}

func TestRCSChannel(t *testing.T) {
	eachChannel(t, func(t *testing.T, e *env) {
		rbm := newFakeRBM(t, "+919812300001")
		e.useRCS(e.a, rbm.URL)
		e.importFlow(e.a, `{"key": "rcs_hello", "start": "m", "nodes": [
			{"id": "m", "type": "message", "text": "Track order {{order_id}}?", "buttons": [{"id": "track_yes", "title": "Yes"}, {"title": "No"}], "next": "end"},
			{"id": "end", "type": "end"}]}`)
		trig := botPath("v2.0", e.a) + "/flow/rcs_hello?wait=true"

		// A user who is not on RCS: the run fails, saying so, in the trigger's answer and
		// when read back.
		v := runOf(t, e.do("POST", trig, e.a.APIKey, `{"user.channel": "rcs", "user.phone_no": "919812300002", "order_id": "7"}`))
		if v.Status != "failed" || !strings.Contains(v.Error, "not reachable on rcs") {
			t.Fatalf("run %+v, want failed as not RCS-capable", v)
		}
		got := runOf(t, e.do("GET", botPath("v2.0", e.a)+"/runs/"+v.RunID, e.a.APIKey, nil))
		if got.Status != "failed" || got.Error != v.Error {
			t.Fatalf("run read back %+v", got)
		}

		// A capable user gets the message with its suggestions.
		v = runOf(t, e.do("POST", trig, e.a.APIKey, `{"user.channel": "RCS", "user.phone_no": "+919812300001", "order_id": "7"}`))
		if v.Status != "completed" {
			t.Fatalf("run %+v", v)
		}
		calls := rbm.sent()
		if len(calls) != 1 || calls[0].Phone != "+919812300001" {
			t.Fatalf("agent messages %+v", calls)
		}
		cm := calls[0].Body["contentMessage"].(map[string]any)
		sugs, _ := cm["suggestions"].([]any)
		if cm["text"] != "Track order 7?" || len(sugs) != 2 ||
			sugs[0].(map[string]any)["reply"].(map[string]any)["postbackData"] != "track_yes" {
			t.Fatalf("content %v", cm)
		}
		sentID := calls[0].MessageID

		hook := "/webhooks/rcs/" + e.a.BotKey
		post := func(body []byte, sig string) response {
			var hdr []string
			if sig != "" {
				hdr = []string{"X-Goog-Signature", sig}
			}
			return e.do("POST", hook, "", body, hdr...)
		}

		// The setup handshake echoes the secret; a wrong client token is refused.
		r := post([]byte(`{"clientToken": "`+rbmClient+`", "secret": "s3cr3t-echo"}`), "")
		if r.HTTP != 200 || string(r.Body) != "s3cr3t-echo" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("handshake: HTTP %d %q", r.HTTP, r.Body)
		}
		wantStatus(t, post([]byte(`{"clientToken": "wrong", "secret": "s"}`), ""), 401, api.CodeUnauthorized)

		// Delivery receipt for the message sent above.
		body, sig := rbmEvent(map[string]any{"senderPhoneNumber": "+919812300001", "eventType": "DELIVERED",
			"eventId": "ev-1", "messageId": sentID, "sendTime": time.Now().UTC().Format(time.RFC3339Nano), "agentId": rbmAgent}, rbmClient)
		if res := webhookOf(t, post(body, sig)); res.Statuses != 1 || res.Unmatched != 0 {
			t.Fatalf("receipt result %+v", res)
		}
		// The user taps a suggestion, twice delivered.
		body, sig = rbmEvent(map[string]any{"senderPhoneNumber": "+919812300001", "messageId": "rbm-msg-1",
			"sendTime": time.Now().UTC().Format(time.RFC3339Nano), "agentId": rbmAgent,
			"suggestionResponse": map[string]any{"postbackData": "track_yes", "text": "Yes", "type": "REPLY"}}, rbmClient)
		webhookOf(t, post(body, sig))
		if res := webhookOf(t, post(body, sig)); res.Duplicates != 1 {
			t.Fatalf("redelivery result %+v", res)
		}
		conv := e.conversation(e.a, "919812300001")
		if len(conv) != 2 || conv[0].Status != "delivered" || conv[0].Channel != "rcs" ||
			conv[1].Sender != "user" || conv[1].Text != "Yes" || conv[1].ProviderID != "rbm-msg-1" {
			t.Fatalf("conversation %+v", conv)
		}

		// A bad signature is refused and stores nothing; so is a missing one.
		body, _ = rbmEvent(map[string]any{"senderPhoneNumber": "+919812300003", "messageId": "rbm-msg-2", "text": "hi"}, rbmClient)
		_, wrong := rbmEvent(map[string]any{"senderPhoneNumber": "+919812300003", "messageId": "rbm-msg-2", "text": "hi"}, "other-token")
		wantStatus(t, post(body, wrong), 401, api.CodeUnauthorized)
		wantStatus(t, post(body, ""), 401, api.CodeUnauthorized)
		if conv := e.conversation(e.a, "919812300003"); conv != nil {
			t.Fatalf("a refused event was stored: %+v", conv)
		}
		// Signed events Parley does not act on are still a 200; garbage is a 400.
		body, sig = rbmEvent(map[string]any{"senderPhoneNumber": "+919812300001", "eventType": "IS_TYPING", "eventId": "ev-2"}, rbmClient)
		if res := webhookOf(t, post(body, sig)); res.Ignored != 1 {
			t.Fatalf("typing result %+v", res)
		}
		wantStatus(t, post([]byte(`{"message": {"data": "***"}}`), "x"), 400, api.CodeInvalidInput)
		wantStatus(t, post([]byte(`[]`), "x"), 400, api.CodeInvalidInput)
		// A bot whose RCS channel is the sandbox cannot verify anything.
		wantStatus(t, e.do("POST", "/webhooks/rcs/"+e.b.BotKey, "", body, "X-Goog-Signature", sig), 401, api.CodeUnauthorized)
	})
}

func TestChannelSettingsAdmin(t *testing.T) {
	eachChannel(t, func(t *testing.T, e *env) {
		wa := channelPath(e.a, "whatsapp")
		type view struct {
			Channel       string         `json:"channel"`
			Config        map[string]any `json:"config"`
			RateEffective float64        `json:"rate_per_second_effective"`
			WebhookPath   string         `json:"webhook_path"`
			Warnings      []string       `json:"warnings"`
		}
		read := func(r response) view {
			t.Helper()
			wantStatus(t, r, 200, api.CodeSuccess)
			var v view
			r.obj(t, &v)
			return v
		}
		if v := read(e.admin("GET", wa, nil)); v.Config["adapter"] != "sandbox" || v.WebhookPath != "" {
			t.Fatalf("default = %+v", v)
		}
		secrets := map[string]any{"token": waToken, "app_secret": waAppSecret, "verify_token": waVerifyToken}
		full := map[string]any{"adapter": "WhatsApp", "base_url": "https://graph.example.com/", "phone_number_id": waPhoneID,
			"api_version": "v21.0", "rate_per_second": 250}
		for k, v := range secrets {
			full[k] = v
		}
		r := e.admin("PUT", wa, full)
		v := read(r)
		if v.Config["adapter"] != "whatsapp" || v.Config["base_url"] != "https://graph.example.com" || v.RateEffective != 250 ||
			v.WebhookPath != "/webhooks/whatsapp/"+e.a.BotKey || v.Config["token"] != "****0001" || len(v.Warnings) != 0 {
			t.Fatalf("after PUT = %+v", v)
		}
		for _, s := range secrets {
			if bytes.Contains(r.Body, []byte(s.(string))) || bytes.Contains(e.admin("GET", wa, nil).Body, []byte(s.(string))) {
				t.Fatalf("a secret is echoed in full: %s", r.Body)
			}
		}

		// Sending back what GET shows (redacted), or leaving secrets out, keeps them.
		shown := read(e.admin("GET", wa, nil)).Config
		shown["rate_per_second"] = "unlimited"
		if v := read(e.admin("PUT", wa, shown)); v.RateEffective != 0 || len(v.Warnings) != 1 {
			t.Fatalf("after PUT of the redacted view = %+v", v)
		}
		read(e.admin("PUT", wa, map[string]any{"adapter": "whatsapp", "phone_number_id": waPhoneID}))
		ok := e.do("GET", "/webhooks/whatsapp/"+e.a.BotKey+"?hub.mode=subscribe&hub.verify_token="+waVerifyToken+"&hub.challenge=42", "", nil)
		if ok.HTTP != 200 || string(ok.Body) != "42" {
			t.Fatalf("the stored verify token was lost: HTTP %d %s", ok.HTTP, ok.Body)
		}

		tests := []struct {
			name     string
			path     string
			body     any
			wantHTTP int
			wantCode int
			detail   string
		}{
			{"rcs adapter on whatsapp", wa, map[string]any{"adapter": "rcs", "agent_id": "a", "token": "t"}, 400, api.CodeInvalidInput, "cannot serve"},
			{"no adapter", wa, map[string]any{"token": "t"}, 400, api.CodeInvalidInput, "adapter is required"},
			{"missing token", channelPath(e.b, "whatsapp"), map[string]any{"adapter": "whatsapp", "phone_number_id": "1"}, 400, api.CodeInvalidInput, "token is required"},
			{"missing agent", channelPath(e.a, "rcs"), map[string]any{"adapter": "rcs", "token": "t"}, 400, api.CodeInvalidInput, "agent_id is required"},
			{"ftp base url", wa, map[string]any{"adapter": "whatsapp", "phone_number_id": "1", "base_url": "ftp://x"}, 400, api.CodeInvalidInput, "base_url"},
			{"javascript base url", wa, map[string]any{"adapter": "whatsapp", "phone_number_id": "1", "base_url": "javascript:alert(1)"}, 400, api.CodeInvalidInput, "base_url"},
			{"misspelt setting", wa, map[string]any{"adapter": "whatsapp", "phone_number": "1"}, 400, api.CodeInvalidInput, "unknown field"},
			{"rate as a word", wa, map[string]any{"adapter": "whatsapp", "rate_per_second": "fast"}, 400, api.CodeInvalidInput, "rate"},
			{"rate as a list", wa, map[string]any{"adapter": "whatsapp", "rate_per_second": []int{1}}, 400, api.CodeInvalidInput, "rate_per_second"},
			{"not JSON", wa, "adapter=whatsapp", 400, api.CodeInvalidInput, "JSON"},
			{"unknown channel", channelPath(e.a, "sms"), map[string]any{"adapter": "sandbox"}, 404, api.CodeNotFound, "sms"},
			{"unknown bot", channelPath(auth.NewBot{CustomerID: e.a.CustomerID, BotKey: "0000000000000000"}, "whatsapp"), map[string]any{"adapter": "sandbox"}, 400, api.CodeInvalidBotOrCustomer, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := e.admin("PUT", tt.path, tt.body)
				wantStatus(t, r, tt.wantHTTP, tt.wantCode)
				if !strings.Contains(r.Status.Details, tt.detail) {
					t.Fatalf("details %q do not mention %q", r.Status.Details, tt.detail)
				}
			})
		}
		// None of the refused settings replaced the stored ones.
		if v := read(e.admin("GET", wa, nil)); v.Config["phone_number_id"] != waPhoneID || v.Config["token"] != "****0001" {
			t.Fatalf("after refused PUTs = %+v", v)
		}
		// Back to the sandbox clears the credentials.
		if v := read(e.admin("PUT", wa, map[string]any{"adapter": "sandbox"})); len(v.Config) != 1 {
			t.Fatalf("sandbox = %+v", v)
		}
		var list struct {
			Channels []view `json:"channels"`
		}
		lr := e.admin("GET", "/admin/v1/customers/"+itoa(e.a.CustomerID)+"/bots/"+e.a.BotKey+"/channels", nil)
		wantStatus(t, lr, 200, api.CodeSuccess)
		lr.obj(t, &list)
		if len(list.Channels) != 2 || list.Channels[0].Channel != "whatsapp" || list.Channels[1].Channel != "rcs" {
			t.Fatalf("channel list %s", lr.Obj)
		}
		// The admin token guards it all.
		wantStatus(t, e.do("GET", wa, "", nil), 401, api.CodeUnauthorized)
		wantStatus(t, e.do("PUT", wa, "", map[string]any{"adapter": "sandbox"}), 401, api.CodeUnauthorized)
	})
}

// TestTemplateAPIIdempotency: an Idempotency-Key makes a retried template send answer
// with the first send, without a second request to the provider; per bot, for 24 hours.
func TestTemplateAPIIdempotency(t *testing.T) {
	eachChannel(t, func(t *testing.T, e *env) {
		graph := newFakeGraph(t)
		e.useWhatsApp(e.a, graph.URL)
		send := func(nb auth.NewBot, phone, key string) response {
			var hdr []string
			if key != "" {
				hdr = []string{"Idempotency-Key", key}
			}
			return e.do("POST", "/whatsapp-api/v1.0/customer/"+itoa(nb.CustomerID)+"/bot/"+nb.BotKey+"/template", nb.APIKey,
				`{"phoneNumber": "`+phone+`", "payload": {"name": "order_update", "language": {"code": "en"}}}`, hdr...)
		}
		type answer struct {
			MessageID       string `json:"message_id"`
			StoredMessageID string `json:"stored_message_id"`
			Status          string `json:"status"`
			ChannelUserID   string `json:"channel_user_id"`
			PhoneNumber     string `json:"phone_number"`
			Duplicate       bool   `json:"duplicate"`
		}
		read := func(r response) answer {
			t.Helper()
			wantStatus(t, r, 200, api.CodeSuccess)
			var a answer
			r.obj(t, &a)
			return a
		}

		first := read(send(e.a, "+919019486731", "order-42"))
		again := read(send(e.a, "919019486731", "order-42"))
		if first.Duplicate || !again.Duplicate || again.MessageID != first.MessageID || again.StoredMessageID != first.StoredMessageID ||
			again.Status != "sent" || again.ChannelUserID != "919019486731" || again.PhoneNumber != "+919019486731" {
			t.Fatalf("first %+v, retry %+v", first, again)
		}
		if n := graph.requests("919019486731"); n != 1 {
			t.Fatalf("the provider got %d requests, want 1", n)
		}
		if conv := e.conversation(e.a, "919019486731"); len(conv) != 1 || conv[0].ProviderID != first.MessageID {
			t.Fatalf("conversation %+v", conv)
		}
		// Another key, no key, another bot: each a new send.
		other := read(send(e.a, "919019486731", "order-43"))
		plain1, plain2 := read(send(e.a, "919019486731", "")), read(send(e.a, "919019486731", ""))
		if other.Duplicate || other.MessageID == first.MessageID || plain1.MessageID == plain2.MessageID || graph.requests("919019486731") != 4 {
			t.Fatalf("other %+v, plain %+v %+v, %d requests", other, plain1, plain2, graph.requests("919019486731"))
		}
		if b := read(send(e.b, "919019486731", "order-42")); b.Duplicate || !strings.HasPrefix(b.MessageID, "sandbox.") {
			t.Fatalf("bot b with bot a's key: %+v", b)
		}

		// A refusal is the first send's outcome: the retry repeats it without a request.
		wantStatus(t, send(e.a, "919800131026", "refused"), 400, api.CodeMessageNotSent)
		r := send(e.a, "919800131026", "refused")
		wantStatus(t, r, 400, api.CodeMessageNotSent)
		if !strings.Contains(r.Status.Details, "131026") || graph.requests("919800131026") != 1 {
			t.Fatalf("retried refusal: %s; %d requests", r.Body, graph.requests("919800131026"))
		}
		// A passing refusal (rate limit) keeps nothing: the retry tries again.
		wantStatus(t, send(e.a, "919800130429", "busy"), 429, api.CodeRateLimited)
		wantStatus(t, send(e.a, "919800130429", "busy"), 429, api.CodeRateLimited)
		if n := graph.requests("919800130429"); n != 2 {
			t.Fatalf("rate-limited key: %d requests, want 2 (a passing refusal frees the key)", n)
		}

		// The key holds for 24 hours: an older claim is taken over by a new send.
		ctx := context.Background()
		bot := mustBot(t, e, e.a)
		if _, err := e.st.Writer().Exec(ctx, `UPDATE messages SET created_at = created_at - $1 WHERE bot_id = $2 AND send_key = $3`,
			(25 * time.Hour).Milliseconds(), bot.ID, "template:order-42"); err != nil {
			t.Fatal(err)
		}
		late := read(send(e.a, "919019486731", "order-42"))
		if late.Duplicate || late.MessageID == first.MessageID || graph.requests("919019486731") != 5 {
			t.Fatalf("a key older than 24 h: %+v", late)
		}
		wantStatus(t, send(e.a, "919019486731", strings.Repeat("k", 201)), 400, api.CodeInvalidInput)
	})
}

// TestTemplateAPIRetryInFlight: a retry that comes while the first send with its
// Idempotency-Key is still waiting for Meta waits for it, then answers 409 (with
// Retry-After) rather than send again; once the first send is done, a retry gets it.
func TestTemplateAPIRetryInFlight(t *testing.T) {
	eachChannel(t, func(t *testing.T, e *env) {
		graph := newFakeGraph(t)
		front := newHolding(t, graph.serve, isGraphMessage, false)
		e.useWhatsApp(e.a, front.URL)
		front.hold(1)
		send := func() response {
			return e.do("POST", "/whatsapp-api/v1.0/customer/"+itoa(e.a.CustomerID)+"/bot/"+e.a.BotKey+"/template", e.a.APIKey,
				`{"phoneNumber": "919019486731", "payload": {"name": "order_update", "language": {"code": "en"}}}`, "Idempotency-Key", "slow")
		}
		first := make(chan response, 1)
		go func() { first <- send() }()
		front.waitHeld(t, 1)
		busy := send() // waits 5 s for the first, in vain
		wantStatus(t, busy, 409, api.CodeConflict)
		if busy.Header.Get("Retry-After") == "" {
			t.Fatal("409 without Retry-After")
		}
		third := make(chan response, 1)
		go func() { third <- send() }()
		time.Sleep(300 * time.Millisecond) // the third request waits for the first send
		front.release()
		var a, c struct {
			MessageID string `json:"message_id"`
			Duplicate bool   `json:"duplicate"`
		}
		r1, r3 := <-first, <-third
		wantStatus(t, r1, 200, api.CodeSuccess)
		wantStatus(t, r3, 200, api.CodeSuccess)
		r1.obj(t, &a)
		r3.obj(t, &c)
		if a.Duplicate || !c.Duplicate || a.MessageID == "" || c.MessageID != a.MessageID || graph.requests("919019486731") != 1 {
			t.Fatalf("first %+v, retry %+v, %d requests", a, c, graph.requests("919019486731"))
		}
	})
}
