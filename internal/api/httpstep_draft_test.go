package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/parleyhq/parley/internal/api"
	"github.com/parleyhq/parley/internal/flow"
)

// heard is a target that answers JSON and keeps what each call brought.
type heard struct {
	*httptest.Server
	mu    sync.Mutex
	calls []string // "METHOD path?query token"
}

func newHeard(t *testing.T) *heard {
	t.Helper()
	h := &heard{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.calls = append(h.calls, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("X-Token"))
		h.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"contact": {"tier": "gold", "plan": "pro"}}`)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *heard) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

// TestHTTPStepTestDraft: the builder's Test calls the node as drafted, before it is
// published and even in a flow never published, with stored secrets lent by the
// published node; it logs nothing; a node that is not valid is a 400 and calls nothing.
func TestHTTPStepTestDraft(t *testing.T) {
	eachStepEnv(t, func(t *testing.T, e *env) {
		target := newHeard(t)
		e.importFlow(e.a, fmt.Sprintf(`{"key": "lookup", "start": "call", "nodes": [
			{"id": "call", "type": "http", "method": "GET", "url": "%s/v1/contacts?phone={{user.phone_no}}",
			 "headers": {"X-Token": "stored-secret"}, "secret_headers": ["X-Token"], "next": "done"},
			{"id": "done", "type": "end"}]}`, target.URL))
		draftNode := func(id, path, token string) map[string]any {
			return map[string]any{"id": id, "type": "http", "method": "POST", "url": target.URL + path,
				"headers": map[string]string{"X-Token": token}, "secret_headers": []string{"X-Token"},
				"save": map[string]string{"plan": "contact.plan"}, "next": "somewhere-else"}
		}
		type result struct {
			Request struct {
				Method  string              `json:"method"`
				URL     string              `json:"url"`
				Headers map[string][]string `json:"headers"`
			} `json:"request"`
			Failed     bool              `json:"failed"`
			Error      string            `json:"error"`
			Attributes map[string]string `json:"attributes"`
			LogID      int64             `json:"log_id"`
		}
		test := func(flowKey, nodeID string, node map[string]any) result {
			t.Helper()
			r := e.admin("POST", nodePath(e.a, flowKey, nodeID)+"/test", map[string]any{"attributes": map[string]any{"id": 7}, "node": node})
			wantStatus(t, r, 200, api.CodeSuccess)
			var res result
			r.obj(t, &res)
			return res
		}

		// The published node's draft, changed: its stored secret goes with the call, and
		// the answer does not show it.
		res := test("lookup", "call", draftNode("call", "/v2/contacts/{{id}}", flow.RedactedSecret))
		if res.Failed || res.Request.Method != "POST" || res.Request.URL != target.URL+"/v2/contacts/7" || res.LogID != 0 ||
			res.Attributes["plan"] != "pro" || strings.Contains(fmt.Sprint(res.Request.Headers), "stored-secret") {
			t.Fatalf("draft test of a published node: %+v", res)
		}
		// A secret typed in the builder is used as typed.
		test("lookup", "call", draftNode("call", "/v3", "typed-secret"))
		// A flow never published, with its secret typed in.
		test("fresh", "hook", draftNode("hook", "/fresh", "new-secret"))
		want := []string{"POST /v2/contacts/7 stored-secret", "POST /v3 typed-secret", "POST /fresh new-secret"}
		if got := target.all(); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("the target heard %q, want %q", got, want)
		}
		// A stored secret the published flow does not have: the call is not made.
		res = test("fresh", "hook", draftNode("hook", "/fresh", flow.RedactedSecret))
		if !res.Failed || !strings.Contains(res.Error, "no value of this secret is saved or published yet") {
			t.Fatalf("draft test with a secret not stored: %+v", res)
		}

		// Draft tests leave the published node's logs and state alone.
		r := e.admin("GET", nodePath(e.a, "lookup", "call")+"/logs", nil)
		wantStatus(t, r, 200, api.CodeSuccess)
		var logs stepLogs
		r.obj(t, &logs)
		if len(logs.Logs) != 0 {
			t.Fatalf("draft tests were logged: %s", r.Obj)
		}

		for _, tc := range []struct {
			name, path string
			node       any
		}{
			{"not an http node", nodePath(e.a, "lookup", "call"), map[string]any{"id": "call", "type": "end"}},
			{"another node's id", nodePath(e.a, "lookup", "other"), draftNode("call", "/x", "t")},
			{"a bad url", nodePath(e.a, "lookup", "call"), map[string]any{"id": "call", "type": "http", "method": "GET", "url": "nowhere"}},
			{"an unknown member", nodePath(e.a, "lookup", "call"), map[string]any{"id": "call", "type": "http", "method": "GET", "url": target.URL, "retry": 1}},
			{"not an object", nodePath(e.a, "lookup", "call"), []string{"http"}},
			{"a bad flow key", nodePath(e.a, "a b", "call"), draftNode("call", "/x", "t")},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.admin("POST", tc.path+"/test", map[string]any{"node": tc.node})
				wantStatus(t, r, 400, api.CodeInvalidInput)
				if r.Status.Details == "" {
					t.Fatalf("no details: %+v", r.Status)
				}
			})
		}
		if n := len(target.all()); n != 3 {
			t.Fatalf("the target was called %d times, want 3", n)
		}
	})
}
