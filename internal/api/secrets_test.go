package api_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/parleyhq/parley/internal/api"
)

var (
	saOnce sync.Once
	saPEM  string
)

// serviceAccountKey is a Google service-account key (as a JSON object) whose token_uri
// is tokenURL.
func serviceAccountKey(t *testing.T, tokenURL string) map[string]any {
	t.Helper()
	saOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		saPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	})
	return map[string]any{"type": "service_account", "project_id": "p", "private_key_id": "k1", "private_key": saPEM,
		"client_email": "rbm@p.iam.gserviceaccount.com", "token_uri": tokenURL}
}

// TestRCSServiceAccountAdmin: the agent's service-account key set through the admin API
// (as an object or a string) mints the tokens RBM accepts; it is never shown back.
func TestRCSServiceAccountAdmin(t *testing.T) {
	eachChannel(t, func(t *testing.T, e *env) {
		var minted atomic.Int32
		tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ParseForm() != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
				http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
				return
			}
			minted.Add(1)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, rbmToken)
		}))
		t.Cleanup(tokens.Close)
		rbm := newFakeRBM(t, "+919812300001")
		key := serviceAccountKey(t, tokens.URL)
		path := channelPath(e.a, "rcs")

		r := e.admin("PUT", path, map[string]any{"adapter": "rcs", "base_url": rbm.URL, "agent_id": rbmAgent,
			"client_token": rbmClient, "service_account_json": key})
		wantStatus(t, r, 200, api.CodeSuccess)
		var v struct {
			Config   map[string]any `json:"config"`
			Warnings []string       `json:"warnings"`
		}
		r.obj(t, &v)
		if v.Config["service_account_json"] != "**** service account rbm@p.iam.gserviceaccount.com" || len(v.Warnings) != 0 {
			t.Fatalf("after PUT: %+v", v)
		}
		get := e.admin("GET", path, nil)
		for _, body := range [][]byte{r.Body, get.Body} {
			if strings.Contains(string(body), "PRIVATE KEY") {
				t.Fatalf("the key is shown back: %s", body)
			}
		}
		raw, err := e.st.ChannelConfig(context.Background(), mustBot(t, e, e.a).ID, "rcs")
		if err != nil || strings.Contains(string(raw), "PRIVATE KEY") || strings.Contains(string(raw), rbmClient) {
			t.Fatalf("stored settings: %s, %v", raw, err)
		}

		e.importFlow(e.a, `{"key": "hi", "start": "m", "nodes": [{"id": "m", "type": "message", "text": "hello"}]}`)
		trig := botPath("v2.0", e.a) + "/flow/hi?wait=true"
		run := runOf(t, e.do("POST", trig, e.a.APIKey, `{"user.channel": "rcs", "user.phone_no": "+919812300001"}`))
		if run.Status != "completed" || len(rbm.sent()) != 1 || minted.Load() != 1 {
			t.Fatalf("run %+v; RBM got %d messages after %d mints", run, len(rbm.sent()), minted.Load())
		}

		// Sending the view back keeps the key; the key as a string works too.
		v.Config["rate_per_second"] = 5
		wantStatus(t, e.admin("PUT", path, v.Config), 200, api.CodeSuccess)
		text, _ := json.Marshal(key)
		wantStatus(t, e.admin("PUT", path, map[string]any{"adapter": "rcs", "base_url": rbm.URL, "agent_id": rbmAgent,
			"client_token": rbmClient, "service_account_json": string(text)}), 200, api.CodeSuccess)
		run = runOf(t, e.do("POST", trig, e.a.APIKey, `{"user.channel": "rcs", "user.phone_no": "+919812300001"}`))
		if run.Status != "completed" || len(rbm.sent()) != 2 {
			t.Fatalf("run after the updates %+v", run)
		}

		bad := map[string]any{"adapter": "rcs", "agent_id": rbmAgent}
		for name, tt := range map[string]struct {
			value  any
			detail string
		}{
			"a number":        {42, "service_account_json must be"},
			"not a key":       {map[string]any{"type": "authorized_user"}, `service_account_json: type is "authorized_user"`},
			"a token instead": {"ya29.token", "service_account_json: not a JSON object"},
			"a broken key": {func() map[string]any {
				k := serviceAccountKey(t, tokens.URL)
				k["private_key"] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
				return k
			}(), "private_key is not a PKCS #8 or PKCS #1 RSA key"},
		} {
			bad["service_account_json"] = tt.value
			r := e.admin("PUT", path, bad)
			wantStatus(t, r, 400, api.CodeInvalidInput)
			if !strings.Contains(r.Status.Details, tt.detail) || strings.Contains(string(r.Body), "PRIVATE KEY") {
				t.Errorf("%s: details %q, want %q without the key", name, r.Status.Details, tt.detail)
			}
		}
	})
}

// secretStepFlow calls target with a secret header.
func secretStepFlow(targetURL string) string {
	return fmt.Sprintf(`{"key": "crm", "start": "call", "nodes": [
		{"id": "call", "type": "http", "method": "GET", "url": "%s/contacts",
		 "headers": {"X-Api-Token": "tok-{{tenant}}-s3cr3t", "X-Trace": "t"}, "secret_headers": ["X-Api-Token"], "next": "done"},
		{"id": "done", "type": "end"}]}`, targetURL)
}

// TestFlowSecretHeadersAdmin: a flow's secret header reaches the API it is for, while
// export, re-import and the Test action never show it.
func TestFlowSecretHeadersAdmin(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		target, got := tokenTarget(t)
		wantStatus(t, e.admin("POST", flowsPath(e.a), secretStepFlow(target.URL)), 200, api.CodeSuccess)
		exp := e.admin("GET", flowsPath(e.a)+"/crm", nil)
		if exp.HTTP != 200 || strings.Contains(string(exp.Body), "s3cr3t") || strings.Contains(string(exp.Body), "enc:") ||
			!strings.Contains(string(exp.Body), `"X-Api-Token": "[REDACTED]"`) {
			t.Fatalf("export: HTTP %d %s", exp.HTTP, exp.Body)
		}
		// A builder saves the export back: the secret is kept.
		r := e.admin("POST", flowsPath(e.a), exp.Body)
		wantStatus(t, r, 200, api.CodeSuccess)
		var rec struct {
			Version int `json:"version"`
		}
		r.obj(t, &rec)
		if rec.Version != 2 {
			t.Fatalf("re-import: %s", r.Body)
		}
		run := runOf(t, e.do("POST", botPath("v2.0", e.a)+"/flow/crm?wait=true", e.a.APIKey, `{"user.phone_no": "919812300001", "tenant": "acme"}`))
		if run.Status != "completed" || got.Load() != "tok-acme-s3cr3t" {
			t.Fatalf("run %+v; the API got X-Api-Token %v", run, got.Load())
		}
		test := e.admin("POST", nodePath(e.a, "crm", "call")+"/test", map[string]any{"attributes": map[string]any{"tenant": "t2"}})
		wantStatus(t, test, 200, api.CodeSuccess)
		if got.Load() != "tok-t2-s3cr3t" || strings.Contains(string(test.Body), "s3cr3t") || !strings.Contains(string(test.Body), "[REDACTED]") {
			t.Fatalf("test action: the API got %v; answer %s", got.Load(), test.Body)
		}
		// Another bot has no stored value for the marker: a 400 that names it.
		r = e.admin("POST", flowsPath(e.b), exp.Body)
		wantStatus(t, r, 400, api.CodeInvalidInput)
		if !strings.Contains(r.Status.Details, "headers.X-Api-Token") {
			t.Fatalf("import into another bot: %s", r.Status.Details)
		}
	}, withHTTPSteps)
}
