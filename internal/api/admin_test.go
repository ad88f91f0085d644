package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/api"
)

func TestAdminFlows(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		base := "/admin/v1/customers/" + itoa(e.a.CustomerID) + "/bots/" + e.a.BotKey + "/flows"
		// Import: the document's key is kept; a second import is version 2.
		r := e.admin("POST", base, orderFlow)
		wantStatus(t, r, 200, api.CodeSuccess)
		var rec struct {
			FlowKey string `json:"flow_key"`
			Version int    `json:"version"`
		}
		r.obj(t, &rec)
		if rec.FlowKey != "order_update" || rec.Version != 1 {
			t.Fatalf("import = %s", r.Obj)
		}
		r = e.admin("POST", base, orderFlow)
		r.obj(t, &rec)
		if rec.Version != 2 {
			t.Fatalf("re-import = %s", r.Obj)
		}
		// A document without a key gets a generated one.
		r = e.admin("POST", base, `{"start": "m", "nodes": [{"id": "m", "type": "message", "text": "hi"}]}`)
		r.obj(t, &rec)
		if len(rec.FlowKey) != 32 || strings.ToUpper(rec.FlowKey) != rec.FlowKey {
			t.Fatalf("generated key %q", rec.FlowKey)
		}
		// Export returns the normalised document.
		r = e.admin("GET", base+"/ORDER_UPDATE", nil)
		if r.HTTP != 200 || r.Header.Get("X-Flow-Version") != "2" {
			t.Fatalf("export: %d %s", r.HTTP, r.Body)
		}
		var doc map[string]any
		if err := json.Unmarshal(r.Body, &doc); err != nil || doc["key"] != "order_update" {
			t.Fatalf("export body %s: %v", r.Body, err)
		}
		r = e.admin("GET", base, nil)
		if !strings.Contains(string(r.Obj), `"order_update"`) {
			t.Fatalf("list = %s", r.Obj)
		}
		// Invalid documents are refused with every problem named.
		r = e.admin("POST", base, `{"start": "a", "nodes": [{"id": "a", "type": "message", "text": "x", "next": "ghost"}, {"id": "b", "type": "warp"}]}`)
		wantStatus(t, r, 400, api.CodeInvalidInput)
		if r.Status.Desc != "INVALID_FLOW" || !strings.Contains(r.Status.Details, `"b"`) || !strings.Contains(r.Status.Details, "warp") {
			t.Fatalf("invalid import: %s", r.Body)
		}
		r = e.admin("POST", "/admin/v1/flows/validate", `{"start": "a", "nodes": [{"id": "a", "type": "message", "text": "x", "next": "ghost"}]}`)
		wantStatus(t, r, 400, api.CodeInvalidInput)
		var verr struct {
			Errors []struct {
				Node    string `json:"node"`
				Field   string `json:"field"`
				Message string `json:"message"`
			} `json:"errors"`
		}
		if err := json.Unmarshal(r.Body, &verr); err != nil || len(verr.Errors) != 1 || verr.Errors[0].Node != "a" || verr.Errors[0].Field != "next" {
			t.Fatalf("validate: %s", r.Body)
		}
		wantStatus(t, e.admin("POST", "/admin/v1/flows/validate", orderFlow), 200, api.CodeSuccess)
		// Unknown flows, bots and customers.
		wantStatus(t, e.admin("GET", base+"/nope", nil), 404, api.CodeNotFound)
		wantStatus(t, e.admin("GET", "/admin/v1/customers/"+itoa(e.a.CustomerID)+"/bots/ffffffffffffffff/flows", nil), 400, api.CodeInvalidBotOrCustomer)
		wantStatus(t, e.admin("GET", "/admin/v1/customers/x/bots/"+e.a.BotKey+"/flows", nil), 400, api.CodeInvalidInput)
		// The schema is served.
		r = e.admin("GET", "/admin/v1/flow.schema.json", nil)
		if r.HTTP != 200 || !json.Valid(r.Body) || !strings.Contains(string(r.Body), `"decision"`) {
			t.Fatalf("schema: %d", r.HTTP)
		}
	})
}

func TestAdminCustomersAndBots(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		r := e.admin("POST", "/admin/v1/customers", `{"name": "initech"}`)
		wantStatus(t, r, 200, api.CodeSuccess)
		var c struct {
			ID int64 `json:"customer_id"`
		}
		r.obj(t, &c)
		wantStatus(t, e.admin("POST", "/admin/v1/customers", `{"name": "initech"}`), 409, api.CodeConflict)
		wantStatus(t, e.admin("POST", "/admin/v1/customers", `{"name": ""}`), 400, api.CodeInvalidInput)
		wantStatus(t, e.admin("POST", "/admin/v1/customers", `{"name": 5}`), 400, api.CodeInvalidInput)
		r = e.admin("POST", "/admin/v1/customers/"+itoa(c.ID)+"/bots", `{"name": "support"}`)
		wantStatus(t, r, 200, api.CodeSuccess)
		var nb struct {
			BotKey string `json:"bot_key"`
			APIKey string `json:"api_key"`
		}
		r.obj(t, &nb)
		wantStatus(t, e.do("GET", "/bot-api/v1.0/customer/"+itoa(c.ID)+"/bot/"+nb.BotKey+"/users?attribute_name=a&attribute_value=b", nb.APIKey, nil), 200, api.CodeSuccess)
		wantStatus(t, e.admin("POST", "/admin/v1/customers/999999/bots", `{"name": "x"}`), 404, api.CodeNotFound)
		r = e.admin("PATCH", "/admin/v1/customers/"+itoa(c.ID), `{"http_rate": 30}`)
		wantStatus(t, r, 200, api.CodeSuccess)
		if !strings.Contains(string(r.Obj), `"http_rate":30`) {
			t.Fatalf("patch = %s", r.Obj)
		}
		wantStatus(t, e.admin("PATCH", "/admin/v1/customers/"+itoa(c.ID), `{"http_rate": 0}`), 400, api.CodeInvalidInput)
		// max_running: set alone, kept when left out, null for the server default; a bad
		// value changes nothing, not even a good setting beside it.
		for _, tc := range []struct {
			body, want, not string
			status          int
		}{
			{`{"max_running": 4}`, `"max_running":4`, "", 200},
			{`{"http_rate": 50}`, `"max_running":4`, "", 200},
			{`{"max_running": 0}`, "", "", 400},
			{`{"max_running": 2.5}`, "", "", 400},
			{`{"max_running": "4"}`, "", "", 400},
			{`{"max_running": 100001}`, "", "", 400},
			{`{"http_rate": 60, "max_running": -1}`, "", "", 400},
			{`{"max_running": null}`, `"http_rate":50`, "max_running", 200},
		} {
			r := e.admin("PATCH", "/admin/v1/customers/"+itoa(c.ID), tc.body)
			if tc.status == 400 {
				wantStatus(t, r, 400, api.CodeInvalidInput)
				continue
			}
			wantStatus(t, r, 200, api.CodeSuccess)
			if !strings.Contains(string(r.Obj), tc.want) || (tc.not != "" && strings.Contains(string(r.Obj), tc.not)) {
				t.Fatalf("PATCH %s = %s", tc.body, r.Obj)
			}
		}
		if got := e.admin("GET", "/admin/v1/customers/"+itoa(c.ID), nil); !strings.Contains(string(got.Obj), `"http_rate":50`) {
			t.Fatalf("a refused PATCH changed the account: %s", got.Obj)
		}
		wantStatus(t, e.admin("PATCH", "/admin/v1/customers/999999", `{"max_running": 4}`), 404, api.CodeNotFound)
		r = e.admin("POST", "/admin/v1/bots", `{"customer": "hooli", "name": "x"}`)
		wantStatus(t, r, 200, api.CodeSuccess)
	})
}

func TestSandboxConversation(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.importFlow(e.a, `{"key": "ask", "start": "q", "nodes": [
  {"id": "q", "type": "input", "text": "Name?", "save_as": "name", "next": "hi"},
  {"id": "hi", "type": "message", "text": "Hi {{name}}"}]}`)
		v := runOf(t, e.do("POST", botPath("v2.0", e.a)+"/flow/ask?wait=true", e.a.APIKey, `{"user.phone_no": "919876543210"}`))
		if v.Status != "waiting" {
			t.Fatalf("run = %+v", v)
		}
		r := e.admin("POST", "/admin/v1/customers/"+itoa(e.a.CustomerID)+"/bots/"+e.a.BotKey+"/sandbox/messages", `{"phone": "+919876543210", "text": "Asha"}`)
		wantStatus(t, r, 200, api.CodeSuccess)
		if !strings.Contains(string(r.Obj), v.RunID) {
			t.Fatalf("sandbox message did not resume %s: %s", v.RunID, r.Obj)
		}
		w := e.do("GET", botPath("v2.0", e.a)+"/runs/"+v.RunID+"?", e.a.APIKey, nil)
		for i := 0; i < 100 && runOf(t, w).Status != "completed"; i++ {
			w = e.do("GET", botPath("v2.0", e.a)+"/runs/"+v.RunID, e.a.APIKey, nil)
		}
		if runOf(t, w).Status != "completed" {
			t.Fatalf("run after reply: %s", w.Obj)
		}
		c := e.do("GET", botPath("v1.0", e.a)+"/channel-user/919876543210/conversations", e.a.APIKey, nil)
		for _, want := range []string{`"Name?"`, `"Asha"`, `"Hi Asha"`, `"sender":"user"`} {
			if !strings.Contains(string(c.Obj), want) {
				t.Fatalf("conversation lacks %s: %s", want, c.Obj)
			}
		}
		wantStatus(t, e.admin("POST", "/admin/v1/customers/"+itoa(e.a.CustomerID)+"/bots/"+e.a.BotKey+"/sandbox/messages", `{"phone": "12", "text": "x"}`), 400, api.CodeInvalidInput)
	})
}
