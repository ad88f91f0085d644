package api_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/api"
	"github.com/parleyhq/parley/internal/store"
)

// badInput is a request whose text the database cannot store.
type badInput struct {
	name   string
	method string
	path   string
	body   any
	hdr    []string
	admin  bool
	// field is what the envelope's details must name.
	field string
}

// TestBadTextIsRefused sends NUL characters and invalid UTF-8 through every way a string
// reaches the database — trigger attributes (v1 and v2), phone numbers, query
// parameters, path parameters, the Idempotency-Key header, the template API, admin
// names, channel settings, sandbox messages, flow documents, webhook paths — and wants a
// 400 in the envelope that names the field, on both databases (PostgreSQL refuses such
// text; a 500 there was the bug), with nothing stored.
func TestBadTextIsRefused(t *testing.T) {
	eachChannel(t, func(t *testing.T, e *env) {
		e.importFlow(e.a, orderFlow)
		graph := newFakeGraph(t)
		e.useWhatsApp(e.a, graph.URL)
		const user = "919876543210"
		v1 := botPath("v1.0", e.a)
		v2 := botPath("v2.0", e.a)
		c := "/admin/v1/customers/" + itoa(e.a.CustomerID)
		b := c + "/bots/" + e.a.BotKey
		template := "/whatsapp-api/v1.0/customer/" + itoa(e.a.CustomerID) + "/bot/" + e.a.BotKey + "/template"
		// flowDoc takes the name and the text as JSON string literals.
		flowDoc := func(name, text string) string {
			return `{"key": "bad", "name": ` + name + `, "start": "m", "nodes": [{"id": "m", "type": "message", "text": ` + text + `}]}`
		}
		for _, tc := range []badInput{
			{name: "v2 attribute value", method: "POST", path: v2 + "/flow/order_update", body: `{"user.phone_no": "` + user + `", "note": "a\u0000b"}`, field: "note"},
			{name: "v2 attribute name", method: "POST", path: v2 + "/flow/order_update", body: `{"user.phone_no": "` + user + `", "a\u0000": "x"}`, field: `"a\x00"`},
			{name: "v2 phone", method: "POST", path: v2 + "/flow/order_update", body: `{"user.phone_no": "9198\u000076543210"}`, field: "user.phone_no"},
			{name: "v2 body not UTF-8", method: "POST", path: v2 + "/flow/order_update", body: []byte("{\"user.phone_no\": \"" + user + "\", \"note\": \"\xff\"}"), field: "UTF-8"},
			{name: "v1 attribute NUL", method: "POST", path: v1 + "/flow/order_update?user.phone_no=" + user + "&note=a%00b", field: "query parameter note"},
			{name: "v1 attribute not UTF-8", method: "POST", path: v1 + "/flow/order_update?user.phone_no=" + user + "&note=%ff", field: "query parameter note"},
			{name: "v1 attribute name", method: "POST", path: v1 + "/flow/order_update?user.phone_no=" + user + "&n%00te=1", field: "query parameter name"},
			{name: "idempotency key", method: "POST", path: v2 + "/flow/order_update", body: `{"user.phone_no": "` + user + `"}`, hdr: []string{"Idempotency-Key", "k\xff"}, field: "Idempotency-Key"},
			{name: "operationid", method: "POST", path: v2 + "/flow/order_update", body: `{"user.phone_no": "` + user + `", "operationid": "\u0000"}`, field: "operationid"},
			{name: "flow key in path", method: "POST", path: v2 + "/flow/q%00", body: `{"user.phone_no": "` + user + `"}`, field: "path parameter flowKey"},
			{name: "users attribute_value NUL", method: "GET", path: v1 + "/users?attribute_name=x&attribute_value=a%00", field: "query parameter attribute_value"},
			{name: "users attribute_value not UTF-8", method: "GET", path: v1 + "/users?attribute_name=x&attribute_value=%ff", field: "query parameter attribute_value"},
			{name: "conversations user", method: "GET", path: v1 + "/channel-user/9198%00/conversations", field: "path parameter channelUserId"},
			{name: "run id", method: "GET", path: v2 + "/runs/abc%ff", field: "path parameter runId"},
			{name: "template name", method: "POST", path: template,
				body: `{"phoneNumber": "+` + user + `", "payload": {"name": "a\u0000", "language": {"code": "en"}}}`, field: "payload.name"},
			{name: "template parameter", method: "POST", path: template,
				body: `{"phoneNumber": "+` + user + `", "payload": {"name": "order_update", "language": {"code": "en"},
				"components": [{"type": "body", "parameters": [{"type": "text", "text": "x\u0000"}]}]}}`,
				field: "payload.components[0].parameters[0].text"},
			{name: "template phone", method: "POST", path: template,
				body: `{"phoneNumber": "+9198\u000076543210", "payload": {"name": "order_update", "language": {"code": "en"}}}`, field: "phoneNumber"},
			{name: "customer name", method: "POST", path: "/admin/v1/customers", body: `{"name": "a\u0000"}`, admin: true, field: "name"},
			{name: "customer name not UTF-8", method: "POST", path: "/admin/v1/customers", body: []byte("{\"name\": \"a\xff\"}"), admin: true, field: "UTF-8"},
			{name: "bot name", method: "POST", path: c + "/bots", body: `{"name": "a\u0000"}`, admin: true, field: "name"},
			{name: "bot by customer name", method: "POST", path: "/admin/v1/bots", body: `{"customer": "x\u0000", "name": "y"}`, admin: true, field: "customer"},
			{name: "channel setting", method: "PUT", path: b + "/channels/whatsapp",
				body: `{"adapter": "whatsapp", "phone_number_id": "1", "token": "t\u0000", "app_secret": "s", "verify_token": "v"}`, admin: true, field: "token"},
			{name: "sandbox text", method: "POST", path: b + "/sandbox/messages", body: `{"phone": "` + user + `", "text": "hi\u0000"}`, admin: true, field: "text"},
			{name: "sandbox payload", method: "POST", path: b + "/sandbox/messages", body: `{"phone": "` + user + `", "payload": "p\u0000"}`, admin: true, field: "payload"},
			{name: "flow text", method: "POST", path: b + "/flows", body: flowDoc(`"ok"`, `"a\u0000"`), admin: true, field: "NUL"},
			{name: "flow name", method: "POST", path: b + "/flows", body: flowDoc(`"a\u0000"`, `"hi"`), admin: true, field: "name"},
			{name: "flow not UTF-8", method: "POST", path: b + "/flows", body: []byte(flowDoc("\"a\xff\"", `"hi"`)), admin: true, field: "UTF-8"},
			{name: "validate flow text", method: "POST", path: "/admin/v1/flows/validate", body: flowDoc(`"ok"`, `"a\u0000"`), admin: true, field: "NUL"},
			{name: "admin path bot key", method: "GET", path: c + "/bots/ab%00/keys", admin: true, field: "path parameter botKey"},
			{name: "admin path flow key", method: "GET", path: b + "/flows/q%ff", admin: true, field: "path parameter flowKey"},
			{name: "webhook path", method: "POST", path: "/webhooks/whatsapp/ab%00", body: `{}`, field: "path parameter botKey"},
			{name: "rcs webhook path", method: "POST", path: "/webhooks/rcs/ab%ff", body: `{}`, field: "path parameter botKey"},
			{name: "webhook handshake", method: "GET", path: "/webhooks/whatsapp/" + e.a.BotKey + "?hub.mode=subscribe&hub.challenge=%00", field: "query parameter hub.challenge"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				hdr := tc.hdr
				if tc.admin {
					hdr = append(hdr, "Authorization", "Bearer "+adminToken)
				}
				key := e.a.APIKey
				if tc.admin || strings.HasPrefix(tc.path, "/webhooks/") {
					key = ""
				}
				r := e.do(tc.method, tc.path, key, tc.body, hdr...)
				wantStatus(t, r, 400, api.CodeInvalidInput)
				if !strings.Contains(r.Status.Details, tc.field) {
					t.Fatalf("details %q do not name %s", r.Status.Details, tc.field)
				}
			})
		}
		// Nothing was stored half-way: no user, no message sent, no customer or flow.
		if _, err := e.st.UserByChannelID(context.Background(), mustBot(t, e, e.a).ID, user); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a user was stored: %v", err)
		}
		if n := len(graph.sent()); n != 0 {
			t.Fatalf("the template API sent %d message(s)", n)
		}
		if cs, err := e.st.Customers(context.Background()); err != nil || len(cs) != 2 {
			t.Fatalf("customers %+v %v, want acme and globex only", cs, err)
		}
		if _, err := e.st.FlowByKey(context.Background(), mustBot(t, e, e.a).ID, "bad"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a flow was stored: %v", err)
		}
	})
}

// waDelivery is a WhatsApp notification from contact (profile name) with messages (JSON
// objects of Meta's shape).
func waDelivery(contact string, messages ...string) []byte {
	return fmt.Appendf(nil, `{"object": "whatsapp_business_account", "entry": [{"id": "700100200300400", "changes": [{"field": "messages",
		"value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550104242", "phone_number_id": %q},
		 "contacts": [{"profile": {"name": %s}, "wa_id": "919812300001"}],
		 "messages": [%s]}}]}]}`, waPhoneID, contact, strings.Join(messages, ","))
}

func waText(id, body string) string {
	return fmt.Sprintf(`{"from": "919812300001", "id": %s, "timestamp": "1700000000", "type": "text", "text": {"body": %s}}`, id, body)
}

// TestWebhookStoresWhatItCan: a correctly signed WhatsApp message with NUL characters and
// invalid UTF-8 in its text, id and sender's name is stored cleaned and answered 200 —
// not 500 on every redelivery — and a redelivery is recognised.
func TestWebhookStoresWhatItCan(t *testing.T) {
	eachChannel(t, func(t *testing.T, e *env) {
		graph := newFakeGraph(t)
		e.useWhatsApp(e.a, graph.URL)
		body := waDelivery(`"As\u0000ha"`, waText(`"wamid.NUL\u00001"`, "\"hi\\u0000 there \xff\""))
		for i, wantDup := range []int{0, 1} {
			res := webhookOf(t, e.postWhatsApp(e.a, body, waAppSecret))
			if res.Messages != 1 || res.Duplicates != wantDup {
				t.Fatalf("delivery %d: %+v", i+1, res)
			}
		}
		conv := e.conversation(e.a, "919812300001")
		if len(conv) != 1 || conv[0].Text != "hi there \uFFFD" || conv[0].ProviderID != "wamid.NUL1" || len(conv[0].Payload) == 0 {
			t.Fatalf("conversation %+v", conv)
		}
		if name := e.userAttrs(e.a, "919812300001")["user.user_name"]; name != "Asha" {
			t.Fatalf("user.user_name = %q", name)
		}
		// A failed status whose reason holds NUL is recorded too.
		status := fmt.Appendf(nil, `{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages",
			"value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": %q},
			 "statuses": [{"id": "wamid.X\u0000", "status": "failed", "timestamp": "1700000001", "recipient_id": "919812300001",
			  "errors": [{"code": 131026, "title": "Undeliverable\u0000"}]}]}}]}]}`, waPhoneID)
		if res := webhookOf(t, e.postWhatsApp(e.a, status, waAppSecret)); res.Statuses != 1 {
			t.Fatalf("status delivery %+v", res)
		}
	})
}

// TestWebhookMessageWithoutID: a message delivered with an empty id gets an id derived
// from its content, so a replay is not stored again, while another message without an
// id is still a message of its own.
func TestWebhookMessageWithoutID(t *testing.T) {
	eachChannel(t, func(t *testing.T, e *env) {
		graph := newFakeGraph(t)
		e.useWhatsApp(e.a, graph.URL)
		first := waDelivery(`"Asha"`, waText(`""`, `"one"`))
		for i, wantDup := range []int{0, 1, 1} {
			if res := webhookOf(t, e.postWhatsApp(e.a, first, waAppSecret)); res.Messages != 1 || res.Duplicates != wantDup {
				t.Fatalf("delivery %d: %+v", i+1, res)
			}
		}
		if res := webhookOf(t, e.postWhatsApp(e.a, waDelivery(`"Asha"`, waText(`""`, `"two"`)), waAppSecret)); res.Duplicates != 0 {
			t.Fatalf("another message without an id: %+v", res)
		}
		conv := e.conversation(e.a, "919812300001")
		if len(conv) != 2 || conv[0].Text != "one" || conv[1].Text != "two" ||
			!strings.HasPrefix(conv[0].ProviderID, "parley-sha256:") || conv[0].ProviderID == conv[1].ProviderID {
			t.Fatalf("conversation %+v", conv)
		}
	})
}

// TestInboundTextLimits: inbound text is stored up to 4,096 characters, and an input
// node never saves more than an attribute's 4,096 characters, whatever the reply.
func TestInboundTextLimits(t *testing.T) {
	eachChannel(t, func(t *testing.T, e *env) {
		graph := newFakeGraph(t)
		e.useWhatsApp(e.a, graph.URL)
		e.importFlow(e.a, `{"key": "ask", "start": "q", "nodes": [
			{"id": "q", "type": "input", "save_as": "answer", "next": "done"}, {"id": "done", "type": "end"}]}`)
		v := runOf(t, e.do("POST", botPath("v2.0", e.a)+"/flow/ask?wait=true", e.a.APIKey, `{"user.phone_no": "919812300001"}`))
		if v.Status != "waiting" {
			t.Fatalf("run %+v", v)
		}
		// A 5,000-character reply id (a button's payload) is what the input node gets.
		long := strings.Repeat("é", 5000)
		reply := fmt.Sprintf(`{"from": "919812300001", "id": "wamid.R1", "timestamp": "1700000000", "type": "interactive",
			"interactive": {"type": "button_reply", "button_reply": {"id": %q, "title": "Yes"}}}`, long)
		if res := webhookOf(t, e.postWhatsApp(e.a, waDelivery(`"Asha"`, reply), waAppSecret)); len(res.Resumed) != 1 {
			t.Fatalf("reply %+v", res)
		}
		if v := e.waitRun(e.a, v.RunID); v.Status != "completed" {
			t.Fatalf("run after the reply %+v", v)
		}
		if got := e.userAttrs(e.a, "919812300001")["answer"]; got != strings.Repeat("é", 4096) {
			t.Fatalf("answer is %d characters, want 4096", len([]rune(got)))
		}
		// A 5,000-character text is stored cut to 4,096.
		if res := webhookOf(t, e.postWhatsApp(e.a, waDelivery(`"Asha"`, waText(`"wamid.T1"`, fmt.Sprintf("%q", long))), waAppSecret)); res.Messages != 1 {
			t.Fatalf("long text %+v", res)
		}
		conv := e.conversation(e.a, "919812300001")
		if last := conv[len(conv)-1]; last.ProviderID != "wamid.T1" || last.Text != strings.Repeat("é", 4096) {
			t.Fatalf("stored text is %d characters, want 4096", len([]rune(last.Text)))
		}
	})
}

// TestSandboxLimits: the sandbox refuses text and payloads over 4,096 characters and
// channels Parley does not have.
func TestSandboxLimits(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		path := "/admin/v1/customers/" + itoa(e.a.CustomerID) + "/bots/" + e.a.BotKey + "/sandbox/messages"
		for _, tc := range []struct {
			name  string
			body  any
			code  int
			field string
		}{
			{"text at the limit", map[string]string{"phone": "919876543210", "text": strings.Repeat("ü", 4096)}, 200, ""},
			{"text over the limit", map[string]string{"phone": "919876543210", "text": strings.Repeat("ü", 4097)}, 400, "text"},
			{"payload over the limit", map[string]string{"phone": "919876543210", "payload": strings.Repeat("p", 4097)}, 400, "payload"},
			{"telegram", map[string]string{"phone": "919876543210", "text": "hi", "channel": "telegram"}, 400, "channel"},
			{"rcs", map[string]string{"phone": "919876543210", "text": "hi", "channel": "RCS"}, 200, ""},
			{"unknown field", map[string]string{"phone": "919876543210", "txt": "hi"}, 400, "txt"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.admin("POST", path, tc.body)
				if tc.code == 200 {
					wantStatus(t, r, 200, api.CodeSuccess)
					return
				}
				wantStatus(t, r, 400, api.CodeInvalidInput)
				if !strings.Contains(r.Status.Details, tc.field) {
					t.Fatalf("details %q do not name %s", r.Status.Details, tc.field)
				}
			})
		}
	})
}

// TestNameLimits: customer, bot and flow names are at most 200 characters, without
// control characters.
func TestNameLimits(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		c := "/admin/v1/customers/" + itoa(e.a.CustomerID)
		flows := c + "/bots/" + e.a.BotKey + "/flows"
		name := func(n int) string { return strings.Repeat("ñ", n) }
		flow := func(name string) string {
			return fmt.Sprintf(`{"name": %q, "start": "m", "nodes": [{"id": "m", "type": "message", "text": "hi"}]}`, name)
		}
		for _, tc := range []struct {
			name, method, path string
			body               any
			ok                 bool
		}{
			{"customer 200", "POST", "/admin/v1/customers", map[string]string{"name": name(200)}, true},
			{"customer 201", "POST", "/admin/v1/customers", map[string]string{"name": name(201)}, false},
			{"customer 900 KB", "POST", "/admin/v1/customers", map[string]string{"name": strings.Repeat("x", 900_000)}, false},
			{"customer with a line break", "POST", "/admin/v1/customers", map[string]string{"name": "a\nb"}, false},
			{"bot 200", "POST", c + "/bots", map[string]string{"name": name(200)}, true},
			{"bot 201", "POST", c + "/bots", map[string]string{"name": name(201)}, false},
			{"bot by name, long customer", "POST", "/admin/v1/bots", map[string]string{"customer": name(201), "name": "x"}, false},
			{"bot by name, long bot", "POST", "/admin/v1/bots", map[string]string{"customer": "hooli", "name": name(201)}, false},
			{"flow 200", "POST", flows, flow(name(200)), true},
			{"flow 201", "POST", flows, flow(name(201)), false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.admin(tc.method, tc.path, tc.body)
				if tc.ok {
					wantStatus(t, r, 200, api.CodeSuccess)
					return
				}
				wantStatus(t, r, 400, api.CodeInvalidInput)
				if !strings.Contains(r.Status.Details, "name") && !strings.Contains(r.Status.Details, "customer") {
					t.Fatalf("details %q do not name the field", r.Status.Details)
				}
			})
		}
		// The refused customers and bots were not created.
		if cs, _ := e.st.Customers(context.Background()); len(cs) != 3 {
			t.Fatalf("%d customers, want acme, globex and the 200-character one", len(cs))
		}
	})
}

// TestPageNumberBounds: a page number past 2^31-1 is 400/1004 on both databases, not a
// wrapped-around first page (SQLite) or a 500 (PostgreSQL).
func TestPageNumberBounds(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.importFlow(e.a, orderFlow)
		wantStatus(t, e.do("POST", botPath("v2.0", e.a)+"/flow/order_update?wait=true", e.a.APIKey,
			`{"user.phone_no": "919876543210", "order_id": "1"}`), 200, api.CodeSuccess)
		users := botPath("v1.0", e.a) + "/users?attribute_name=order_id&attribute_value=1&page_number="
		conv := botPath("v1.0", e.a) + "/channel-user/919876543210/conversations?page_number="
		for _, base := range []string{users, conv} {
			for _, n := range []string{"9223372036854775807", "9223372036854775808", "2147483648", "-1", "0"} {
				r := e.do("GET", base+n, e.a.APIKey, nil)
				wantStatus(t, r, 400, api.CodeInvalidPage)
			}
			// The largest page number is an empty page.
			r := e.do("GET", base+"2147483647&page_size=500", e.a.APIKey, nil)
			wantStatus(t, r, 200, api.CodeSuccess)
			var page struct {
				Users         []any `json:"users"`
				Conversations []any `json:"conversations"`
				Total         int   `json:"total"`
				PageNumber    int   `json:"page_number"`
			}
			r.obj(t, &page)
			if len(page.Users)+len(page.Conversations) != 0 || page.Total != 1 || page.PageNumber != 2147483647 {
				t.Fatalf("last page %s", r.Obj)
			}
		}
	})
}

// TestAdminBodiesRefuseUnknownFields: every admin route that takes a JSON body refuses
// a field it does not know, naming it, and changes nothing.
func TestAdminBodiesRefuseUnknownFields(t *testing.T) {
	eachChannel(t, func(t *testing.T, e *env) {
		c := "/admin/v1/customers/" + itoa(e.a.CustomerID)
		b := c + "/bots/" + e.a.BotKey
		wantStatus(t, e.admin("PATCH", c, `{"http_rate": 30}`), 200, api.CodeSuccess)
		for _, tc := range []struct{ name, method, path, body, field string }{
			{"patch customer", "PATCH", c, `{"http_ratee": 5}`, "http_ratee"},
			{"create customer", "POST", "/admin/v1/customers", `{"name": "x", "nmae": "y"}`, "nmae"},
			{"create bot", "POST", c + "/bots", `{"name": "x", "webhook": "y"}`, "webhook"},
			{"create bot by name", "POST", "/admin/v1/bots", `{"customer": "acme", "name": "x", "customer_id": 1}`, "customer_id"},
			{"channel settings", "PUT", b + "/channels/whatsapp", `{"adapter": "sandbox", "tokn": "x"}`, "tokn"},
			{"sandbox message", "POST", b + "/sandbox/messages", `{"phone": "919876543210", "text": "hi", "chanel": "rcs"}`, "chanel"},
			{"import flow", "POST", b + "/flows", `{"start": "m", "nodes": [{"id": "m", "type": "end"}], "stat": 1}`, "stat"},
			{"validate flow", "POST", "/admin/v1/flows/validate", `{"start": "m", "nodes": [{"id": "m", "type": "end"}], "stat": 1}`, "stat"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.admin(tc.method, tc.path, tc.body)
				wantStatus(t, r, 400, api.CodeInvalidInput)
				if !strings.Contains(r.Status.Details, tc.field) {
					t.Fatalf("details %q do not name %s", r.Status.Details, tc.field)
				}
			})
		}
		// The misspelt PATCH left http_rate alone, and so does an empty one; null resets it.
		rate := func(body string) string {
			r := e.admin("PATCH", c, body)
			wantStatus(t, r, 200, api.CodeSuccess)
			var cust struct {
				HTTPRate *int `json:"http_rate"`
			}
			r.obj(t, &cust)
			if cust.HTTPRate == nil {
				return "default"
			}
			return itoa(int64(*cust.HTTPRate))
		}
		if got := rate(`{}`); got != "30" {
			t.Fatalf("http_rate after a misspelt and an empty PATCH = %s, want 30", got)
		}
		if got := rate(`{"http_rate": null}`); got != "default" {
			t.Fatalf("http_rate after null = %s, want the default", got)
		}
		wantStatus(t, e.admin("PATCH", c, `{"http_rate": "5"}`), 400, api.CodeInvalidInput)
	})
}

// TestMethodNotAllowed: a known path with another method is 405/1010 in the envelope
// with Allow, on the platform, admin and webhook routes; an unknown path stays 404/1005.
func TestMethodNotAllowed(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		for _, tc := range []struct{ method, path, allow string }{
			{"GET", botPath("v1.0", e.a) + "/flow/order_update", "POST"},
			{"GET", botPath("v2.0", e.a) + "/flow/order_update", "POST"},
			{"DELETE", botPath("v1.0", e.a) + "/users", "GET, HEAD"},
			{"PUT", "/admin/v1/customers", "GET, HEAD, POST"},
			{"DELETE", "/webhooks/whatsapp/" + e.a.BotKey, "GET, HEAD, POST"},
			{"GET", "/webhooks/rcs/" + e.a.BotKey, "POST"},
			{"POST", "/healthz", "GET, HEAD"},
		} {
			r := e.do(tc.method, tc.path, e.a.APIKey, nil)
			wantStatus(t, r, 405, api.CodeMethodNotAllowed)
			if r.Header.Get("Allow") != tc.allow || r.Status.Desc != "METHOD_NOT_ALLOWED" {
				t.Fatalf("%s %s: Allow %q desc %s, want Allow %q", tc.method, tc.path, r.Header.Get("Allow"), r.Status.Desc, tc.allow)
			}
		}
		wantStatus(t, e.do("GET", "/nope", "", nil), 404, api.CodeNotFound)
		wantStatus(t, e.do("GET", botPath("v1.0", e.a)+"/nope", e.a.APIKey, nil), 404, api.CodeNotFound)
	})
}
