package api

import (
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestOpenAPIMatchesRoutes checks that every documented path and method reaches a
// handler of its own rather than the catch-all "no such endpoint".
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi.json: %v (version %q)", err, doc.OpenAPI)
	}
	s := New(Deps{})
	param := regexp.MustCompile(`\{[^}]+\}`)
	n := 0
	for path, ops := range doc.Paths {
		concrete := param.ReplaceAllString(path, "1")
		for method := range ops {
			req := httptest.NewRequest(strings.ToUpper(method), concrete, nil)
			_, pattern := s.mux.Handler(req)
			if pattern == "" || pattern == "/" {
				t.Errorf("%s %s is documented but not served", strings.ToUpper(method), path)
			}
			n++
		}
	}
	if n < 40 {
		t.Fatalf("only %d operations documented", n)
	}
}
