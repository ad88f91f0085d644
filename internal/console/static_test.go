package console_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/console"
)

func get(t *testing.T, h http.Handler, path string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assets finds the script and stylesheet index.html loads, as a browser would.
func assets(t *testing.T, h http.Handler) (js, css string) {
	t.Helper()
	index := string(body(t, get(t, h, "/console/")))
	m := regexp.MustCompile(`src="(/console/assets/[^"]+\.js)"`).FindStringSubmatch(index)
	n := regexp.MustCompile(`href="(/console/assets/[^"]+\.css)"`).FindStringSubmatch(index)
	if m == nil || n == nil {
		t.Fatalf("index.html names no script or stylesheet under /console/assets/:\n%s", index)
	}
	return m[1], n[1]
}

func TestStatic(t *testing.T) {
	h := console.Static()
	js, css := assets(t, h)
	index := body(t, get(t, h, "/console/"))

	for _, tc := range []struct {
		name, path string
		status     int
		ctype      string
		cache      string
		isIndex    bool
	}{
		{"root", "/console/", 200, "text/html; charset=utf-8", "no-cache", true},
		{"index by name", "/console/index.html", 200, "text/html; charset=utf-8", "no-cache", true},
		{"client route", "/console/customers/10001/bots/0123456789abcdef/runs", 200, "text/html; charset=utf-8", "no-cache", true},
		{"client route with dots", "/console/customers/1/bots/b/users/919876543210.x", 200, "text/html; charset=utf-8", "no-cache", true},
		{"script", js, 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", false},
		{"stylesheet", css, 200, "text/css; charset=utf-8", "public, max-age=31536000, immutable", false},
		{"icon", "/console/favicon.svg", 200, "image/svg+xml", "no-cache", false},
		{"missing asset", "/console/assets/index-gone.js", 404, "text/plain; charset=utf-8", "", false},
		{"outside the prefix", "/elsewhere", 404, "text/plain; charset=utf-8", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := get(t, h, tc.path)
			b := body(t, res)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			if got := res.Header.Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if got := res.Header.Get("Cache-Control"); got != tc.cache {
				t.Errorf("Cache-Control %q, want %q", got, tc.cache)
			}
			if tc.status != 200 {
				return
			}
			if res.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no X-Content-Type-Options: nosniff")
			}
			if got := bytes.Equal(b, index); got != tc.isIndex {
				t.Errorf("served index.html: %v, want %v", got, tc.isIndex)
			}
			csp := res.Header.Get("Content-Security-Policy")
			if tc.isIndex && !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("index.html without a same-origin Content-Security-Policy: %q", csp)
			}
		})
	}
	if !bytes.Contains(index, []byte(`<div id="root">`)) {
		t.Errorf("index.html has no root element:\n%s", index)
	}
}

func TestStaticGzip(t *testing.T) {
	h := console.Static()
	js, _ := assets(t, h)
	plain := get(t, h, js)
	want := body(t, plain)
	if plain.Header.Get("Content-Encoding") != "" {
		t.Fatalf("Content-Encoding %q without Accept-Encoding", plain.Header.Get("Content-Encoding"))
	}
	for _, tc := range []struct {
		accept string
		gz     bool
	}{
		{"gzip, deflate, br", true},
		{"br;q=1.0, gzip;q=0.5", true},
		{"gzip;q=0", false},
		{"identity", false},
	} {
		res := get(t, h, js, "Accept-Encoding", tc.accept)
		b := body(t, res)
		if got := res.Header.Get("Content-Encoding") == "gzip"; got != tc.gz {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", tc.accept, got, tc.gz)
			continue
		}
		if !strings.Contains(res.Header.Get("Vary"), "Accept-Encoding") {
			t.Errorf("Accept-Encoding %q: no Vary: Accept-Encoding", tc.accept)
		}
		if tc.gz {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if b, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
			if res.Header.Get("ETag") == plain.Header.Get("ETag") {
				t.Error("the gzip variant has the identity variant's ETag")
			}
		}
		if !bytes.Equal(b, want) {
			t.Errorf("Accept-Encoding %q: body differs from the plain one", tc.accept)
		}
	}
}

func TestStaticRevalidation(t *testing.T) {
	h := console.Static()
	first := get(t, h, "/console/")
	etag := first.Header.Get("ETag")
	if etag == "" {
		t.Fatal("index.html has no ETag")
	}
	if res := get(t, h, "/console/customers", "If-None-Match", etag); res.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with the current ETag: status %d, want 304", res.StatusCode)
	}
	if res := get(t, h, "/console/", "If-None-Match", `"stale"`); res.StatusCode != http.StatusOK {
		t.Errorf("If-None-Match with another ETag: status %d, want 200", res.StatusCode)
	}
}
