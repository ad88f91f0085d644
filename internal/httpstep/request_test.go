package httpstep

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/flow"
)

// attrs is a Lookup over a fixed map.
func attrs(m map[string]string) flow.Lookup {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

func TestBuild(t *testing.T) {
	t.Parallel()
	vals := attrs(map[string]string{
		"order_id": "A 1/2",
		"q":        "x&y=z",
		"note":     "He said \"hi\"\nbye\\",
		"n":        "42",
		"word":     "abc",
		"token":    "t0k\r\nX-Evil: 1",
		"name":     "Zoë",
	})
	tests := []struct {
		name        string
		node        flow.HTTPNode
		wantMethod  string
		wantURL     string
		wantBody    string
		wantCT      string
		wantHeaders map[string]string
	}{
		{
			name:       "GET without body; URL path and query escaping",
			node:       flow.HTTPNode{Method: "GET", URL: "https://api.example.com/orders/{{order_id}}?q={{q}}&name={{name}}"},
			wantMethod: "GET",
			wantURL:    "https://api.example.com/orders/A%201%2F2?q=x%26y%3Dz&name=Zo%C3%AB",
		},
		{
			name:       "lowercase method is accepted",
			node:       flow.HTTPNode{Method: "post", URL: "http://api.example.com/"},
			wantMethod: "POST",
			wantURL:    "http://api.example.com/",
		},
		{
			name:       "mode none sends nothing",
			node:       flow.HTTPNode{Method: "POST", URL: "http://h.example/x", Body: &flow.HTTPBody{Mode: "none"}},
			wantMethod: "POST",
			wantURL:    "http://h.example/x",
		},
		{
			name: "json body escapes quotes, newlines and backslashes; numbers stay numbers",
			node: flow.HTTPNode{Method: "POST", URL: "http://h.example/x",
				Body: &flow.HTTPBody{Mode: "json", Content: `{"note": "{{note}}", "n": {{n}}}`}},
			wantMethod: "POST",
			wantURL:    "http://h.example/x",
			wantBody:   `{"note": "He said \"hi\"\nbye\\", "n": 42}`,
			wantCT:     "application/json",
		},
		{
			name: "empty json content is no body",
			node: flow.HTTPNode{Method: "PUT", URL: "http://h.example/x",
				Body: &flow.HTTPBody{Mode: "json", Content: "  "}},
			wantMethod: "PUT",
			wantURL:    "http://h.example/x",
		},
		{
			name: "raw body is sent as written with the default content type",
			node: flow.HTTPNode{Method: "PATCH", URL: "http://h.example/x",
				Body: &flow.HTTPBody{Mode: "raw", Content: "id={{n}} note={{note}}"}},
			wantMethod: "PATCH",
			wantURL:    "http://h.example/x",
			wantBody:   "id=42 note=He said \"hi\"\nbye\\",
			wantCT:     "text/plain; charset=utf-8",
		},
		{
			name: "raw body with its own content type",
			node: flow.HTTPNode{Method: "POST", URL: "http://h.example/x",
				Body: &flow.HTTPBody{Mode: "raw", Content: "<a>{{n}}</a>", ContentType: "application/xml"}},
			wantMethod: "POST",
			wantURL:    "http://h.example/x",
			wantBody:   "<a>42</a>",
			wantCT:     "application/xml",
		},
		{
			name: "query fields go into a GET URL, after its own query",
			node: flow.HTTPNode{Method: "GET", URL: "http://h.example/x?k=v",
				Body: &flow.HTTPBody{Mode: "query", Fields: map[string]string{"b": "{{q}}", "a": "{{name}} x"}}},
			wantMethod: "GET",
			wantURL:    "http://h.example/x?k=v&a=Zo%C3%AB+x&b=x%26y%3Dz",
		},
		{
			name: "query fields go into DELETE, HEAD and OPTIONS URLs too",
			node: flow.HTTPNode{Method: "DELETE", URL: "http://h.example/x",
				Body: &flow.HTTPBody{Mode: "query", Fields: map[string]string{"id": "{{n}}"}}},
			wantMethod: "DELETE",
			wantURL:    "http://h.example/x?id=42",
		},
		{
			name: "query fields are a form body for POST",
			node: flow.HTTPNode{Method: "POST", URL: "http://h.example/x",
				Body: &flow.HTTPBody{Mode: "query", Fields: map[string]string{"note": "{{note}}", "id": "{{n}}"}}},
			wantMethod: "POST",
			wantURL:    "http://h.example/x",
			wantBody:   "id=42&note=He+said+%22hi%22%0Abye%5C",
			wantCT:     "application/x-www-form-urlencoded",
		},
		{
			name: "headers: substituted, CR/LF stripped, names canonical",
			node: flow.HTTPNode{Method: "GET", URL: "http://h.example/",
				Headers: map[string]string{"x-token": "{{token}}", "Accept": "application/json"}},
			wantMethod:  "GET",
			wantURL:     "http://h.example/",
			wantHeaders: map[string]string{"X-Token": "t0kX-Evil: 1", "Accept": "application/json"},
		},
		{
			name: "the node's Content-Type wins",
			node: flow.HTTPNode{Method: "POST", URL: "http://h.example/",
				Headers: map[string]string{"content-type": "application/vnd.api+json"},
				Body:    &flow.HTTPBody{Mode: "json", Content: `{"a":1}`}},
			wantMethod:  "POST",
			wantURL:     "http://h.example/",
			wantBody:    `{"a":1}`,
			wantCT:      "application/vnd.api+json",
			wantHeaders: map[string]string{"Content-Type": "application/vnd.api+json"},
		},
		{
			name:       "the fragment is dropped",
			node:       flow.HTTPNode{Method: "GET", URL: "http://h.example/a#frag"},
			wantMethod: "GET",
			wantURL:    "http://h.example/a",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.node.ID = "crm"
			c, err := Build(&tt.node, vals)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if c.Method != tt.wantMethod {
				t.Errorf("method = %q, want %q", c.Method, tt.wantMethod)
			}
			if c.URL != tt.wantURL {
				t.Errorf("URL = %q, want %q", c.URL, tt.wantURL)
			}
			if string(c.Body) != tt.wantBody {
				t.Errorf("body = %q, want %q", c.Body, tt.wantBody)
			}
			if c.ContentType != tt.wantCT {
				t.Errorf("content type = %q, want %q", c.ContentType, tt.wantCT)
			}
			if got := c.Header.Get("Content-Type"); got != tt.wantCT {
				t.Errorf("Content-Type header = %q, want %q", got, tt.wantCT)
			}
			for k, v := range tt.wantHeaders {
				if got := c.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if tt.node.Body != nil && tt.node.Body.Mode == "json" && len(c.Body) > 0 && !json.Valid(c.Body) {
				t.Errorf("json body is not valid JSON: %s", c.Body)
			}
		})
	}
}

// TestBuildJSONRoundTrip checks that awkward values survive a JSON body unchanged.
func TestBuildJSONRoundTrip(t *testing.T) {
	t.Parallel()
	for _, v := range []string{`"`, `\`, "\n\r\t", "</script>", "\u2028", "emoji 🎉", "\x00\x1f", `{"a":1}`} {
		n := &flow.HTTPNode{ID: "n", Method: "POST", URL: "http://h.example/", Body: &flow.HTTPBody{Mode: "json", Content: `{"v":"{{v}}"}`}}
		c, err := Build(n, attrs(map[string]string{"v": v}))
		if err != nil {
			t.Fatalf("Build(%q): %v", v, err)
		}
		var got struct{ V string }
		if err := json.Unmarshal(c.Body, &got); err != nil {
			t.Fatalf("Build(%q) body %s: %v", v, c.Body, err)
		}
		if got.V != v {
			t.Errorf("value %q came back as %q", v, got.V)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	t.Parallel()
	vals := attrs(map[string]string{"word": "abc", "u": "ftp://h.example/", "host": "a b"})
	tests := []struct {
		name      string
		node      flow.HTTPNode
		wantField string
	}{
		{"unknown method", flow.HTTPNode{Method: "TRACE", URL: "http://h.example/"}, "method"},
		{"json invalid after substitution", flow.HTTPNode{Method: "POST", URL: "http://h.example/",
			Body: &flow.HTTPBody{Mode: "json", Content: `{"n": {{word}}}`}}, "body.content"},
		{"json invalid as written", flow.HTTPNode{Method: "POST", URL: "http://h.example/",
			Body: &flow.HTTPBody{Mode: "json", Content: `{"n": `}}, "body.content"},
		{"scheme from a value", flow.HTTPNode{Method: "GET", URL: "{{u}}"}, "url"},
		{"ftp", flow.HTTPNode{Method: "GET", URL: "ftp://h.example/"}, "url"},
		{"no host", flow.HTTPNode{Method: "GET", URL: "http:///path"}, "url"},
		{"empty URL", flow.HTTPNode{Method: "GET", URL: ""}, "url"},
		{"bad host after substitution", flow.HTTPNode{Method: "GET", URL: "http://{{host}}.example/"}, "url"},
		{"control character", flow.HTTPNode{Method: "GET", URL: "http://h.example/\x7f"}, "url"},
		{"bad header name", flow.HTTPNode{Method: "GET", URL: "http://h.example/", Headers: map[string]string{"X Y": "1"}}, "headers"},
		{"unknown body mode", flow.HTTPNode{Method: "POST", URL: "http://h.example/", Body: &flow.HTTPBody{Mode: "xml"}}, "body.mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.node.ID = "crm"
			c, err := Build(&tt.node, vals)
			if err == nil {
				t.Fatalf("Build = %+v, want an error", c)
			}
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *RequestError", err)
			}
			if re.Field != tt.wantField {
				t.Errorf("field = %q, want %q (%v)", re.Field, tt.wantField, err)
			}
			if !strings.Contains(err.Error(), `http node "crm"`) {
				t.Errorf("error %q does not name the node", err)
			}
		})
	}
}

func TestBuildNilLookup(t *testing.T) {
	t.Parallel()
	c, err := Build(&flow.HTTPNode{ID: "n", Method: "GET", URL: "http://h.example/{{missing}}x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != "http://h.example/x" {
		t.Errorf("URL = %q", c.URL)
	}
	if _, err := Build(nil, nil); err == nil {
		t.Error("Build(nil) gave no error")
	}
}

func FuzzBuild(f *testing.F) {
	f.Add("GET", "https://api.example.com/o/{{id}}?q={{id}}", "Bearer {{id}}", `{"id":"{{id}}"}`, "json", "a\"b\nc")
	f.Add("POST", "http://h.example/{{id}}", "{{id}}", `{"n": {{id}}}`, "json", "12")
	f.Add("POST", "http://h.example/", "x", `{"n": {{id}}}`, "json", "1, \"x\": 2")
	f.Add("PUT", "http://{{id}}/", "x", "raw {{id}}", "raw", "h.example")
	f.Add("DELETE", "http://h.example/?a=1", "\r\n", "{{id}}", "query", "v&w=x")
	f.Add("OPTIONS", "{{id}}", "", "", "none", "http://10.0.0.1/")
	f.Add("HEAD", "http://h.example/{{", "{{}}", "{{ id }}", "json", "")
	f.Fuzz(func(t *testing.T, method, urlTmpl, headerTmpl, bodyTmpl, mode, value string) {
		n := &flow.HTTPNode{ID: "fz", Method: method, URL: urlTmpl,
			Headers: map[string]string{"X-Value": headerTmpl},
			Body:    &flow.HTTPBody{Mode: mode, Content: bodyTmpl, Fields: map[string]string{"f": bodyTmpl}}}
		c, err := Build(n, func(string) (string, bool) { return value, true })
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *RequestError", err)
			}
			return
		}
		u, err := url.Parse(c.URL)
		if err != nil {
			t.Fatalf("Build gave URL %q that does not parse: %v", c.URL, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			t.Fatalf("Build gave URL %q", c.URL)
		}
		for name, vs := range c.Header {
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n") {
					t.Fatalf("header %s = %q holds CR or LF", name, v)
				}
			}
		}
		if mode == "json" && len(c.Body) > 0 && !json.Valid(c.Body) {
			t.Fatalf("json body is not valid JSON: %q", c.Body)
		}
	})
}
