package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestPanicIsAnEnvelope500(t *testing.T) {
	s := New(Deps{})
	s.mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("kaboom") })
	srv := httptest.NewServer(s)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/boom")
	if err != nil {
		t.Fatalf("the connection was dropped: %v", err)
	}
	defer res.Body.Close()
	var body envelope
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 500 || body.Status.Code != CodeInternal || strings.Contains(body.Status.Details, "kaboom") {
		t.Fatalf("got %d %+v; want a 500 envelope that does not leak the panic", res.StatusCode, body)
	}
	// The server goes on serving.
	if res, err := http.Get(srv.URL + "/healthz"); err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz after a panic: %v %v", res, err)
	}
}

func TestRedactQuery(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"authorization=Basic%20abc&user.phone_no=%2B919876543210", "authorization=REDACTED&user.phone_no=%2B%2A%2A%2A%2A%2A%2A%2A%2A3210"},
		{"user_phone_no=919876543210&wait=true", "user_phone_no=%2A%2A%2A%2A%2A%2A%2A%2A3210&wait=true"},
		{"hub.verify_token=s3cret&hub.challenge=1&hub.mode=subscribe", "hub.challenge=REDACTED&hub.mode=subscribe&hub.verify_token=REDACTED"},
		{"api_key=1&x=2", "api_key=REDACTED&x=REDACTED"},
		// Attribute values (trigger v1, users?attribute_value=) are personal data.
		{"attribute_name=email&attribute_value=a%40b.c&page_number=2", "attribute_name=email&attribute_value=REDACTED&page_number=2"},
		{"%zz", "[unparsable query]"},
	}
	for _, tt := range tests {
		if got := redactQuery(tt.in); got != tt.want {
			t.Errorf("redactQuery(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMetricsCountRoutes(t *testing.T) {
	s := New(Deps{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	for range 3 {
		res, err := http.Get(srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	buf := new(strings.Builder)
	_, _ = io.Copy(buf, res.Body)
	for _, want := range []string{
		`parley_http_requests_total{code="200",method="GET",route="GET /healthz"} 3`,
		`parley_http_request_duration_seconds_count{route="GET /healthz"} 3`,
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestMetricMethodsAreBounded: requests with made-up methods, which anyone can send,
// are counted under method="other" and add no label values of their own.
func TestMetricMethodsAreBounded(t *testing.T) {
	s := New(Deps{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	for i := range 50 {
		req, _ := http.NewRequest(fmt.Sprintf("BREW%d", i), srv.URL+"/healthz", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("BREW%d /healthz: HTTP %d, want 405", i, res.StatusCode)
		}
	}
	for _, m := range []string{"GET", "delete"} {
		req, _ := http.NewRequest(m, srv.URL+"/healthz", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	metrics := string(b)
	for _, want := range []string{
		`parley_http_requests_total{code="405",method="other",route="unmatched"} 51`,
		`parley_http_requests_total{code="200",method="GET",route="GET /healthz"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(metrics, "BREW") || strings.Contains(metrics, `"delete"`) {
		t.Errorf("a made-up method became a label:\n%s", metrics)
	}
}

// TestMethodNotAllowedOnEveryRoute: every documented path answers another method with
// 405/1010 in the envelope and an Allow header naming its methods.
func TestMethodNotAllowedOnEveryRoute(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Deps{AdminToken: "x"}))
	defer srv.Close()
	param := regexp.MustCompile(`\{[^}]+\}`)
	for path, ops := range doc.Paths {
		concrete := param.ReplaceAllString(path, "1")
		req, _ := http.NewRequest("TRACE", srv.URL+concrete, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body envelope
		_ = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		allow := res.Header.Get("Allow")
		if res.StatusCode != http.StatusMethodNotAllowed || body.Status.Code != CodeMethodNotAllowed {
			t.Errorf("TRACE %s: HTTP %d %+v, want 405/1010", path, res.StatusCode, body.Status)
			continue
		}
		for m := range ops {
			if !strings.Contains(allow, strings.ToUpper(m)) {
				t.Errorf("TRACE %s: Allow %q lacks %s", path, allow, strings.ToUpper(m))
			}
		}
	}
}
