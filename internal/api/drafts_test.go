package api_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/api"
)

// layoutFlow is orderFlow as the flow builder saves it: with node positions and a
// viewport, which runs ignore.
var layoutFlow = strings.Replace(orderFlow, `"key": "order_update",`, `"key": "order_update",
  "layout": {"nodes": {"tier": {"x": 0, "y": 40.5}, "vip": {"x": 260, "y": -12}, "done": {"x": 1200, "y": 0}},
             "viewport": {"x": -20, "y": 10, "zoom": 0.75}},`, 1)

func TestFlowLayoutRoundTrip(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		flows := "/admin/v1/customers/" + itoa(e.a.CustomerID) + "/bots/" + e.a.BotKey + "/flows"
		wantStatus(t, e.admin("POST", flows, layoutFlow), 200, api.CodeSuccess)
		exported := e.admin("GET", flows+"/order_update", nil).Body
		var in, out map[string]any
		if err := json.Unmarshal([]byte(layoutFlow), &in); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(exported, &out); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(in, out) {
			t.Fatalf("export differs from import:\n in  %v\n out %v", in, out)
		}
		// Runs ignore the layout.
		r := e.do("POST", botPath("v2.0", e.a)+"/flow/order_update?wait=true", e.a.APIKey,
			map[string]string{"user.phone_no": "919876543210", "user_type": "vip", "order_id": "9"})
		wantStatus(t, r, 200, api.CodeSuccess)
		if !strings.Contains(string(r.Obj), `"status":"completed"`) || !strings.Contains(string(r.Obj), `"node":"vip"`) {
			t.Fatalf("run with a layout = %s", r.Obj)
		}
		// A layout that is not one is refused like any other mistake.
		for _, bad := range []string{
			`"layout": {"nodes": {"tier": {"x": "left"}}},`,
			`"layout": {"viewport": {"x": 0, "y": 0, "zoom": 0}},`,
			`"layout": {"grid": true},`,
		} {
			r := e.admin("POST", flows, strings.Replace(orderFlow, `"key": "order_update",`, `"key": "order_update", `+bad, 1))
			wantStatus(t, r, 400, api.CodeInvalidInput)
		}
	})
}

func TestFlowDraftsPublishRestore(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		acme := e.a.CustomerID
		e.consoleUser("ann@acme.example", &acme)
		b := e.browser()
		b.signIn(map[string]string{"email": "ann@acme.example", "password": "correct horse battery"})
		bot := "/admin/v1/customers/" + itoa(acme) + "/bots/" + e.a.BotKey
		type draftAnswer struct {
			FlowKey   string `json:"flow_key"`
			Name      string `json:"name"`
			UpdatedBy string `json:"updated_by"`
			Valid     bool   `json:"valid"`
			Errors    []struct {
				Node    string `json:"node"`
				Message string `json:"message"`
			} `json:"errors"`
		}
		// A new flow starts as an invalid draft: saved anyway, with its problems named.
		unfinished := `{"name": "Order update", "start": "tier", "nodes": [{"id": "tier", "type": "decision", "branches": [], "else": "ghost"}]}`
		r := b.do("PUT", bot+"/flows/order_update/draft", unfinished)
		wantStatus(t, r, 200, api.CodeSuccess)
		var d draftAnswer
		r.obj(t, &d)
		if d.FlowKey != "order_update" || d.Valid || len(d.Errors) == 0 || d.Errors[0].Node != "tier" || d.UpdatedBy != "ann@acme.example" {
			t.Fatalf("draft = %s", r.Obj)
		}
		// It is not a flow yet: nothing can run it.
		wantStatus(t, e.do("POST", botPath("v2.0", e.a)+"/flow/order_update", e.a.APIKey, map[string]string{"user.phone_no": "919876543210"}), 404, api.CodeNotFound)
		r = b.do("GET", bot+"/drafts", nil)
		if !strings.Contains(string(r.Obj), `"flow_key":"order_update"`) {
			t.Fatalf("drafts = %s", r.Obj)
		}
		// The draft reads back with the path's key filled in.
		r = b.do("GET", bot+"/flows/ORDER_UPDATE/draft", nil)
		if r.HTTP != 200 || !strings.Contains(string(r.Body), `"key":"order_update"`) || !strings.Contains(string(r.Body), "ghost") {
			t.Fatalf("draft read back: %d %s", r.HTTP, r.Body)
		}
		// Publishing it is refused with the same problems, and changes nothing.
		r = b.do("POST", bot+"/flows/order_update/publish", nil)
		wantStatus(t, r, 400, api.CodeInvalidInput)
		var refusal struct {
			Status api.Status `json:"status"`
			Errors []struct {
				Node string `json:"node"`
			} `json:"errors"`
		}
		if err := json.Unmarshal(r.Body, &refusal); err != nil || refusal.Status.Desc != "INVALID_FLOW" || len(refusal.Errors) == 0 || refusal.Errors[0].Node != "tier" {
			t.Fatalf("publish invalid = %s", r.Body)
		}
		wantStatus(t, b.do("GET", bot+"/flows/order_update/versions", nil), 404, api.CodeNotFound)
		// A document whose key is another flow's is refused; the draft stays.
		wantStatus(t, b.do("PUT", bot+"/flows/order_update/draft", `{"key": "other", "start": "a", "nodes": []}`), 400, api.CodeInvalidInput)
		wantStatus(t, b.do("PUT", bot+"/flows/order_update/draft", `[1, 2]`), 400, api.CodeInvalidInput)
		wantStatus(t, b.do("PUT", bot+"/flows/bad%20key/draft", `{}`), 400, api.CodeInvalidInput)

		// Finished, it publishes as version 1, and the draft is gone.
		r = b.do("PUT", bot+"/flows/order_update/draft", strings.Replace(layoutFlow, `"key": "order_update",`, ``, 1))
		r.obj(t, &d)
		if !d.Valid || len(d.Errors) != 0 {
			t.Fatalf("finished draft = %s", r.Obj)
		}
		r = b.do("POST", bot+"/flows/order_update/publish", nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		if !strings.Contains(string(r.Obj), `"version":1`) {
			t.Fatalf("publish = %s", r.Obj)
		}
		wantStatus(t, b.do("GET", bot+"/flows/order_update/draft", nil), 404, api.CodeNotFound)
		wantStatus(t, b.do("POST", bot+"/flows/order_update/publish", nil), 404, api.CodeNotFound)
		// A run starts on version 1.
		r = e.do("POST", botPath("v2.0", e.a)+"/flow/order_update?wait=true", e.a.APIKey, map[string]string{"user.phone_no": "919876543210", "user_type": "vip"})
		var run struct {
			RunID       string `json:"run_id"`
			FlowVersion int    `json:"flow_version"`
			Status      string `json:"status"`
		}
		r.obj(t, &run)
		if run.FlowVersion != 1 || run.Status != "completed" {
			t.Fatalf("run = %s", r.Obj)
		}
		// Version 2 renames the flow; the key stays.
		renamed := strings.Replace(layoutFlow, `"name": "Order update"`, `"name": "Shipping news"`, 1)
		wantStatus(t, b.do("PUT", bot+"/flows/order_update/draft", renamed), 200, api.CodeSuccess)
		wantStatus(t, b.do("POST", bot+"/flows/order_update/publish", nil), 200, api.CodeSuccess)
		// Restoring version 1 makes version 3, published by whoever restored it.
		r = b.do("POST", bot+"/flows/order_update/versions/1/restore", nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		if !strings.Contains(string(r.Obj), `"version":3`) || !strings.Contains(string(r.Obj), `"name":"Order update"`) || !strings.Contains(string(r.Obj), `"flow_key":"order_update"`) {
			t.Fatalf("restore = %s", r.Obj)
		}
		v1 := b.do("GET", bot+"/flows/order_update/versions/1", nil).Body
		v3 := b.do("GET", bot+"/flows/order_update/versions/3", nil).Body
		if string(v1) != string(v3) {
			t.Fatalf("version 3 is not version 1:\n%s\n%s", v1, v3)
		}
		r = b.do("GET", bot+"/flows/order_update/versions", nil)
		if !strings.Contains(string(r.Obj), `"current_version":3`) || strings.Count(string(r.Obj), `"published_by":"ann@acme.example"`) != 3 {
			t.Fatalf("versions = %s", r.Obj)
		}
		wantStatus(t, b.do("POST", bot+"/flows/order_update/versions/9/restore", nil), 404, api.CodeNotFound)
		// The run still says version 1.
		r = e.admin("GET", bot+"/runs/"+run.RunID, nil)
		if !strings.Contains(string(r.Obj), `"flow_version":1`) {
			t.Fatalf("run after restore = %s", r.Obj)
		}
		// Deleting a draft.
		wantStatus(t, b.do("PUT", bot+"/flows/scratch/draft", `{}`), 200, api.CodeSuccess)
		wantStatus(t, b.do("DELETE", bot+"/flows/scratch/draft", nil), 200, api.CodeSuccess)
		wantStatus(t, b.do("DELETE", bot+"/flows/scratch/draft", nil), 404, api.CodeNotFound)
	})
}
