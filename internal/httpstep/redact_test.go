package httpstep

import (
	"net/http"
	"testing"
)

func TestRedactHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		keep bool
	}{
		{"Authorization", false},
		{"Proxy-Authorization", false},
		{"Cookie", false},
		{"Set-Cookie", false},
		{"X-Api-Key", false},
		{"Apikey", false},
		{"X-Auth-Token", false},
		{"X-Client-Secret", false},
		{"X-Password", false},
		{"X-Passwd", false},
		{"X-Session-Id", false},
		{"X-Hub-Signature-256", false},
		{"X-TOKEN", false},
		{"Content-Type", true},
		{"Accept", true},
		{"User-Agent", true},
		{"X-Request-Id", true},
		{"Keep-Alive", true},
	}
	for _, tt := range tests {
		h := http.Header{tt.name: {"v1", "v2"}}
		r := &Result{Request: Request{Header: h}, Response: Response{Header: h.Clone()}}
		out := Redact(r)
		for _, got := range []http.Header{out.Request.Header, out.Response.Header} {
			want := []string{Redacted, Redacted}
			if tt.keep {
				want = []string{"v1", "v2"}
			}
			if vs := got[tt.name]; len(vs) != 2 || vs[0] != want[0] || vs[1] != want[1] {
				t.Errorf("%s: redacted to %q, want %q", tt.name, vs, want)
			}
		}
		if h[tt.name][0] != "v1" {
			t.Errorf("%s: Redact changed the original", tt.name)
		}
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"https://api.example.com/o/1?id=7&api_key=abc&Token=x%20y&sig=1",
			"https://api.example.com/o/1?id=7&api_key=[REDACTED]&Token=[REDACTED]&sig=1"},
		{"https://api.example.com/?access%5Ftoken=abc", "https://api.example.com/?access%5Ftoken=[REDACTED]"},
		{"https://api.example.com/?signature", "https://api.example.com/?signature=[REDACTED]"},
		{"https://user:pa%40ss@api.example.com/x?q=1", "https://user:[REDACTED]@api.example.com/x?q=1"},
		{"https://user@api.example.com/x", "https://user@api.example.com/x"},
		{"https://api.example.com/x?q=a+b&page=2", "https://api.example.com/x?q=a+b&page=2"},
		{"", ""},
		{"http://bad host/?token=abc", "http://bad host/?[REDACTED]"},
	}
	for _, tt := range tests {
		r := &Result{Request: Request{URL: tt.in}, Response: Response{URL: tt.in}}
		out := Redact(r)
		if out.Request.URL != tt.want || out.Response.URL != tt.want {
			t.Errorf("Redact(%q) = %q / %q, want %q", tt.in, out.Request.URL, out.Response.URL, tt.want)
		}
		if r.Request.URL != tt.in {
			t.Errorf("Redact changed the original URL")
		}
	}
}

func TestRedactBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, contentType, body, want string
	}{
		{"form fields", "application/x-www-form-urlencoded", "user=ada&password=hunter2&client_secret=s&n=1",
			"user=ada&password=[REDACTED]&client_secret=[REDACTED]&n=1"},
		{"form with charset", "application/x-www-form-urlencoded; charset=utf-8", "refresh_token=abc", "refresh_token=[REDACTED]"},
		{"json is left alone", "application/json", `{"password":"x"}`, `{"password":"x"}`},
		{"raw is left alone", "text/plain", "password=x", "password=x"},
	}
	for _, tt := range tests {
		r := &Result{Request: Request{Header: http.Header{"Content-Type": {tt.contentType}}, Body: tt.body}}
		if got := Redact(r).Request.Body; got != tt.want {
			t.Errorf("%s: body %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestRedactKeepsTheRest(t *testing.T) {
	t.Parallel()
	r := &Result{Request: Request{Method: "POST"}, Response: Response{Status: 503, Body: "down"},
		Failed: true, ErrorKind: KindStatus, Error: "HTTP 503 Service Unavailable",
		Leaves: map[string]string{"a": "1"}, Shape: "$ object", MappingError: MappingNotDone}
	out := Redact(r)
	if out == r || out.Request.Method != "POST" || out.Response.Status != 503 || out.Response.Body != "down" ||
		!out.Failed || out.ErrorKind != KindStatus || out.Error != r.Error || out.Leaves["a"] != "1" ||
		out.Shape != r.Shape || out.MappingError != r.MappingError {
		t.Errorf("Redact = %+v", out)
	}
	out.Leaves["a"] = "changed"
	if r.Leaves["a"] != "1" {
		t.Error("the copy shares its leaves with the original")
	}
	if Redact(nil) != nil {
		t.Error("Redact(nil) != nil")
	}
}
