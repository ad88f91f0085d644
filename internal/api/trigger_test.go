package api_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/api"
	"github.com/parleyhq/parley/internal/engine"
)

const orderFlow = `{
  "key": "order_update", "name": "Order update", "start": "tier",
  "nodes": [
    {"id": "tier", "type": "decision",
     "branches": [{"when": {"all": [{"attribute": "user_type", "op": "eq", "value": "vip"}]}, "next": "vip"}],
     "else": "std"},
    {"id": "vip", "type": "message", "text": "Hi {{user.user_name}}, VIP order {{order_id}} is on its way", "next": "done"},
    {"id": "std", "type": "message", "text": "Order {{order_id}} is on its way", "next": "done"},
    {"id": "done", "type": "end"}
  ]
}`

func runOf(t *testing.T, r response) engine.RunView {
	t.Helper()
	var v engine.RunView
	r.obj(t, &v)
	return v
}

func TestTriggerV2(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.importFlow(e.a, orderFlow)
		trig := botPath("v2.0", e.a) + "/flow/ORDER_UPDATE?wait=true" // keys match case-insensitively
		r := e.do("POST", trig, e.a.APIKey, `{"user.channel": "WhatsApp", "user.phone_no": "+91 98765 43210",
			"user_type": "vip", "order_id": 1001, "paid": true, "note": null}`)
		wantStatus(t, r, 200, api.CodeSuccess)
		v := runOf(t, r)
		if v.Status != "completed" || v.RunID == "" || v.ChannelUserID != "919876543210" || len(v.Steps) != 3 {
			t.Fatalf("run = %+v", v)
		}
		if v.Steps[0].Node != "tier" || v.Steps[0].Outcome != "branch 0" || v.Steps[1].Node != "vip" || v.Steps[2].Type != "end" {
			t.Fatalf("steps = %+v", v.Steps)
		}

		// The run reads back by id.
		got := e.do("GET", botPath("v2.0", e.a)+"/runs/"+v.RunID, e.a.APIKey, nil)
		wantStatus(t, got, 200, api.CodeSuccess)
		if rv := runOf(t, got); rv.Status != "completed" || rv.FlowKey != "order_update" || len(rv.Steps) != 3 {
			t.Fatalf("run by id = %+v", rv)
		}

		// The user exists with merged attributes; user.user_name defaulted to the phone.
		u := e.do("GET", botPath("v1.0", e.a)+"/users?attribute_name=order_id&attribute_value=1001", e.a.APIKey, nil)
		wantStatus(t, u, 200, api.CodeSuccess)
		var users struct {
			Users []struct {
				ChannelUserID string            `json:"channel_user_id"`
				Channel       string            `json:"channel"`
				Name          string            `json:"name"`
				Attributes    map[string]string `json:"attributes"`
			} `json:"users"`
			Total int `json:"total"`
		}
		u.obj(t, &users)
		if users.Total != 1 || len(users.Users) != 1 {
			t.Fatalf("users = %s", u.Obj)
		}
		a := users.Users[0].Attributes
		if users.Users[0].Name != "919876543210" || a["user.phone_no"] != "+919876543210" || a["user.channel"] != "whatsapp" ||
			a["paid"] != "true" || a["note"] != "" || a["user_type"] != "vip" {
			t.Fatalf("user = %+v", users.Users[0])
		}

		// The conversation holds the message, rendered with the attributes.
		c := e.do("GET", botPath("v1.0", e.a)+"/channel-user/919876543210/conversations", e.a.APIKey, nil)
		wantStatus(t, c, 200, api.CodeSuccess)
		var conv struct {
			Conversations []struct {
				MessageID   string `json:"message_id"`
				Sender      string `json:"sender"`
				Text        string `json:"text"`
				Status      string `json:"status"`
				Timestamp   string `json:"timestamp"`
				TimestampMS int64  `json:"timestamp_ms"`
			} `json:"conversations"`
			Total int `json:"total"`
		}
		c.obj(t, &conv)
		if conv.Total != 1 || conv.Conversations[0].Text != "Hi 919876543210, VIP order 1001 is on its way" ||
			conv.Conversations[0].Sender != "bot" || conv.Conversations[0].Status != "delivered" {
			t.Fatalf("conversation = %s", c.Obj)
		}
		if !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+0000$`).MatchString(conv.Conversations[0].Timestamp) {
			t.Fatalf("timestamp %q is not like 2024-03-10 12:34:56.789+0000", conv.Conversations[0].Timestamp)
		}

		// A second trigger with a name keeps it, and takes the other branch.
		r = e.do("POST", trig, e.a.APIKey, `{"user_channel": "whatsapp", "user_phone_no": 919876543210, "user.user_name": "Asha", "user_type": "std", "order_id": "1002"}`)
		wantStatus(t, r, 200, api.CodeSuccess)
		if v := runOf(t, r); v.Steps[1].Node != "std" {
			t.Fatalf("second run = %+v", v)
		}
	})
}

func TestTriggerV1(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.importFlow(e.a, orderFlow)
		// Attributes come from the query string; the JSON body real integrations send is ignored.
		path := botPath("v1.0", e.a) + "/flow/order_update?user.phone_no=919876543210&user_type=vip&order_id=7&operationid=test123&wait=true"
		r := e.do("POST", path, e.a.APIKey, `{"unrelated": {"nested": [1, 2]}}`)
		wantStatus(t, r, 200, api.CodeSuccess)
		v := runOf(t, r)
		if v.Status != "completed" || v.Steps[1].Node != "vip" {
			t.Fatalf("run = %+v", v)
		}
		// operationid makes a retry return the first run.
		again := runOf(t, e.do("POST", path, e.a.APIKey, "not even json"))
		if again.RunID != v.RunID || !again.Duplicate {
			t.Fatalf("retry = %+v; want run %s again", again, v.RunID)
		}
		// With no body at all, and the key only in the query.
		r = e.do("POST", botPath("v1.0", e.a)+"/flow/order_update?user.phone_no=919876543211&authorization=Basic%20"+e.a.APIKey, "", nil)
		wantStatus(t, r, 200, api.CodeSuccess)
	})
}

func TestTriggerIdempotency(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.importFlow(e.a, orderFlow)
		e.importFlow(e.b, orderFlow)
		body := `{"user.phone_no": "919876543210", "order_id": "1"}`
		first := runOf(t, e.do("POST", botPath("v2.0", e.a)+"/flow/order_update?wait=true", e.a.APIKey, body, "Idempotency-Key", "k-1"))
		second := runOf(t, e.do("POST", botPath("v2.0", e.a)+"/flow/order_update?wait=true", e.a.APIKey, body, "Idempotency-Key", "k-1"))
		if first.RunID == "" || second.RunID != first.RunID || !second.Duplicate || first.Duplicate {
			t.Fatalf("first %+v, second %+v: want the same run, second marked duplicate", first, second)
		}
		other := runOf(t, e.do("POST", botPath("v2.0", e.a)+"/flow/order_update", e.a.APIKey, body, "Idempotency-Key", "k-2"))
		if other.RunID == first.RunID {
			t.Fatal("a new key returned the old run")
		}
		// Keys are per bot.
		otherBot := runOf(t, e.do("POST", botPath("v2.0", e.b)+"/flow/order_update", e.b.APIKey, body, "Idempotency-Key", "k-1"))
		if otherBot.RunID == first.RunID {
			t.Fatal("another bot's trigger with the same key returned this bot's run")
		}
		// Exactly one message was sent for the two identical triggers.
		c := e.do("GET", botPath("v1.0", e.a)+"/channel-user/919876543210/conversations", e.a.APIKey, nil)
		var conv struct {
			Total int `json:"total"`
		}
		c.obj(t, &conv)
		if conv.Total != 2 { // k-1 once, k-2 once
			t.Fatalf("messages = %d, want 2 (one per distinct key)", conv.Total)
		}
	})
}

func TestTriggerErrors(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.importFlow(e.a, orderFlow)
		v2 := botPath("v2.0", e.a) + "/flow/order_update"
		tests := []struct {
			name     string
			path     string
			body     string
			wantHTTP int
			wantCode int
			detail   string
		}{
			{"unknown flow", botPath("v2.0", e.a) + "/flow/nope", `{"user.phone_no": "919876543210"}`, 404, api.CodeNotFound, "nope"},
			{"flow of another bot", botPath("v2.0", e.b) + "/flow/order_update", `{"user.phone_no": "919876543210"}`, 403, api.CodeForbidden, ""},
			{"malformed JSON", v2, `{"user_channel":`, 400, api.CodeInvalidInput, "cut short"},
			{"not JSON", v2, `hello`, 400, api.CodeInvalidInput, "not valid JSON"},
			{"array body", v2, `[1,2]`, 400, api.CodeInvalidInput, "JSON object"},
			{"two values", v2, `{"user.phone_no": "919876543210"} {}`, 400, api.CodeInvalidInput, "more than one"},
			{"empty body", v2, ``, 400, api.CodeInvalidInput, "empty"},
			{"missing phone", v2, `{"user.channel": "whatsapp"}`, 400, api.CodeInvalidInput, "user.phone_no is required"},
			{"phone without country code", v2, `{"user.phone_no": "12345"}`, 400, api.CodeInvalidInput, "user.phone_no"},
			{"phone with letters", v2, `{"user.phone_no": "91987654321x"}`, 400, api.CodeInvalidInput, "user.phone_no"},
			{"unsupported channel", v2, `{"user.channel": "sms", "user.phone_no": "919876543210"}`, 400, api.CodeInvalidInput, "whatsapp or rcs"},
			{"nested attribute", v2, `{"user.phone_no": "919876543210", "order": {"id": 1}}`, 400, api.CodeInvalidInput, "nested"},
			{"array attribute", v2, `{"user.phone_no": "919876543210", "ids": [1]}`, 400, api.CodeInvalidInput, "nested"},
			{"bad attribute name", v2, `{"user.phone_no": "919876543210", "bad name!": "x"}`, 400, api.CodeInvalidInput, "attribute name"},
			{"long attribute", v2, `{"user.phone_no": "919876543210", "x": "` + strings.Repeat("a", 5000) + `"}`, 400, api.CodeInvalidInput, "longer"},
			{"bad wait", v2 + "?wait=maybe", `{"user.phone_no": "919876543210"}`, 400, api.CodeInvalidInput, "wait"},
			{"oversized body", v2, `{"a": "` + strings.Repeat("a", 2<<20) + `"}`, 413, api.CodePayloadTooLarge, "larger"},
			{"v1 missing phone", botPath("v1.0", e.a) + "/flow/order_update?x=1", ``, 400, api.CodeInvalidInput, "user.phone_no"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := e.do("POST", tt.path, e.a.APIKey, tt.body)
				wantStatus(t, r, tt.wantHTTP, tt.wantCode)
				if !strings.Contains(r.Status.Details, tt.detail) {
					t.Errorf("details %q do not mention %q", r.Status.Details, tt.detail)
				}
			})
		}
		// Nothing bad input did created a run or a user.
		u := e.do("GET", botPath("v1.0", e.a)+"/users?attribute_name=user.channel&attribute_value=whatsapp", e.a.APIKey, nil)
		if !strings.Contains(string(u.Obj), `"total":0`) {
			t.Fatalf("bad triggers created users: %s", u.Obj)
		}
	})
}

func TestRunStatusErrors(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.importFlow(e.a, orderFlow)
		v := runOf(t, e.do("POST", botPath("v2.0", e.a)+"/flow/order_update", e.a.APIKey, `{"user.phone_no": "919876543210"}`))
		wantStatus(t, e.do("GET", botPath("v2.0", e.a)+"/runs/not-a-run", e.a.APIKey, nil), 404, api.CodeNotFound)
		// Another bot cannot read this bot's run, even with a valid key of its own.
		wantStatus(t, e.do("GET", botPath("v2.0", e.b)+"/runs/"+v.RunID, e.b.APIKey, nil), 404, api.CodeNotFound)
	})
}

func TestConversationsErrors(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.importFlow(e.a, orderFlow)
		for i := range 5 {
			e.do("POST", botPath("v2.0", e.a)+"/flow/order_update?wait=true", e.a.APIKey, fmt.Sprintf(`{"user.phone_no": "919876543210", "order_id": "%d"}`, i))
		}
		conv := botPath("v1.0", e.a) + "/channel-user/919876543210/conversations"
		tests := []struct {
			name     string
			query    string
			path     string
			wantHTTP int
			wantCode int
		}{
			{"ok", "", conv, 200, api.CodeSuccess},
			{"unknown user", "", botPath("v1.0", e.a) + "/channel-user/910000000000/conversations", 400, api.CodeInvalidBotOrCustomer},
			{"start not ms", "?start_date=yesterday", conv, 400, api.CodeInvalidDate},
			{"end not ms", "?end_date=2024-01-01", conv, 400, api.CodeInvalidDate},
			{"end before start", "?start_date=2000&end_date=1000", conv, 400, api.CodeInvalidDate},
			{"negative", "?start_date=-5", conv, 400, api.CodeInvalidDate},
			{"page zero", "?page_number=0", conv, 400, api.CodeInvalidPage},
			{"page not int", "?page_number=one", conv, 400, api.CodeInvalidPage},
			{"page fraction", "?page_number=1.5", conv, 400, api.CodeInvalidPage},
			{"bad page size", "?page_size=0", conv, 400, api.CodeInvalidInput},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				wantStatus(t, e.do("GET", tt.path+tt.query, e.a.APIKey, nil), tt.wantHTTP, tt.wantCode)
			})
		}
		// Pages: 5 messages, 2 per page, page 3 has the last one, in time order.
		r := e.do("GET", conv+"?page_size=2&page_number=3", e.a.APIKey, nil)
		var page struct {
			Conversations []struct {
				Text string `json:"text"`
			} `json:"conversations"`
			Total      int `json:"total"`
			PageNumber int `json:"page_number"`
			PageSize   int `json:"page_size"`
		}
		r.obj(t, &page)
		if page.Total != 5 || page.PageNumber != 3 || page.PageSize != 2 || len(page.Conversations) != 1 ||
			page.Conversations[0].Text != "Order 4 is on its way" {
			t.Fatalf("page 3 = %s", r.Obj)
		}
		// A window that ends before everything is empty.
		r = e.do("GET", conv+"?start_date=0&end_date=1000", e.a.APIKey, nil)
		r.obj(t, &page)
		if page.Total != 0 || len(page.Conversations) != 0 {
			t.Fatalf("old window = %s", r.Obj)
		}
	})
}

func TestUsersErrors(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		users := botPath("v1.0", e.a) + "/users"
		wantStatus(t, e.do("GET", users, e.a.APIKey, nil), 400, api.CodeInvalidInput)
		wantStatus(t, e.do("GET", users+"?attribute_name=x", e.a.APIKey, nil), 400, api.CodeInvalidInput)
		wantStatus(t, e.do("GET", users+"?attribute_name=a%22b&attribute_value=1", e.a.APIKey, nil), 400, api.CodeInvalidInput)
		wantStatus(t, e.do("GET", users+"?attribute_name=x&attribute_value=1&page_number=0", e.a.APIKey, nil), 400, api.CodeInvalidPage)
	})
}

func TestUnknownRoute(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		wantStatus(t, e.do("GET", "/nope", "", nil), 404, api.CodeNotFound)
		wantStatus(t, e.do("DELETE", botPath("v1.0", e.a)+"/users", e.a.APIKey, nil), 405, api.CodeMethodNotAllowed)
	})
}
