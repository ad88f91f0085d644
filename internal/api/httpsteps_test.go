package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/api"
	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/engine"
	"github.com/parleyhq/parley/internal/httpstep"
	"github.com/parleyhq/parley/internal/store"
)

// withHTTPSteps enables http steps (loopback allowed, no alert mail), as the server does.
func withHTTPSteps(t *testing.T, cfg *engine.Config, deps *api.Deps) {
	client, err := httpstep.NewClient(httpstep.Options{Allow: []string{"127.0.0.1/32"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	svc, err := httpstep.NewService(httpstep.Config{Store: deps.Store, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	cfg.HTTP, deps.HTTPSteps = svc, svc
}

func eachStepEnv(t *testing.T, fn func(t *testing.T, e *env)) { each(t, fn, withHTTPSteps) }

// crm is a JSON target whose answer the test sets.
type crm struct {
	*httptest.Server
	body atomic.Pointer[string]
	hits atomic.Int64
}

func newCRM(t *testing.T, body string) *crm {
	t.Helper()
	c := &crm{}
	c.body.Store(&body)
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, strings.ReplaceAll(*c.body.Load(), "$PHONE", r.URL.Query().Get("phone")))
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *crm) answer(body string) { c.body.Store(&body) }

func stepFlow(targetURL string) string {
	return fmt.Sprintf(`{"key": "lookup", "start": "call", "nodes": [
		{"id": "call", "type": "http", "name": "CRM", "method": "GET", "url": "%s/contacts?phone={{user.phone_no}}",
		 "headers": {"Authorization": "Bearer crm-secret"}, "save": {"tier": "contact.tier"}, "next": "done"},
		{"id": "done", "type": "end"}]}`, targetURL)
}

// nodePath is the admin path of node id of bot nb's flow.
func nodePath(nb auth.NewBot, flowKey, id string) string {
	return fmt.Sprintf("/admin/v1/customers/%d/bots/%s/flows/%s/nodes/%s", nb.CustomerID, nb.BotKey, flowKey, id)
}

type stepState struct {
	StructureChanged bool       `json:"structure_changed"`
	Message          string     `json:"message"`
	Shape            []string   `json:"shape"`
	Calls            int64      `json:"calls"`
	LastAlertAt      *time.Time `json:"last_alert_at"`
	AlertEmails      []string   `json:"alert_emails"`
}

type stepLogs struct {
	Logs []struct {
		ID      int64  `json:"id"`
		Test    bool   `json:"test"`
		RunID   string `json:"run_id"`
		Status  int    `json:"status"`
		Failed  bool   `json:"failed"`
		Error   string `json:"error"`
		Message string `json:"message"`
		URL     string `json:"url"`
	} `json:"logs"`
	StructureChanged bool   `json:"structure_changed"`
	Message          string `json:"message"`
}

func TestHTTPStepTestEndpoint(t *testing.T) {
	eachStepEnv(t, func(t *testing.T, e *env) {
		target := newCRM(t, `{"contact": {"phone": "$PHONE", "tier": "gold"}, "tags": ["a", "b"]}`)
		e.importFlow(e.a, stepFlow(target.URL))
		node := nodePath(e.a, "lookup", "call")

		// Before any call: an empty state and no logs.
		r := e.admin("GET", node, nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		var st stepState
		r.obj(t, &st)
		if st.Calls != 0 || st.StructureChanged || len(st.Shape) != 0 {
			t.Fatalf("state before any call: %s", r.Obj)
		}

		r = e.admin("POST", node+"/test", map[string]any{"attributes": map[string]any{"user.phone_no": "+91 98765", "n": 7, "ok": true, "x": nil}})
		wantStatus(t, r, 200, api.CodeSuccess)
		var res struct {
			Request struct {
				Method  string              `json:"method"`
				URL     string              `json:"url"`
				Headers map[string][]string `json:"headers"`
			} `json:"request"`
			Response struct {
				Status int    `json:"status"`
				Body   string `json:"body"`
			} `json:"response"`
			StartedAt  time.Time         `json:"started_at"`
			DurationMS float64           `json:"duration_ms"`
			Failed     bool              `json:"failed"`
			Leaves     map[string]string `json:"leaves"`
			Attributes map[string]string `json:"attributes"`
			LogID      int64             `json:"log_id"`
		}
		r.obj(t, &res)
		if res.Failed || res.Request.Method != "GET" || res.Request.URL != target.URL+"/contacts?phone=%2B91+98765" ||
			res.Request.Headers["Authorization"][0] != "Bearer crm-secret" || res.Response.Status != 200 ||
			!strings.Contains(res.Response.Body, `"tier": "gold"`) || res.StartedAt.IsZero() || res.DurationMS <= 0 ||
			res.Leaves["contact.phone"] != "+91 98765" || res.Leaves["tags.1"] != "b" || res.LogID != 1 {
			t.Fatalf("test result: %s", r.Obj)
		}
		if len(res.Attributes) != 1 || res.Attributes["tier"] != "gold" {
			t.Fatalf("attributes save would set: %v", res.Attributes)
		}
		// An empty body tests with no attributes.
		r = e.admin("POST", node+"/test", "")
		wantStatus(t, r, 200, api.CodeSuccess)

		// The logs list both tests, newest first; one in full is redacted.
		r = e.admin("GET", node+"/logs", nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		var logs stepLogs
		r.obj(t, &logs)
		if len(logs.Logs) != 2 || logs.Logs[0].ID != 2 || !logs.Logs[0].Test || logs.Logs[1].Status != 200 || logs.StructureChanged {
			t.Fatalf("logs: %s", r.Obj)
		}
		r = e.admin("GET", node+"/logs/1", nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		if strings.Contains(string(r.Obj), "crm-secret") || !strings.Contains(string(r.Obj), httpstep.Redacted) {
			t.Fatalf("log 1 is not redacted: %s", r.Obj)
		}
		r = e.admin("GET", node+"/", nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		r.obj(t, &st)
		if st.Calls != 2 || len(st.Shape) == 0 {
			t.Fatalf("state after the tests: %s", r.Obj)
		}
	})
}

func TestHTTPStepEndpointErrors(t *testing.T) {
	eachStepEnv(t, func(t *testing.T, e *env) {
		target := newCRM(t, `{}`)
		e.importFlow(e.a, stepFlow(target.URL))
		node := nodePath(e.a, "lookup", "call")
		for _, tc := range []struct {
			name   string
			method string
			path   string
			body   any
			http   int
			code   int
			desc   string
		}{
			{"unknown flow", "GET", nodePath(e.a, "nope", "call"), nil, 404, api.CodeNotFound, "FLOW_NOT_FOUND"},
			{"unknown node", "POST", nodePath(e.a, "lookup", "nope") + "/test", `{}`, 404, api.CodeNotFound, "NODE_NOT_FOUND"},
			{"not an http node", "GET", nodePath(e.a, "lookup", "done") + "/logs", nil, 400, api.CodeInvalidInput, "INVALID_INPUT"},
			{"another bot's flow", "GET", nodePath(e.b, "lookup", "call"), nil, 404, api.CodeNotFound, "FLOW_NOT_FOUND"},
			{"bot of another customer", "GET", strings.Replace(node, fmt.Sprint(e.a.CustomerID), fmt.Sprint(e.c.CustomerID), 1), nil,
				400, api.CodeInvalidBotOrCustomer, "INVALID_BOT_OR_CUSTOMER_ID"},
			{"customer not a number", "GET", strings.Replace(node, fmt.Sprint(e.a.CustomerID), "x", 1), nil, 400, api.CodeInvalidInput, "INVALID_INPUT"},
			{"body not JSON", "POST", node + "/test", `{"attributes":`, 400, api.CodeInvalidInput, "INVALID_INPUT"},
			{"unknown member", "POST", node + "/test", `{"attrs": {"a": "1"}}`, 400, api.CodeInvalidInput, "INVALID_INPUT"},
			{"attributes not an object", "POST", node + "/test", `{"attributes": [1]}`, 400, api.CodeInvalidInput, "INVALID_INPUT"},
			{"nested attribute", "POST", node + "/test", `{"attributes": {"a": {"b": 1}}}`, 400, api.CodeInvalidInput, "INVALID_INPUT"},
			{"bad attribute name", "POST", node + "/test", `{"attributes": {"a b": "1"}}`, 400, api.CodeInvalidInput, "INVALID_INPUT"},
			{"attribute with NUL", "POST", node + "/test", `{"attributes": {"a": "x\u0000"}}`, 400, api.CodeInvalidInput, "INVALID_INPUT"},
			{"two values", "POST", node + "/test", `{} {}`, 400, api.CodeInvalidInput, "INVALID_INPUT"},
			{"log id not a number", "GET", node + "/logs/abc", nil, 400, api.CodeInvalidInput, "INVALID_INPUT"},
			{"log id zero", "GET", node + "/logs/0", nil, 400, api.CodeInvalidInput, "INVALID_INPUT"},
			{"no such log", "GET", node + "/logs/99", nil, 404, api.CodeNotFound, "NOT_FOUND"},
			{"huge log id", "GET", node + "/logs/99999999999999999999", nil, 400, api.CodeInvalidInput, "INVALID_INPUT"},
			{"wrong method", "DELETE", node + "/remap", nil, 405, api.CodeMethodNotAllowed, "METHOD_NOT_ALLOWED"},
			{"unknown action", "POST", node + "/frobnicate", nil, 404, api.CodeNotFound, "NOT_FOUND"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.admin(tc.method, tc.path, tc.body)
				wantStatus(t, r, tc.http, tc.code)
				if r.Status.Desc != tc.desc || r.Status.Details == "" {
					t.Fatalf("status %+v; want desc %s with details", r.Status, tc.desc)
				}
			})
		}
		// Without the admin token: 401.
		r := e.do("GET", node, "", nil)
		wantStatus(t, r, 401, api.CodeUnauthorized)
		if target.hits.Load() != 0 {
			t.Fatalf("refused requests reached the target %d times", target.hits.Load())
		}
	})
}

// TestHTTPStepEndpointsDisabled: a server built without the service answers 503.
func TestHTTPStepEndpointsDisabled(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.importFlow(e.a, stepFlow("http://127.0.0.1:1"))
		r := e.admin("POST", nodePath(e.a, "lookup", "call")+"/test", `{}`)
		wantStatus(t, r, 503, api.CodeUnavailable)
	})
}

func TestHTTPStepStructureRemapAndMailReset(t *testing.T) {
	eachStepEnv(t, func(t *testing.T, e *env) {
		target := newCRM(t, `{"contact": {"tier": "gold"}}`)
		rec := e.importFlow(e.a, stepFlow(target.URL))
		node := nodePath(e.a, "lookup", "call")
		trigger := func(phone string) engine.RunView {
			t.Helper()
			r := e.do("POST", botPath("v2.0", e.a)+"/flow/lookup?wait=true", e.a.APIKey, map[string]any{"user.phone_no": phone})
			wantStatus(t, r, 200, api.CodeSuccess)
			return runOf(t, r)
		}
		if v := trigger("+919800000001"); v.Status != "completed" {
			t.Fatalf("run: %+v", v)
		}
		target.answer(`{"data": {"contact": {"tier": "gold"}}}`)
		if v := trigger("+919800000002"); v.Status != "completed" {
			t.Fatalf("run: %+v", v)
		}
		var st stepState
		r := e.admin("GET", node, nil)
		r.obj(t, &st)
		if !st.StructureChanged || st.Message != httpstep.StructureChanged || st.Calls != 2 {
			t.Fatalf("state after the structure changed: %s", r.Obj)
		}
		var logs stepLogs
		e.admin("GET", node+"/logs", nil).obj(t, &logs)
		if !logs.StructureChanged || logs.Message != httpstep.StructureChanged || logs.Logs[0].Message != httpstep.StructureChanged ||
			logs.Logs[1].Message != "" || logs.Logs[0].RunID == "" || logs.Logs[0].Test {
			t.Fatalf("logs after the structure changed: %+v", logs)
		}
		r = e.admin("POST", node+"/remap", nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		st = stepState{} // members left out of the answer must read as zero
		r.obj(t, &st)
		if st.StructureChanged || st.Message != "" || !strings.Contains(strings.Join(st.Shape, "\n"), "$.data.contact.tier string") {
			t.Fatalf("state after remap: %s", r.Obj)
		}
		if v := trigger("+919800000003"); v.Status != "completed" {
			t.Fatalf("run: %+v", v)
		}
		st = stepState{}
		e.admin("GET", node, nil).obj(t, &st)
		if st.StructureChanged {
			t.Fatalf("flagged again by the remapped structure: %+v", st)
		}

		// Reset Mail Timeout clears a claimed alert.
		k := store.HTTPStep{FlowID: rec.ID, NodeID: "call"}
		now := time.Now().UnixMilli()
		if ok, err := e.st.ClaimHTTPStepAlert(context.Background(), e.st.Writer(), k, now, now-3_600_000); err != nil || !ok {
			t.Fatalf("claim: %v %v", ok, err)
		}
		e.admin("GET", node, nil).obj(t, &st)
		if st.LastAlertAt == nil {
			t.Fatalf("state after an alert: %+v", st)
		}
		r = e.admin("POST", node+"/reset-mail-timeout", nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		st = stepState{}
		r.obj(t, &st)
		if st.LastAlertAt != nil {
			t.Fatalf("state after reset: %s", r.Obj)
		}
	})
}

func TestHTTPStepRateLimitInRuns(t *testing.T) {
	eachStepEnv(t, func(t *testing.T, e *env) {
		target := newCRM(t, `{"contact": {"tier": "gold"}}`)
		e.importFlow(e.a, stepFlow(target.URL))
		r := e.admin("PATCH", fmt.Sprintf("/admin/v1/customers/%d", e.a.CustomerID), map[string]any{"http_rate": 2})
		wantStatus(t, r, 200, api.CodeSuccess)
		var failed []string
		for i := range 4 {
			r := e.do("POST", botPath("v2.0", e.a)+"/flow/lookup?wait=true", e.a.APIKey,
				map[string]any{"user.phone_no": fmt.Sprintf("+9198000000%02d", i)})
			wantStatus(t, r, 200, api.CodeSuccess)
			v := runOf(t, r)
			if v.Status != "completed" { // on_failure defaults to continue
				t.Fatalf("run %d: %+v", i, v)
			}
			if v.Steps[0].Error != "" {
				failed = append(failed, v.Steps[0].Error)
			}
		}
		if len(failed) != 2 || failed[0] != httpstep.RateLimited || target.hits.Load() != 2 {
			// The minute may have turned between the calls: then more got through.
			if target.hits.Load() > 2 && time.Now().Second() < 5 {
				t.Skipf("the minute turned during the test (%d calls reached the target)", target.hits.Load())
			}
			t.Fatalf("failed steps %q and %d calls reached the target; want 2 %q and 2", failed, target.hits.Load(), httpstep.RateLimited)
		}
		var logs stepLogs
		e.admin("GET", nodePath(e.a, "lookup", "call")+"/logs", nil).obj(t, &logs)
		if len(logs.Logs) != 4 || logs.Logs[0].Error != httpstep.RateLimited || !logs.Logs[0].Failed {
			b, _ := json.Marshal(logs)
			t.Fatalf("logs: %s", b)
		}
	})
}
