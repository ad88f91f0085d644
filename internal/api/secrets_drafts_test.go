package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/parleyhq/parley/internal/api"
	"github.com/parleyhq/parley/internal/auth"
)

// TestSecretsOfRestoredVersions: restoring an earlier version keeps its secret header
// as it was, not sealed a second time.
func TestSecretsOfRestoredVersions(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		target, got := tokenTarget(t)
		flows := flowsPath(e.a)
		wantStatus(t, e.admin("POST", flows, secretStepFlow(target.URL)), 200, api.CodeSuccess)
		wantStatus(t, e.admin("POST", flows, strings.Replace(secretStepFlow(target.URL), "s3cr3t", "other", 1)), 200, api.CodeSuccess)
		wantStatus(t, e.admin("POST", flows+"/crm/versions/1/restore", nil), 200, api.CodeSuccess)
		wantStatus(t, e.admin("POST", nodePath(e.a, "crm", "call")+"/test", map[string]any{"attributes": map[string]any{"tenant": "t"}}), 200, api.CodeSuccess)
		if got.Load() != "tok-t-s3cr3t" {
			t.Fatalf("after restoring version 1 the API got X-Api-Token %q", got.Load())
		}
		// A version read back shows the marker, not the sealed value.
		v1 := e.admin("GET", flows+"/crm/versions/1", nil)
		if v1.HTTP != 200 || strings.Contains(string(v1.Body), "enc:") || !strings.Contains(string(v1.Body), `"X-Api-Token": "[REDACTED]"`) {
			t.Fatalf("version 1: HTTP %d %s", v1.HTTP, v1.Body)
		}
		// A sealed value copied out of the database into another bot's flow is a value
		// like any other there: this server does not open it for that bot.
		b, err := e.st.Bot(context.Background(), e.a.CustomerID, e.a.BotKey)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := e.st.FlowByKey(context.Background(), b.ID, "crm")
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Nodes []struct {
				Headers map[string]string `json:"headers"`
			} `json:"nodes"`
		}
		if err := json.Unmarshal(rec.Document, &doc); err != nil {
			t.Fatal(err)
		}
		sealed := doc.Nodes[0].Headers["X-Api-Token"]
		copied := strings.Replace(secretStepFlow(target.URL), "tok-{{tenant}}-s3cr3t", sealed, 1)
		wantStatus(t, e.admin("POST", flowsPath(e.b), copied), 200, api.CodeSuccess)
		wantStatus(t, e.admin("POST", nodePath(e.b, "crm", "call")+"/test", nil), 200, api.CodeSuccess)
		if got.Load() != sealed {
			t.Fatalf("another bot's flow with a copied sealed value sent %q", got.Load())
		}
	}, withHTTPSteps)
}

// TestDraftSecretsSealed: a secret header typed in the builder is stored sealed in its
// draft, read back as the marker, kept through saves of the marker, used by the draft's
// Test before anything is published, and published as typed.
func TestDraftSecretsSealed(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		target, got := tokenTarget(t)
		ctx := context.Background()
		bot := mustBot(t, e, e.a)
		draft := flowsPath(e.a) + "/crm/draft"
		stored := func() string {
			t.Helper()
			d, err := e.st.FlowDraft(ctx, bot.ID, "crm")
			if err != nil {
				t.Fatal(err)
			}
			return string(d.Document)
		}
		wantStatus(t, e.admin("PUT", draft, secretStepFlow(target.URL)), 200, api.CodeSuccess)
		if doc := stored(); strings.Contains(doc, "s3cr3t") || !strings.Contains(doc, `"X-Api-Token":"enc:v1:`) {
			t.Fatalf("stored draft: %s", doc)
		}
		read := e.admin("GET", draft, nil)
		if read.HTTP != 200 || strings.Contains(string(read.Body), "s3cr3t") || strings.Contains(string(read.Body), "enc:") ||
			!strings.Contains(string(read.Body), `"X-Api-Token":"[REDACTED]"`) {
			t.Fatalf("read draft: HTTP %d %s", read.HTTP, read.Body)
		}
		// The builder saves what it read: the sealed value stays.
		sealed := stored()
		wantStatus(t, e.admin("PUT", draft, string(read.Body)), 200, api.CodeSuccess)
		if doc := stored(); !strings.Contains(doc, `"X-Api-Token":"enc:v1:`) || strings.Contains(doc, "[REDACTED]") {
			t.Fatalf("stored draft after saving the marker: %s (was %s)", doc, sealed)
		}
		// Its Test, the flow never published, calls with the typed value.
		var doc struct {
			Nodes []map[string]any `json:"nodes"`
		}
		if err := json.Unmarshal(read.Body, &doc); err != nil {
			t.Fatal(err)
		}
		r := e.admin("POST", nodePath(e.a, "crm", "call")+"/test", map[string]any{"attributes": map[string]any{"tenant": "d"}, "node": doc.Nodes[0]})
		wantStatus(t, r, 200, api.CodeSuccess)
		if got.Load() != "tok-d-s3cr3t" || strings.Contains(string(r.Body), "s3cr3t") {
			t.Fatalf("draft test: the API got %v; answer %s", got.Load(), r.Body)
		}
		wantStatus(t, e.admin("POST", flowsPath(e.a)+"/crm/publish", nil), 200, api.CodeSuccess)
		wantStatus(t, e.admin("POST", nodePath(e.a, "crm", "call")+"/test", map[string]any{"attributes": map[string]any{"tenant": "p"}}), 200, api.CodeSuccess)
		if got.Load() != "tok-p-s3cr3t" {
			t.Fatalf("published draft: the API got X-Api-Token %q", got.Load())
		}
	}, withHTTPSteps)
}

// tokenTarget is an API that keeps the X-Api-Token of the last call it had.
func tokenTarget(t *testing.T) (*httptest.Server, *atomic.Value) {
	t.Helper()
	var got atomic.Value
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("X-Api-Token"))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok": true}`)
	}))
	t.Cleanup(target.Close)
	return target, &got
}

func flowsPath(nb auth.NewBot) string {
	return "/admin/v1/customers/" + itoa(nb.CustomerID) + "/bots/" + nb.BotKey + "/flows"
}
