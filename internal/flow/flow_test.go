package flow

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const validDoc = `{
  "key": "order_update", "name": "Order update", "start": "tier",
  "nodes": [
    {"id": "tier", "type": "decision",
     "branches": [{"when": {"all": [{"attribute": "user_type", "op": "eq", "value": "vip"}]}, "next": "vip"}],
     "else": "std"},
    {"id": "vip", "type": "message", "text": "Hi {{user.user_name}}, VIP order {{order_id}}", "next": "crm"},
    {"id": "std", "type": "message", "text": "Order {{order_id}}", "buttons": [{"title": "Track"}], "next": "crm"},
    {"id": "crm", "type": "http", "method": "POST", "url": "https://crm.example.com/orders/{{order_id}}",
     "headers": {"X-Token": "{{crm_token}}"}, "body": {"mode": "json", "content": "{\"phone\": \"{{user.phone_no}}\", \"n\": {{n}}}"},
     "save": {"tier": "customer.tier"}, "on_failure": "continue", "next": "ask"},
    {"id": "ask", "type": "input", "text": "Rate us {{crm.customer.name}}", "save_as": "rating", "timeout_seconds": 60, "on_timeout": "done", "next": "set"},
    {"id": "set", "type": "set", "set": {"rated": "yes"}, "clear": ["tmp"], "next": "again"},
    {"id": "again", "type": "decision", "branches": [{"when": {"attribute": "rating", "op": "lt", "value": 3}, "next": "ask"}], "else": "other"},
    {"id": "other", "type": "jump", "flow": "feedback_flow"},
    {"id": "done", "type": "end"}
  ]
}`

func TestParseValid(t *testing.T) {
	f, err := Parse([]byte(validDoc))
	if err != nil {
		t.Fatal(err)
	}
	if f.Key != "order_update" || len(f.Nodes) != 9 || !f.IsHTTPNode("crm") || f.IsHTTPNode("vip") {
		t.Fatalf("parsed %+v", f)
	}
	n, _ := f.Node("crm")
	if h := n.(*HTTPNode); h.Timeout() != 60 || h.StopOnFailure() {
		t.Fatalf("http defaults: timeout %d stop %v", h.Timeout(), h.StopOnFailure())
	}
	// Export and re-import give the same document.
	out, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Parse(out)
	if err != nil {
		t.Fatalf("re-parse export: %v\n%s", err, out)
	}
	again, _ := json.Marshal(g)
	if string(again) != string(out) {
		t.Fatalf("export is not stable:\n%s\n%s", out, again)
	}
	if !strings.Contains(string(out), `{"type":"decision","id":"tier"`) {
		t.Fatalf("export lacks node types: %s", out)
	}
}

func TestSecretHeaders(t *testing.T) {
	f, err := Parse([]byte(doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com",
		"headers": {"x-token": "{{t}}", "X-Other": "o"}, "secret_headers": ["X-Token"]}`)))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := f.Node("a")
	h := n.(*HTTPNode)
	for name, want := range map[string]bool{"X-Token": true, "x-token": true, "X-TOKEN": true, "X-Other": false, "Token": false} {
		if got := h.IsSecretHeader(name); got != want {
			t.Errorf("IsSecretHeader(%q) = %v, want %v", name, got, want)
		}
	}
	out, _ := json.Marshal(f)
	if !strings.Contains(string(out), `"secret_headers":["X-Token"]`) {
		t.Fatalf("the list does not survive a round trip: %s", out)
	}
	// The schema describes the field as validate.go checks it.
	var schema struct {
		Defs struct {
			Node struct {
				OneOf []struct {
					Properties map[string]json.RawMessage `json:"properties"`
				} `json:"oneOf"`
			} `json:"node"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(Schema, &schema); err != nil {
		t.Fatal(err)
	}
	var field struct {
		Type        string `json:"type"`
		UniqueItems bool   `json:"uniqueItems"`
		Items       struct {
			Type, Pattern string
		} `json:"items"`
	}
	for _, alt := range schema.Defs.Node.OneOf {
		if string(alt.Properties["type"]) == `{"const": "http"}` {
			_ = json.Unmarshal(alt.Properties["secret_headers"], &field)
		}
	}
	if field.Type != "array" || !field.UniqueItems || field.Items.Type != "string" || field.Items.Pattern != "^[^ :\r\n]+$" {
		t.Fatalf("the schema's secret_headers is %+v", field)
	}
}

// node builds a minimal document around the given nodes, starting at the first.
func doc(nodes ...string) string {
	return `{"start": "a", "nodes": [` + strings.Join(nodes, ",") + `]}`
}

// parseErrorCases are invalid documents, each with the node and message Parse must name.
// TestSchemaAgreesWithParse runs them through the JSON Schema too.
var parseErrorCases = []struct {
	name      string
	doc       string
	node, msg string
}{
	{"not json", `{"start":`, "", "flow document"},
	{"unknown top-level field", `{"start": "a", "nodes": [{"id": "a", "type": "end"}], "extra": 1}`, "", "unknown field"},
	{"no nodes", `{"start": "a", "nodes": []}`, "", "at least one node"},
	{"missing start", `{"nodes": [{"id": "a", "type": "end"}]}`, "", "missing start"},
	{"start not a node", `{"start": "zz", "nodes": [{"id": "a", "type": "end"}]}`, "", `"zz" does not exist`},
	{"unknown type", doc(`{"id": "a", "type": "teleport"}`), "a", `unknown type "teleport"`},
	{"unknown field", doc(`{"id": "a", "type": "end", "next": "b"}`), "a", "unknown field"},
	{"duplicate id", doc(`{"id": "a", "type": "message", "text": "x", "next": "a2"}`, `{"id": "a2", "type": "end"}`, `{"id": "a2", "type": "end"}`), "a2", "duplicate"},
	{"reserved id", `{"start": "user", "nodes": [{"id": "user", "type": "end"}]}`, "user", "reserved"},
	{"bad id", `{"start": "a b", "nodes": [{"id": "a b", "type": "end"}]}`, "a b", "ids use"},
	{"dangling next", doc(`{"id": "a", "type": "message", "text": "x", "next": "ghost"}`), "a", `"ghost"`},
	{"dangling branch", doc(`{"id": "a", "type": "decision", "branches": [{"when": {"attribute": "x", "op": "exists"}, "next": "ghost"}]}`), "a", `"ghost"`},
	{"unreachable", doc(`{"id": "a", "type": "end"}`, `{"id": "lost", "type": "end"}`), "lost", "unreachable"},
	{"bad regex", doc(`{"id": "a", "type": "decision", "branches": [{"when": {"attribute": "x", "op": "matches", "value": "(["}, "next": "b"}]}`, `{"id": "b", "type": "end"}`), "a", "regular expression"},
	{"bad url", doc(`{"id": "a", "type": "http", "method": "GET", "url": "ftp://x.example.com"}`), "a", "http://"},
	{"url without host", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https:///path"}`), "a", "no host"},
	{"bad method", doc(`{"id": "a", "type": "http", "method": "FETCH", "url": "https://x.example.com"}`), "a", "FETCH"},
	{"bad json body", doc(`{"id": "a", "type": "http", "method": "POST", "url": "https://x.example.com", "body": {"mode": "json", "content": "{nope"}}`), "a", "not valid JSON"},
	{"bad body mode", doc(`{"id": "a", "type": "http", "method": "POST", "url": "https://x.example.com", "body": {"mode": "xml"}}`), "a", "xml"},
	{"timeout over 60", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "timeout_seconds": 61}`), "a", "between 1 and 60"},
	{"failure route with stop", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "on_failure": "stop", "on_failure_next": "b"}`, `{"id": "b", "type": "end"}`), "a", "stops the run"},
	{"dangling failure route", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "on_failure_next": "gone"}`), "a", "gone"},
	{"bad on_failure", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "on_failure": "retry"}`), "a", "continue or stop"},
	{"too many alert emails", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "alert_emails": ["a@x.io","b@x.io","c@x.io","d@x.io","e@x.io","f@x.io","g@x.io","h@x.io","i@x.io","j@x.io","k@x.io"]}`), "a", "at most 10"},
	{"bad alert email", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "alert_emails": ["not an address"]}`), "a", "not an email"},
	{"bad save path", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "save": {"t": "items.#.id"}}`), "a", "JSON path"},
	{"message without body", doc(`{"id": "a", "type": "message"}`), "a", "needs a text"},
	{"two bodies", doc(`{"id": "a", "type": "message", "card": {"title": "t"}, "template": {"name": "n", "language": {"code": "en"}}}`), "a", "one of"},
	{"long button", doc(`{"id": "a", "type": "message", "text": "x", "buttons": [{"title": "this title is far too long"}]}`), "a", "longer than 20"},
	{"bad media type", doc(`{"id": "a", "type": "message", "media": {"type": "gif", "url": "https://x.example.com/a.gif"}}`), "a", "gif"},
	{"bad op", doc(`{"id": "a", "type": "decision", "branches": [{"when": {"attribute": "x", "op": "like", "value": "y"}, "next": "b"}]}`, `{"id": "b", "type": "end"}`), "a", `"like"`},
	{"gt needs number", doc(`{"id": "a", "type": "decision", "branches": [{"when": {"attribute": "x", "op": "gt", "value": "big"}, "next": "b"}]}`, `{"id": "b", "type": "end"}`), "a", "needs a number"},
	{"in needs list", doc(`{"id": "a", "type": "decision", "branches": [{"when": {"attribute": "x", "op": "in", "value": "y"}, "next": "b"}]}`, `{"id": "b", "type": "end"}`), "a", "list"},
	{"empty condition", doc(`{"id": "a", "type": "decision", "branches": [{"when": {}, "next": "b"}]}`, `{"id": "b", "type": "end"}`), "a", "empty condition"},
	{"set nothing", doc(`{"id": "a", "type": "set"}`), "a", "set or clear"},
	{"bad attribute", doc(`{"id": "a", "type": "set", "set": {"bad name": "x"}}`), "a", "not a valid attribute"},
	{"on_timeout without timeout", doc(`{"id": "a", "type": "input", "on_timeout": "b"}`, `{"id": "b", "type": "end"}`), "a", "timeout_seconds"},
	{"jump without flow", doc(`{"id": "a", "type": "jump"}`), "a", "missing"},
	{"loop without input", doc(`{"id": "a", "type": "set", "set": {"x": "1"}, "next": "b"}`, `{"id": "b", "type": "message", "text": "x", "next": "a"}`), "a", "loop"},
	{"bad reference", doc(`{"id": "a", "type": "message", "text": "hi {{not valid!}}"}`), "a", "not a valid reference"},
	{"save shadows node", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "save": {"a.x": "y"}}`), "a", "shadow"},
	{"member name in the wrong case", `{"Start": "a", "nodes": [{"id": "a", "type": "end"}]}`, "", `unknown field "Start"`},
	{"node member in the wrong case", doc(`{"id": "a", "type": "message", "Text": "x"}`), "a", `unknown field "Text"`},
	{"nested member in the wrong case", doc(`{"id": "a", "type": "decision", "branches": [{"when": {"Attribute": "x", "op": "exists"}, "next": "b"}]}`, `{"id": "b", "type": "end"}`), "a", `branches[0].when: unknown field "Attribute"`},
	{"null member", doc(`{"id": "a", "type": "message", "text": "x", "next": null}`), "a", "next: null is not a value here"},
	{"null button", doc(`{"id": "a", "type": "message", "text": "x", "buttons": [null]}`), "a", "buttons[0]: null"},
	{"long text in characters", doc(`{"id": "a", "type": "message", "text": "` + strings.Repeat("é", MaxTextLength+1) + `"}`), "a", "longer than 4096"},
	{"secret header not among the headers", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "headers": {"X-Token": "t"}, "secret_headers": ["X-Key"]}`), "a", `"X-Key" is not one of the node's headers`},
	{"secret headers without headers", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "secret_headers": ["X-Key"]}`), "a", "not one of the node's headers"},
	{"secret header listed twice", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "headers": {"X-Token": "t"}, "secret_headers": ["X-Token", "X-Token"]}`), "a", "listed twice"},
	{"secret header bad name", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "headers": {"X-Token": "t"}, "secret_headers": ["X Token"]}`), "a", "not a valid header name"},
	{"secret headers not a list", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "headers": {"X-Token": "t"}, "secret_headers": "X-Token"}`), "a", "cannot unmarshal"},
	{"secret headers on a message", doc(`{"id": "a", "type": "message", "text": "x", "secret_headers": ["X-Token"]}`), "a", "unknown field"},
}

func TestParseErrors(t *testing.T) {
	for _, tt := range parseErrorCases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			var verrs ValidationErrors
			if !errors.As(err, &verrs) {
				t.Fatalf("Parse = %v; want ValidationErrors", err)
			}
			for _, e := range verrs {
				if e.Node == tt.node && strings.Contains(e.Error(), tt.msg) {
					return
				}
			}
			t.Fatalf("errors %v do not include one for node %q mentioning %q", verrs, tt.node, tt.msg)
		})
	}
}

func TestLoopThroughInputIsAllowed(t *testing.T) {
	_, err := Parse([]byte(doc(
		`{"id": "a", "type": "input", "text": "again?", "save_as": "x", "next": "b"}`,
		`{"id": "b", "type": "decision", "branches": [{"when": {"attribute": "x", "op": "eq", "value": "yes"}, "next": "a"}], "else": "c"}`,
		`{"id": "c", "type": "end"}`)))
	if err != nil {
		t.Fatal(err)
	}
}

func TestConditionOperators(t *testing.T) {
	attrs := map[string]string{"tier": " VIP ", "age": "42", "name": "Asha Rao", "empty": "", "limit": "40"}
	lookup := func(n string) (string, bool) { v, ok := attrs[n]; return v, ok }
	tests := []struct {
		cond string
		want bool
	}{
		{`{"attribute": "tier", "op": "eq", "value": "vip"}`, true},
		{`{"attribute": "tier", "op": "eq", "value": "gold"}`, false},
		{`{"attribute": "tier", "op": "ne", "value": "gold"}`, true},
		{`{"attribute": "tier", "op": "ne", "value": "vip"}`, false},
		{`{"attribute": "name", "op": "contains", "value": "RAO"}`, true},
		{`{"attribute": "name", "op": "contains", "value": "singh"}`, false},
		{`{"attribute": "name", "op": "starts_with", "value": "asha"}`, true},
		{`{"attribute": "name", "op": "starts_with", "value": "rao"}`, false},
		{`{"attribute": "age", "op": "gt", "value": 41}`, true},
		{`{"attribute": "age", "op": "gt", "value": 42}`, false},
		{`{"attribute": "age", "op": "gte", "value": "42"}`, true},
		{`{"attribute": "age", "op": "lt", "value": 42.5}`, true},
		{`{"attribute": "age", "op": "lte", "value": 41}`, false},
		{`{"attribute": "age", "op": "gt", "value": "{{limit}}"}`, true},
		{`{"attribute": "name", "op": "gt", "value": 1}`, false},
		{`{"attribute": "missing", "op": "lt", "value": 1}`, false},
		{`{"attribute": "tier", "op": "exists"}`, true},
		{`{"attribute": "empty", "op": "exists"}`, false},
		{`{"attribute": "missing", "op": "exists"}`, false},
		{`{"attribute": "missing", "op": "not_exists"}`, true},
		{`{"attribute": "tier", "op": "not_exists"}`, false},
		{`{"attribute": "name", "op": "matches", "value": "^Asha [A-Z]"}`, true},
		{`{"attribute": "name", "op": "matches", "value": "^asha"}`, false},
		{`{"attribute": "tier", "op": "in", "value": ["gold", "vip"]}`, true},
		{`{"attribute": "age", "op": "in", "value": [41, 42]}`, true},
		{`{"attribute": "tier", "op": "in", "value": ["gold"]}`, false},
		{`{"all": [{"attribute": "tier", "op": "eq", "value": "vip"}, {"attribute": "age", "op": "gt", "value": 40}]}`, true},
		{`{"all": [{"attribute": "tier", "op": "eq", "value": "vip"}, {"attribute": "age", "op": "gt", "value": 50}]}`, false},
		{`{"any": [{"attribute": "tier", "op": "eq", "value": "gold"}, {"attribute": "age", "op": "gt", "value": 40}]}`, true},
		{`{"any": [{"attribute": "tier", "op": "eq", "value": "gold"}, {"all": [{"attribute": "age", "op": "lt", "value": 10}]}]}`, false},
	}
	for _, tt := range tests {
		f, err := Parse([]byte(doc(`{"id": "a", "type": "decision", "branches": [{"when": `+tt.cond+`, "next": "b"}]}`, `{"id": "b", "type": "end"}`)))
		if err != nil {
			t.Fatalf("%s: %v", tt.cond, err)
		}
		n, _ := f.Node("a")
		if got := n.(*DecisionNode).Branches[0].When.Eval(lookup); got != tt.want {
			t.Errorf("%s = %v, want %v", tt.cond, got, tt.want)
		}
	}
}

func TestRender(t *testing.T) {
	attrs := map[string]string{"name": `Asha "A" Rao`, "city": "São Paulo/SP", "q": "a&b=c", "nl": "x\ny"}
	lookup := func(n string) (string, bool) { v, ok := attrs[n]; return v, ok }
	tests := []struct {
		in   string
		esc  Escape
		want string
	}{
		{"Hi {{name}}!", EscapeNone, `Hi Asha "A" Rao!`},
		{"Hi {{ name }}, {{missing}}.", EscapeNone, `Hi Asha "A" Rao, .`},
		{"no refs", EscapeNone, "no refs"},
		{"unclosed {{name", EscapeNone, "unclosed {{name"},
		{`{"n": "{{name}}", "l": "{{nl}}"}`, EscapeJSON, `{"n": "Asha \"A\" Rao", "l": "x\ny"}`},
		{"https://x.io/c/{{city}}?q={{q}}&c={{city}}", EscapeURL, "https://x.io/c/S%C3%A3o%20Paulo%2FSP?q=a%26b%3Dc&c=S%C3%A3o+Paulo%2FSP"},
		{"{{name}}{{name}}", EscapeNone, `Asha "A" RaoAsha "A" Rao`},
		{"{{ {{name}} }}", EscapeNone, ` }}`}, // the reference is "{{name" (no such attribute), then " }}"
	}
	for _, tt := range tests {
		if got := Render(tt.in, lookup, tt.esc); got != tt.want {
			t.Errorf("Render(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// JSON-escaped output always stays valid JSON.
	if !json.Valid([]byte(Render(`{"n": "{{name}}", "l": "{{nl}}"}`, lookup, EscapeJSON))) {
		t.Error("escaped JSON body is not valid JSON")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(validDoc))
	f.Add([]byte(doc(`{"id": "a", "type": "end"}`)))
	f.Add([]byte(`{"start": "a", "nodes": [{"id": "a", "type": "decision", "branches": [{"when": {"any": [{"all": []}]}, "next": "a"}]}]}`))
	f.Add([]byte(`{"nodes": [null, 1, "x", {}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fl, err := Parse(data)
		if err != nil {
			var verrs ValidationErrors
			if !errors.As(err, &verrs) || len(verrs) == 0 {
				t.Fatalf("Parse error %T %v is not a non-empty ValidationErrors", err, err)
			}
			return
		}
		// A valid flow exports to a document that parses to the same export.
		out, err := json.Marshal(fl)
		if err != nil {
			t.Fatalf("export: %v", err)
		}
		g, err := Parse(out)
		if err != nil {
			t.Fatalf("exported flow does not parse: %v\n%s", err, out)
		}
		for _, n := range g.Nodes {
			if _, ok := g.Node(n.NodeID()); !ok {
				t.Fatalf("node %q not indexed", n.NodeID())
			}
		}
	})
}

func FuzzRender(f *testing.F) {
	f.Add(`{"a": "{{x}}"}`, `"quoted" \ back`)
	f.Add("{{x}}{{", "}}")
	f.Fuzz(func(t *testing.T, tmpl, value string) {
		lookup := func(string) (string, bool) { return value, true }
		_ = Render(tmpl, lookup, EscapeNone)
		_ = Render(tmpl, lookup, EscapeURL)
		if json.Valid([]byte(Render(tmpl, func(string) (string, bool) { return "", true }, EscapeJSON))) &&
			strings.Count(tmpl, `"{{`) == strings.Count(tmpl, "{{") && strings.Count(tmpl, `}}"`) == strings.Count(tmpl, "}}") &&
			!strings.Contains(tmpl, `\`) {
			// Every reference sits directly inside a string: substituting any value keeps the JSON valid.
			if out := Render(tmpl, lookup, EscapeJSON); !json.Valid([]byte(out)) {
				t.Fatalf("Render(%q, %q) = %q: not valid JSON", tmpl, value, out)
			}
		}
	})
}

func FuzzValidAttributeName(f *testing.F) {
	for _, s := range []string{"user.phone_no", "a", "-a", ".a", "a b", "ü", strings.Repeat("a", 101)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidAttributeName(s), attrPattern.MatchString(s); got != want {
			t.Fatalf("ValidAttributeName(%q) = %v, pattern says %v", s, got, want)
		}
	})
}

// The text limit counts characters, as channels do, not UTF-8 bytes.
func TestTextLimitCountsCharacters(t *testing.T) {
	if _, err := Parse([]byte(doc(`{"id": "a", "type": "message", "text": "` + strings.Repeat("é", MaxTextLength) + `"}`))); err != nil {
		t.Fatalf("%d two-byte characters: %v", MaxTextLength, err)
	}
}

func TestParseHTTPNode(t *testing.T) {
	tests := []struct {
		name, node string
		// wantErr is a part of the error; "" for a node that parses.
		wantErr string
	}{
		{"complete", `{"id": "crm", "type": "http", "method": "POST", "url": "https://crm.example/{{id}}", "headers": {"X-Token": "t"},
			"secret_headers": ["X-Token"], "body": {"mode": "json", "content": "{\"a\": \"{{a}}\"}"}, "save": {"tier": "customer.tier"}}`, ""},
		{"its ways out point elsewhere", `{"id": "crm", "type": "http", "method": "GET", "url": "https://crm.example/", "next": "later", "on_failure_next": "oops"}`, ""},
		{"another type", `{"id": "m", "type": "message", "text": "hi"}`, `"message" is not an http node`},
		{"no method", `{"id": "crm", "type": "http", "url": "https://crm.example/"}`, "method"},
		{"a bad url", `{"id": "crm", "type": "http", "method": "GET", "url": "crm"}`, "url"},
		{"an unknown member", `{"id": "crm", "type": "http", "method": "GET", "url": "https://crm.example/", "retries": 3}`, "retries"},
		{"a bad path", `{"id": "crm", "type": "http", "method": "GET", "url": "https://crm.example/", "save": {"a": "x[0]"}}`, "save.a"},
		{"no id", `{"type": "http", "method": "GET", "url": "https://crm.example/"}`, "no id"},
		{"not an object", `["http"]`, "not a JSON object"},
		{"null", `null`, "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ParseHTTPNode([]byte(tt.node))
			if tt.wantErr == "" {
				if err != nil || n == nil {
					t.Fatalf("ParseHTTPNode = %v, %v", n, err)
				}
				if n.Next != "" || n.OnFailureNext != "" {
					t.Errorf("the node keeps its ways out: %+v", n)
				}
				return
			}
			var verrs ValidationErrors
			if !errors.As(err, &verrs) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseHTTPNode error = %v, want a ValidationErrors about %q", err, tt.wantErr)
			}
		})
	}
}

func FuzzParseHTTPNode(f *testing.F) {
	f.Add([]byte(`{"id": "crm", "type": "http", "method": "GET", "url": "https://crm.example/{{a}}", "save": {"a": "b.0"}}`))
	f.Add([]byte(`{"id": "crm", "type": "http", "method": "POST", "url": "https://x.example/", "body": {"mode": "raw", "content": "{{"}}`))
	f.Add([]byte(`{"type": "end"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := ParseHTTPNode(data)
		if err != nil {
			var verrs ValidationErrors
			if !errors.As(err, &verrs) || len(verrs) == 0 {
				t.Fatalf("error %T %v is not a non-empty ValidationErrors", err, err)
			}
			return
		}
		// A node that parses is one a flow could hold.
		out, err := json.Marshal(&Flow{Start: n.ID, Nodes: []Node{n}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("the node does not parse in a flow: %v\n%s", err, out)
		}
	})
}
