package httpstep

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/flow"
)

// loopback is the allow entry that lets tests reach httptest servers.
var loopback = []string{"127.0.0.1/32"}

func newClient(t testing.TB, opts Options) *Client {
	t.Helper()
	c, err := NewClient(opts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// withHosts makes c resolve the given names to the given addresses and nothing else.
func withHosts(c *Client, hosts map[string][]string) {
	c.lookup = func(_ context.Context, _, host string) ([]netip.Addr, error) {
		addrs, ok := hosts[host]
		if !ok {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		out := make([]netip.Addr, len(addrs))
		for i, a := range addrs {
			out[i] = netip.MustParseAddr(a)
		}
		return out, nil
	}
}

// seenRequest is what the echo server received.
type seenRequest struct {
	Method      string `json:"method"`
	Path        string `json:"path"`
	Query       string `json:"query"`
	ContentType string `json:"content_type"`
	Token       string `json:"token"`
	UserAgent   string `json:"user_agent"`
	Body        string `json:"body"`
}

// echoServer answers every request with a JSON description of it, and keeps the last one
// (HEAD responses have no body to carry it).
func echoServer(t testing.TB) (*httptest.Server, *atomic.Pointer[seenRequest]) {
	t.Helper()
	var last atomic.Pointer[seenRequest]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s := &seenRequest{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			ContentType: r.Header.Get("Content-Type"), Token: r.Header.Get("X-Token"),
			UserAgent: r.UserAgent(), Body: string(body)}
		last.Store(s)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	}))
	t.Cleanup(srv.Close)
	return srv, &last
}

func TestDoMethodsAndBodies(t *testing.T) {
	t.Parallel()
	srv, last := echoServer(t)
	c := newClient(t, Options{Allow: loopback})
	vals := attrs(map[string]string{"id": "7 8", "note": "a \"b\"\nc", "tok": "s3cr3t"})
	tests := []struct {
		method    string
		body      *flow.HTTPBody
		wantQuery string
		wantCT    string
		wantBody  string
	}{
		{"GET", nil, "", "", ""},
		{"GET", &flow.HTTPBody{Mode: "query", Fields: map[string]string{"id": "{{id}}"}}, "id=7+8", "", ""},
		{"HEAD", &flow.HTTPBody{Mode: "query", Fields: map[string]string{"id": "{{id}}"}}, "id=7+8", "", ""},
		{"OPTIONS", &flow.HTTPBody{Mode: "query", Fields: map[string]string{"id": "{{id}}"}}, "id=7+8", "", ""},
		{"DELETE", &flow.HTTPBody{Mode: "query", Fields: map[string]string{"id": "{{id}}"}}, "id=7+8", "", ""},
		{"DELETE", &flow.HTTPBody{Mode: "none"}, "", "", ""},
		{"POST", &flow.HTTPBody{Mode: "json", Content: `{"id":"{{id}}","note":"{{note}}"}`}, "",
			"application/json", `{"id":"7 8","note":"a \"b\"\nc"}`},
		{"POST", &flow.HTTPBody{Mode: "query", Fields: map[string]string{"id": "{{id}}"}}, "",
			"application/x-www-form-urlencoded", "id=7+8"},
		{"PUT", &flow.HTTPBody{Mode: "raw", Content: "id={{id}}", ContentType: "text/csv"}, "", "text/csv", "id=7 8"},
		{"PUT", &flow.HTTPBody{Mode: "json", Content: `[{{id}}]`}, "", "", ""}, // not JSON: Build refuses
		{"PATCH", &flow.HTTPBody{Mode: "json", Content: `{"n":1}`}, "", "application/json", `{"n":1}`},
		{"PATCH", &flow.HTTPBody{Mode: "raw", Content: "{{note}}"}, "", "text/plain; charset=utf-8", "a \"b\"\nc"},
	}
	for _, tt := range tests {
		name := tt.method
		if tt.body != nil {
			name += "/" + tt.body.Mode
		}
		t.Run(name, func(t *testing.T) {
			n := &flow.HTTPNode{ID: "crm", Method: tt.method, URL: srv.URL + "/orders/{{id}}",
				Headers: map[string]string{"X-Token": "{{tok}}"}, Body: tt.body}
			call, err := Build(n, vals)
			if tt.body != nil && tt.body.Content == `[{{id}}]` {
				if err == nil {
					t.Fatalf("Build accepted a body that is not JSON: %s", call.Body)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			last.Store(nil)
			res := c.Do(context.Background(), call, 5*time.Second)
			if res.Failed {
				t.Fatalf("call failed: %s (%s)", res.Error, res.ErrorKind)
			}
			got := last.Load()
			if got == nil {
				t.Fatal("the server saw no request")
			}
			want := seenRequest{Method: tt.method, Path: "/orders/7%208", Query: tt.wantQuery, ContentType: tt.wantCT,
				Token: "s3cr3t", UserAgent: DefaultUserAgent, Body: tt.wantBody}
			if *got != want {
				t.Errorf("server saw %+v\nwant        %+v", *got, want)
			}
			if res.Response.Status != 200 || res.Response.URL != "" {
				t.Errorf("status = %d, response URL %q (no redirect happened)", res.Response.Status, res.Response.URL)
			}
			if res.Request.Method != tt.method || res.Request.Body != tt.wantBody || res.Request.Header.Get("X-Token") != "s3cr3t" {
				t.Errorf("result's request = %+v", res.Request)
			}
			if tt.method == "HEAD" {
				if res.Leaves != nil || res.MappingError != MappingNotDone {
					t.Errorf("HEAD: leaves %v, mapping error %q", res.Leaves, res.MappingError)
				}
				return
			}
			if res.MappingError != "" || res.Leaves["method"] != tt.method || res.Leaves["token"] != "s3cr3t" {
				t.Errorf("mapping: error %q, leaves %v", res.MappingError, res.Leaves)
			}
		})
	}
}

func TestDoResponses(t *testing.T) {
	t.Parallel()
	handler := http.NewServeMux()
	handler.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"customer":{"tier":"gold","points":1200.50},"items":[{"sku":"A1"}]}`)
	})
	handler.HandleFunc("/json-as-text", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "\xef\xbb\xbf [1, {\"a\": true}] \n")
	})
	handler.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html>hello</html>")
	})
	handler.HandleFunc("/fake-json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"a":1} trailing`)
	})
	handler.HandleFunc("/scalar", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `"ok"`)
	})
	handler.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	handler.HandleFunc("/unavailable", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":"down"}`)
	})
	handler.HandleFunc("/missing", func(w http.ResponseWriter, r *http.Request) {
		http.NotFound(w, r)
	})
	handler.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"pad":"%s"}`, strings.Repeat("x", 5000))
	})
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	c := newClient(t, Options{Allow: loopback, MaxResponseBytes: 1024})

	tests := []struct {
		path       string
		wantFailed bool
		wantKind   ErrorKind
		wantError  string
		wantStatus int
		wantMapErr string
		wantLeaves map[string]string
		wantTrunc  bool
	}{
		{path: "/json", wantStatus: 200,
			wantLeaves: map[string]string{"customer.tier": "gold", "customer.points": "1200.50", "items.0.sku": "A1"}},
		{path: "/json-as-text", wantStatus: 200, wantLeaves: map[string]string{"0": "1", "1.a": "true"}},
		{path: "/html", wantStatus: 200, wantMapErr: MappingNotDone},
		{path: "/fake-json", wantStatus: 200, wantMapErr: MappingNotDone},
		{path: "/scalar", wantStatus: 200, wantMapErr: MappingNotDone},
		{path: "/empty", wantStatus: 204, wantMapErr: MappingNotDone},
		{path: "/unavailable", wantStatus: 503, wantFailed: true, wantKind: KindStatus,
			wantError: "HTTP 503 Service Unavailable", wantLeaves: map[string]string{"error": "down"}},
		{path: "/missing", wantStatus: 404, wantFailed: true, wantKind: KindStatus,
			wantError: "HTTP 404 Not Found", wantMapErr: MappingNotDone},
		{path: "/big", wantStatus: 200, wantMapErr: MappingNotDone, wantTrunc: true},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			res := c.Do(context.Background(), &Call{Method: "GET", URL: srv.URL + tt.path}, 5*time.Second)
			if res.Failed != tt.wantFailed || res.ErrorKind != tt.wantKind || res.Error != tt.wantError {
				t.Errorf("failed=%v kind=%q error=%q, want %v %q %q", res.Failed, res.ErrorKind, res.Error,
					tt.wantFailed, tt.wantKind, tt.wantError)
			}
			if res.Response.Status != tt.wantStatus {
				t.Errorf("status = %d, want %d", res.Response.Status, tt.wantStatus)
			}
			if res.MappingError != tt.wantMapErr {
				t.Errorf("mapping error = %q, want %q", res.MappingError, tt.wantMapErr)
			}
			if len(res.Leaves) != len(tt.wantLeaves) {
				t.Errorf("leaves = %v, want %v", res.Leaves, tt.wantLeaves)
			}
			for p, v := range tt.wantLeaves {
				if res.Leaves[p] != v {
					t.Errorf("leaf %s = %q, want %q", p, res.Leaves[p], v)
				}
			}
			if (res.Shape != "") != (tt.wantLeaves != nil) || (res.JSON != nil) != (tt.wantLeaves != nil) {
				t.Errorf("shape %q, JSON %v with leaves %v", res.Shape, res.JSON, tt.wantLeaves)
			}
			if res.Response.Truncated != tt.wantTrunc {
				t.Errorf("truncated = %v, want %v", res.Response.Truncated, tt.wantTrunc)
			}
			if tt.wantTrunc && len(res.Response.Body) != 1024 {
				t.Errorf("truncated body is %d bytes, want 1024", len(res.Response.Body))
			}
			if res.Duration <= 0 {
				t.Errorf("duration = %v", res.Duration)
			}
		})
	}
}

func TestDoTimeout(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, Options{Allow: loopback})
	start := time.Now()
	res := c.Do(context.Background(), &Call{Method: "GET", URL: srv.URL}, 150*time.Millisecond)
	if !res.Failed || res.ErrorKind != KindTimeout || res.Error != "timed out after 150ms" {
		t.Errorf("failed=%v kind=%q error=%q", res.Failed, res.ErrorKind, res.Error)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("the call took %v", elapsed)
	}
}

func TestFormatTimeout(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{5 * time.Second: "5s", MaxTimeout: "60s", 1500 * time.Millisecond: "1.5s"} {
		if got := formatTimeout(d); got != want {
			t.Errorf("formatTimeout(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestDoConnectionRefused(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := newClient(t, Options{Allow: loopback})
	res := c.Do(context.Background(), &Call{Method: "GET", URL: "http://" + addr + "/?token=abc"}, 5*time.Second)
	if !res.Failed || res.ErrorKind != KindConnection || !strings.HasPrefix(res.Error, "connection failed: ") {
		t.Fatalf("failed=%v kind=%q error=%q", res.Failed, res.ErrorKind, res.Error)
	}
	if strings.Contains(res.Error, "abc") {
		t.Errorf("the error repeats the URL's token: %q", res.Error)
	}
}

func TestDoUnknownHost(t *testing.T) {
	t.Parallel()
	c := newClient(t, Options{Allow: loopback})
	withHosts(c, nil)
	res := c.Do(context.Background(), &Call{Method: "GET", URL: "http://nowhere.example/"}, 5*time.Second)
	if !res.Failed || res.ErrorKind != KindConnection || !strings.Contains(res.Error, "nowhere.example") {
		t.Errorf("failed=%v kind=%q error=%q", res.Failed, res.ErrorKind, res.Error)
	}
}

func TestDoInvalidRequest(t *testing.T) {
	t.Parallel()
	c := newClient(t, Options{Allow: loopback})
	for _, call := range []*Call{nil, {Method: "GET", URL: "ftp://h.example/"}, {Method: "BAD METHOD", URL: "http://h.example/"}, {Method: "GET", URL: "http://h.example/\x00"}} {
		res := c.Do(context.Background(), call, time.Second)
		if !res.Failed || res.ErrorKind != KindInvalidRequest {
			t.Errorf("Do(%+v): failed=%v kind=%q error=%q", call, res.Failed, res.ErrorKind, res.Error)
		}
	}
	res := BuildFailure(&flow.HTTPNode{ID: "n", Method: "GET", URL: "{{u}}"}, fmt.Errorf("boom"))
	if !res.Failed || res.ErrorKind != KindInvalidRequest || res.Error != "boom" || res.Request.URL != "{{u}}" {
		t.Errorf("BuildFailure = %+v", res)
	}
}

// counter counts the requests a handler serves.
func counter(h http.HandlerFunc) (http.HandlerFunc, *atomic.Int32) {
	var n atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}, &n
}

func TestDoGuard(t *testing.T) {
	t.Parallel()
	target, hits := counter(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"ok":true}`) })
	srv := httptest.NewServer(target)
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	hostURL := func(host string) string { return fmt.Sprintf("http://%s:%d/", host, port) }

	tests := []struct {
		name      string
		allow     []string
		hosts     map[string][]string
		url       string
		wantError string // "" for success
	}{
		{name: "loopback is blocked by default", url: srv.URL,
			wantError: "blocked: 127.0.0.1 is a loopback address"},
		{name: "allowed by CIDR", allow: []string{"127.0.0.0/8"}, url: srv.URL},
		{name: "allowed by single IP", allow: []string{"127.0.0.1"}, url: srv.URL},
		{name: "another CIDR does not help", allow: []string{"10.0.0.0/8"}, url: srv.URL,
			wantError: "blocked: 127.0.0.1 is a loopback address"},
		{name: "allowed by host name", allow: []string{"CRM.internal."}, hosts: map[string][]string{"crm.internal": {"127.0.0.1"}},
			url: hostURL("crm.internal")},
		{name: "a name not in the list is checked by address",
			allow: []string{"crm.internal"}, hosts: map[string][]string{"other.internal": {"127.0.0.1"}},
			url: hostURL("other.internal"), wantError: "blocked: other.internal (127.0.0.1) is a loopback address"},
		{name: "a name resolving to a private address",
			hosts: map[string][]string{"rebind.example": {"10.0.0.5"}},
			url:   hostURL("rebind.example"), wantError: "blocked: rebind.example (10.0.0.5) is a private address"},
		{name: "only checked addresses of a name are dialled",
			allow: loopback, hosts: map[string][]string{"mixed.example": {"10.0.0.5", "127.0.0.1"}},
			url: hostURL("mixed.example")},
		{name: "IPv4-mapped IPv6 is still loopback",
			hosts: map[string][]string{"mapped.example": {"::ffff:127.0.0.1"}},
			url:   hostURL("mapped.example"), wantError: "blocked: mapped.example (127.0.0.1) is a loopback address"},
		{name: "private IP literal", allow: loopback, url: "http://10.0.0.5/", wantError: "blocked: 10.0.0.5 is a private address"},
		{name: "metadata address", allow: loopback, url: "http://169.254.169.254/latest/",
			wantError: "blocked: 169.254.169.254 is a link-local address"},
		{name: "IPv6 loopback literal", allow: loopback, url: "http://[::1]:1/", wantError: "blocked: ::1 is a loopback address"},
		{name: "unspecified", allow: loopback, url: "http://0.0.0.0:1/", wantError: "blocked: 0.0.0.0 is an unspecified address"},
		{name: "allowed by IP and its port", allow: []string{fmt.Sprintf("127.0.0.1:%d", port)}, url: srv.URL},
		{name: "an IP:port entry allows no other port", allow: []string{fmt.Sprintf("127.0.0.1:%d", port+1)}, url: srv.URL,
			wantError: "blocked: 127.0.0.1 is a loopback address"},
		{name: "allowed by host name and its port", allow: []string{fmt.Sprintf("crm.internal:%d", port)},
			hosts: map[string][]string{"crm.internal": {"127.0.0.1"}}, url: hostURL("crm.internal")},
		{name: "a host:port entry allows no other port", allow: []string{fmt.Sprintf("crm.internal:%d", port+1)},
			hosts: map[string][]string{"crm.internal": {"127.0.0.1"}}, url: hostURL("crm.internal"),
			wantError: "blocked: crm.internal (127.0.0.1) is a loopback address"},
		{name: "a name resolving to 6to4 of a private address",
			hosts: map[string][]string{"six.example": {"2002:a00:5::1"}}, url: hostURL("six.example"),
			wantError: "blocked: six.example (2002:a00:5::1) is a 6to4 address of 10.0.0.5, a private address"},
		{name: "a name resolving to Teredo", hosts: map[string][]string{"teredo.example": {"2001:0:4136:e378:8000:63bf:3fff:fdd2"}},
			url: hostURL("teredo.example"), wantError: "blocked: teredo.example (2001:0:4136:e378:8000:63bf:3fff:fdd2) is a Teredo tunnel address"},
		{name: "a name resolving to local-use NAT64", hosts: map[string][]string{"nat.example": {"64:ff9b:1::a00:5"}},
			url: hostURL("nat.example"), wantError: "blocked: nat.example (64:ff9b:1::a00:5) is a local-use NAT64 address"},
		{name: "a benchmarking address literal", url: "http://198.18.0.1:1/", wantError: "blocked: 198.18.0.1 is a benchmarking address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, Options{Allow: tt.allow})
			if tt.hosts != nil {
				withHosts(c, tt.hosts)
			}
			before := hits.Load()
			res := c.Do(context.Background(), &Call{Method: "GET", URL: tt.url}, 5*time.Second)
			if tt.wantError == "" {
				if res.Failed || res.Leaves["ok"] != "true" {
					t.Fatalf("call failed: %q (%s), leaves %v", res.Error, res.ErrorKind, res.Leaves)
				}
				if hits.Load() != before+1 {
					t.Errorf("the server was not reached")
				}
				return
			}
			if !res.Failed || res.ErrorKind != KindBlocked || res.Error != tt.wantError {
				t.Errorf("failed=%v kind=%q error=%q, want blocked %q", res.Failed, res.ErrorKind, res.Error, tt.wantError)
			}
			if res.Response.Status != 0 {
				t.Errorf("a blocked call has status %d", res.Response.Status)
			}
		})
	}
}

func TestDoRedirects(t *testing.T) {
	t.Parallel()
	target, targetHits := counter(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"reached":"yes"}`) })
	blocked := httptest.NewServer(target) // reached only through 127.0.0.1, which is not allowed
	t.Cleanup(blocked.Close)

	mux := http.NewServeMux()
	mux.HandleFunc("/to-blocked", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, blocked.URL+"/secret", http.StatusFound)
	})
	mux.HandleFunc("/to-metadata", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/hop/{n}", func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscan(r.PathValue("n"), &n)
		if n == 0 {
			fmt.Fprint(w, `{"done":true}`)
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/hop/%d", n-1), http.StatusFound)
	})
	front, frontHits := counter(mux.ServeHTTP)
	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	base := fmt.Sprintf("http://front.example:%d", port)

	c := newClient(t, Options{Allow: []string{"front.example"}})
	withHosts(c, map[string][]string{"front.example": {"127.0.0.1"}})

	tests := []struct {
		path      string
		wantKind  ErrorKind
		wantError string
		wantHits  int32
	}{
		{path: "/to-blocked", wantKind: KindBlocked, wantError: "blocked: 127.0.0.1 is a loopback address", wantHits: 1},
		{path: "/to-metadata", wantKind: KindBlocked, wantError: "blocked: 169.254.169.254 is a link-local address", wantHits: 1},
		{path: "/hop/5", wantHits: 6},
		{path: "/hop/6", wantKind: KindConnection, wantError: "stopped after 5 redirects", wantHits: 6},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			before := frontHits.Load()
			res := c.Do(context.Background(), &Call{Method: "GET", URL: base + tt.path}, 5*time.Second)
			if res.ErrorKind != tt.wantKind || res.Error != tt.wantError || res.Failed != (tt.wantKind != "") {
				t.Errorf("failed=%v kind=%q error=%q, want %q %q", res.Failed, res.ErrorKind, res.Error, tt.wantKind, tt.wantError)
			}
			if got := frontHits.Load() - before; got != tt.wantHits {
				t.Errorf("front server saw %d requests, want %d", got, tt.wantHits)
			}
			if tt.wantKind == "" && res.Response.URL != base+"/hop/0" {
				t.Errorf("response URL = %q", res.Response.URL)
			}
		})
	}
	if n := targetHits.Load(); n != 0 {
		t.Errorf("the blocked server was reached %d times", n)
	}
}

// TestDoRedirectToAnotherHost: a redirect to another origin gets none of the node's
// headers (nor a Referer showing the node's URL); one on the same origin keeps them.
func TestDoRedirectToAnotherHost(t *testing.T) {
	t.Parallel()
	type seen struct {
		path   string
		header http.Header
		body   string
	}
	seenc := make(chan seen, 10)
	record := func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seenc <- seen{r.URL.Path, r.Header.Clone(), string(b)}
		fmt.Fprint(w, `{"ok":true}`)
	}
	other := http.NewServeMux()
	other.HandleFunc("/landing", record)
	otherSrv := httptest.NewServer(other)
	t.Cleanup(otherSrv.Close)

	front := http.NewServeMux()
	frontSrv := httptest.NewServer(front)
	t.Cleanup(frontSrv.Close)
	front.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherSrv.URL+"/landing", http.StatusFound)
	})
	front.HandleFunc("/away-post", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherSrv.URL+"/landing", http.StatusTemporaryRedirect)
	})
	front.HandleFunc("/here", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/landing", http.StatusFound)
	})
	front.HandleFunc("/landing", record)
	other.HandleFunc("/back", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, frontSrv.URL+"/landing", http.StatusFound)
	})
	front.HandleFunc("/away-and-back", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherSrv.URL+"/back", http.StatusFound)
	})

	nodeHeaders := http.Header{"X-Token": {"s3cret"}, "X-Tenant": {"acme"}, "Authorization": {"Bearer abc"},
		"User-Agent": {"Mine/1"}, "Content-Type": {"application/json"}}
	tests := []struct {
		name, method, path string
		body               string
		wantPath           string
		keep               bool // the node's headers arrive
		wantCT             string
	}{
		{"302 to another port", "GET", "/away", "", "/landing", false, ""},
		{"307 re-sends the body to another port", "POST", "/away-post", `{"a":1}`, "/landing", false, "application/json"},
		{"same origin", "GET", "/here", "", "/landing", true, "application/json"},
		{"another origin and back", "GET", "/away-and-back", "", "/landing", true, "application/json"},
	}
	c := newClient(t, Options{Allow: loopback})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := c.Do(context.Background(), &Call{Method: tt.method, URL: frontSrv.URL + tt.path, Header: nodeHeaders.Clone(),
				Body: []byte(tt.body), ContentType: "application/json"}, 5*time.Second)
			if res.Failed {
				t.Fatalf("call failed: %s", res.Error)
			}
			got := <-seenc
			if got.path != tt.wantPath || got.body != tt.body {
				t.Fatalf("landed on %s with body %q", got.path, got.body)
			}
			for _, name := range []string{"X-Token", "X-Tenant", "Authorization"} {
				if has := got.header.Get(name) != ""; has != tt.keep {
					t.Errorf("%s arrived: %v, want %v (headers %v)", name, has, tt.keep, got.header)
				}
			}
			wantUA := "Mine/1"
			if !tt.keep {
				wantUA = DefaultUserAgent
				if ref := got.header.Get("Referer"); ref != "" {
					t.Errorf("the other host got Referer %q", ref)
				}
			}
			if ua := got.header.Get("User-Agent"); ua != wantUA {
				t.Errorf("User-Agent %q, want %q", ua, wantUA)
			}
			if ct := got.header.Get("Content-Type"); ct != tt.wantCT && !(tt.method == "GET" && ct == "") {
				t.Errorf("Content-Type %q, want %q", ct, tt.wantCT)
			}
		})
	}
}

func TestBlockedReason(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"10.0.0.5":                             "a private address",
		"172.16.3.4":                           "a private address",
		"172.31.255.255":                       "a private address",
		"192.168.1.1":                          "a private address",
		"127.0.0.1":                            "a loopback address",
		"127.9.9.9":                            "a loopback address",
		"169.254.169.254":                      "a link-local address",
		"100.64.0.1":                           "a shared (carrier-grade NAT) address",
		"100.127.255.254":                      "a shared (carrier-grade NAT) address",
		"0.0.0.0":                              "an unspecified address",
		"224.0.0.1":                            "a multicast address",
		"239.255.255.250":                      "a multicast address",
		"255.255.255.255":                      "the broadcast address",
		"::":                                   "an unspecified address",
		"::1":                                  "a loopback address",
		"fe80::1":                              "a link-local address",
		"fe80::1%eth0":                         "a link-local address",
		"fc00::1":                              "a private address",
		"fd12:3456::1":                         "a private address",
		"ff02::1":                              "a multicast address",
		"::ffff:10.1.2.3":                      "a private address",
		"64:ff9b::a00:5":                       "a private address", // NAT64 of 10.0.0.5
		"::127.0.0.1":                          "a reserved address",
		"8.8.8.8":                              "",
		"172.32.0.1":                           "",
		"100.128.0.1":                          "",
		"2606:4700::1111":                      "",
		"64:ff9b::808:808":                     "", // NAT64 of 8.8.8.8
		"::ffff:93.184.1.1":                    "",
		"198.18.0.1":                           "a benchmarking address",
		"198.19.255.254":                       "a benchmarking address",
		"198.17.255.255":                       "",
		"198.20.0.1":                           "",
		"2001::1":                              "a Teredo tunnel address",
		"2001:0:4136:e378:8000:63bf:3fff:fdd2": "a Teredo tunnel address",
		"2001:db8::1":                          "", // documentation, not Teredo: 2001::/32 ends at 2001:0:ffff:...
		"2001:1::1":                            "",
		"64:ff9b:1::a00:5":                     "a local-use NAT64 address",
		"64:ff9b:1:ffff::1":                    "a local-use NAT64 address",
		"2002:a00:5::1":                        "a 6to4 address of 10.0.0.5, a private address",
		"2002:7f00:1::":                        "a 6to4 address of 127.0.0.1, a loopback address",
		"2002:a9fe:a9fe::1":                    "a 6to4 address of 169.254.169.254, a link-local address",
		"2002:c612:1::1":                       "a 6to4 address of 198.18.0.1, a benchmarking address",
		"2002:808:808::1":                      "", // 6to4 of 8.8.8.8
	}
	for ip, want := range tests {
		if got := blockedReason(netip.MustParseAddr(ip)); got != want {
			t.Errorf("blockedReason(%s) = %q, want %q", ip, got, want)
		}
	}
}

func TestNewClientAllow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		allow   []string
		wantErr bool
	}{
		{[]string{"127.0.0.1/32", "10.0.0.0/8", "::1/128", "fd00::/8"}, false},
		{[]string{"10.1.2.3", "::1", " crm.internal ", "my_host", "", "  "}, false},
		{[]string{"10.0.0.0/33"}, true},
		{[]string{"10.0.0.0/"}, true},
		{[]string{"not a host"}, true},
		{[]string{"http://crm.internal"}, true},
		{[]string{"crm..internal"}, true},
		{[]string{"crm.internal:8080", "127.0.0.1:9100", "[::1]:9100"}, false},
		{[]string{"crm.internal:0"}, true},
		{[]string{"127.0.0.1:0"}, true},
		{[]string{"crm.internal:http"}, true},
		{[]string{"127.0.0.1:70000"}, true},
		{[]string{"10.0.0.0/8:443"}, true},
		{[]string{"bad host:443"}, true},
	}
	for _, tt := range tests {
		_, err := NewClient(Options{Allow: tt.allow})
		if (err != nil) != tt.wantErr {
			t.Errorf("NewClient(allow %q): error %v, want error %v", tt.allow, err, tt.wantErr)
		}
	}
}

func TestDoUserAgentAndHost(t *testing.T) {
	t.Parallel()
	var gotUA, gotHost atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotUA.Store(r.UserAgent())
		gotHost.Store(r.Host)
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		opts     Options
		header   http.Header
		wantUA   string
		wantHost string
	}{
		{Options{Allow: loopback}, nil, "Parley", srv.Listener.Addr().String()},
		{Options{Allow: loopback, UserAgent: "Acme/2"}, nil, "Acme/2", srv.Listener.Addr().String()},
		{Options{Allow: loopback, UserAgent: "Acme/2"}, http.Header{"User-Agent": {"Mine"}, "Host": {"virtual.example"}}, "Mine", "virtual.example"},
	}
	for _, tt := range tests {
		c := newClient(t, tt.opts)
		res := c.Do(context.Background(), &Call{Method: "GET", URL: srv.URL, Header: tt.header}, time.Second)
		if res.Failed {
			t.Fatal(res.Error)
		}
		if gotUA.Load() != tt.wantUA || gotHost.Load() != tt.wantHost {
			t.Errorf("server saw User-Agent %q, Host %q; want %q, %q", gotUA.Load(), gotHost.Load(), tt.wantUA, tt.wantHost)
		}
		if res.Request.Header.Get("User-Agent") != tt.wantUA {
			t.Errorf("logged User-Agent = %q", res.Request.Header.Get("User-Agent"))
		}
	}
}

func BenchmarkDo(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"customer":{"id":42,"tier":"gold","name":"Ada"},"items":[{"sku":"A1","qty":2},{"sku":"B2","qty":1}],"ok":true}`)
	}))
	b.Cleanup(srv.Close)
	c := newClient(b, Options{Allow: loopback})
	n := &flow.HTTPNode{ID: "crm", Method: "POST", URL: srv.URL + "/orders/{{order_id}}",
		Headers: map[string]string{"X-Token": "{{token}}"},
		Body:    &flow.HTTPBody{Mode: "json", Content: `{"phone":"{{user.phone_no}}","order":"{{order_id}}"}`}}
	vals := attrs(map[string]string{"order_id": "A-100", "token": "t", "user.phone_no": "+15550100"})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		call, err := Build(n, vals)
		if err != nil {
			b.Fatal(err)
		}
		if res := c.Do(ctx, call, 10*time.Second); res.Failed || len(res.Leaves) != 8 {
			b.Fatalf("%s %v", res.Error, res.Leaves)
		}
	}
}
