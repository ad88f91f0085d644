package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
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
		{"authorization=Basic%20abc&user.phone_no=1", "authorization=REDACTED&user.phone_no=1"},
		{"hub.verify_token=s3cret&hub.challenge=1", "hub.challenge=1&hub.verify_token=REDACTED"},
		{"api_key=1&x=2", "api_key=REDACTED&x=2"},
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
