package flow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// flow.schema.json and Parse are two descriptions of one document. The tests here run every
// flow document the repository holds through both and require the same verdict, so that
// neither can drift from the other.

// schemaCannotExpress lists the rules Parse applies that flow.schema.json does not, because
// JSON Schema cannot state them: they relate members across the document, or they need Go's
// own parsers. A document that breaks only these rules is the one disagreement allowed:
// Parse refuses it and the schema accepts it. Each rule has an example that breaks it
// alone, and the fragments of Parse's messages that name it.
var schemaCannotExpress = []struct {
	rule    string
	msgs    []string
	example string
}{
	{"a reference (next, else, on_timeout, a branch's next) names a node of the flow",
		[]string{"which is not a node of this flow"},
		doc(`{"id": "a", "type": "message", "text": "x", "next": "ghost"}`)},
	{"start names a node of the flow",
		[]string{"does not exist"},
		`{"start": "ghost", "nodes": [{"id": "a", "type": "end"}]}`},
	{"a secret header names one of the node's headers",
		[]string{"is not one of the node's headers"},
		doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "headers": {"X-Token": "t"}, "secret_headers": ["X-Key"]}`)},
	{"node ids are unique",
		[]string{"duplicate node id"},
		doc(`{"id": "a", "type": "end"}`, `{"id": "a", "type": "end"}`)},
	{"every node is reachable from start",
		[]string{"unreachable from the start node"},
		doc(`{"id": "a", "type": "end"}`, `{"id": "b", "type": "end"}`)},
	{"a loop passes through an input node",
		[]string{"never waits for the user"},
		doc(`{"id": "a", "type": "set", "set": {"x": "1"}, "next": "b"}`, `{"id": "b", "type": "set", "set": {"y": "2"}, "next": "a"}`)},
	{"an attribute saved or set does not shadow an http node's results",
		[]string{"would shadow"},
		doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "save": {"a.b": "c"}}`)},
	{"{{references}} name attributes",
		[]string{"is not a valid reference"},
		doc(`{"id": "a", "type": "message", "text": "hi {{not valid!}}"}`)},
	{"a URL parses, with its {{references}} filled in (the schema checks the scheme and that a host follows)",
		[]string{"not a URL", "has no host"},
		doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://bad host.example.com"}`)},
	{"a json body is JSON, with its {{references}} filled in",
		[]string{"not valid JSON"},
		doc(`{"id": "a", "type": "http", "method": "POST", "url": "https://x.example.com", "body": {"mode": "json", "content": "{nope"}}`)},
	{"a matches value is an RE2 regular expression",
		[]string{"bad regular expression"},
		doc(`{"id": "a", "type": "decision", "branches": [{"when": {"attribute": "x", "op": "matches", "value": "(["}, "next": "b"}]}`, `{"id": "b", "type": "end"}`)},
	{"a string compared with gt, gte, lt or lte holds a number (as strconv.ParseFloat reads it) or a {{reference}}",
		[]string{"needs a number"},
		doc(`{"id": "a", "type": "decision", "branches": [{"when": {"attribute": "x", "op": "gt", "value": "big"}, "next": "b"}]}`, `{"id": "b", "type": "end"}`)},
	{"an alert email is an address as net/mail reads it (in draft 2020-12, format is an annotation)",
		[]string{"is not an email address"},
		doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "alert_emails": ["not an address"]}`)},
	{"conditions nest at most 8 deep",
		[]string{"nest deeper than"},
		doc(`{"id": "a", "type": "decision", "branches": [{"when": `+nested(10)+`, "next": "b"}]}`, `{"id": "b", "type": "end"}`)},
	{"integers are written as integers (JSON Schema counts 60.0 and 6e1 as integers; Go's decoder does not)",
		[]string{"cannot unmarshal number"},
		doc(`{"id": "a", "type": "input", "text": "x", "timeout_seconds": 60.0}`)},
}

// nested is a condition n groups deep.
func nested(n int) string {
	c := `{"attribute": "x", "op": "exists"}`
	for range n {
		c = `{"all": [` + c + `]}`
	}
	return c
}

// schemaCases cover the rules the schema does express, beside parseErrorCases: each is
// valid or not to Parse, and TestSchemaAgreesWithParse holds the schema to the same verdict.
var schemaCases = []struct {
	name  string
	doc   string
	valid bool
}{
	// Empty optional strings count as absent.
	{"empty next, else, on_timeout, save_as, key", `{"key": "", "start": "a", "nodes": [
		{"id": "a", "type": "decision", "branches": [{"when": {"attribute": "x", "op": "exists"}, "next": "b"}], "else": ""},
		{"id": "b", "type": "input", "save_as": "", "on_timeout": "", "next": ""}]}`, true},
	{"empty body, mode and on_failure", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "body": {"mode": ""}, "on_failure": "", "next": "b"}`,
		`{"id": "b", "type": "http", "method": "GET", "url": "http://{{host}}/x", "body": {}}`), true},
	{"input without a prompt", doc(`{"id": "a", "type": "input", "save_as": "reply", "timeout_seconds": 0}`), true},
	{"text of 4096 two-byte characters", doc(`{"id": "a", "type": "message", "text": "` + strings.Repeat("é", MaxTextLength) + `"}`), true},
	{"button title of 20 two-byte characters", doc(`{"id": "a", "type": "message", "text": "x", "buttons": [{"title": "` + strings.Repeat("é", 20) + `"}]}`), true},
	{"media with a caption", doc(`{"id": "a", "type": "message", "media": {"type": "image", "url": "HTTPS://x.example.com/a.png", "caption": "hi"}}`), true},
	{"card with only a media url", doc(`{"id": "a", "type": "message", "card": {"media_url": "https://x.example.com/a.png"}}`), true},
	{"template with components", doc(`{"id": "a", "type": "message", "template": {"name": "t", "language": {"code": "en", "policy": "deterministic"}, "components": [{"type": "body"}]}}`), true},
	{"group with an empty all", doc(`{"id": "a", "type": "decision", "branches": [{"when": {"all": [], "any": [{"attribute": "x", "op": "exists", "value": null}]}, "next": "b"}]}`, `{"id": "b", "type": "end"}`), true},
	{"group with an empty attribute", doc(`{"id": "a", "type": "decision", "branches": [{"when": {"any": [{"attribute": "x", "op": "in", "value": ["a", 1, true]}], "attribute": "", "op": ""}, "next": "b"}]}`, `{"id": "b", "type": "end"}`), true},
	{"numbers as strings and references", doc(`{"id": "a", "type": "decision", "branches": [{"when": {"all": [{"attribute": "x", "op": "gt", "value": "4.5"}, {"attribute": "x", "op": "lte", "value": "{{limit}}"}]}, "next": "b"}]}`, `{"id": "b", "type": "end"}`), true},

	{"bad key", `{"key": "bad key!", "start": "a", "nodes": [{"id": "a", "type": "end"}]}`, false},
	{"too many nodes", manyNodes(MaxNodes + 1), false},
	{"node without an id", `{"start": "a", "nodes": [{"id": "a", "type": "message", "text": "x"}, {"type": "end"}]}`, false},
	{"empty start", `{"start": "", "nodes": [{"id": "a", "type": "end"}]}`, false},
	{"nodes not a list", `{"start": "a", "nodes": {"a": {"type": "end"}}}`, false},
	{"node not an object", `{"start": "a", "nodes": ["a"]}`, false},
	{"missing type", doc(`{"id": "a"}`), false},
	{"text not a string", doc(`{"id": "a", "type": "message", "text": 5}`), false},
	{"timeout as a string", doc(`{"id": "a", "type": "input", "text": "x", "timeout_seconds": "60"}`), false},
	{"fractional timeout", doc(`{"id": "a", "type": "input", "text": "x", "timeout_seconds": 1.5}`), false},
	{"null name", `{"name": null, "start": "a", "nodes": [{"id": "a", "type": "end"}]}`, false},
	{"null media", doc(`{"id": "a", "type": "message", "text": "x", "media": null}`), false},
	{"null template component", doc(`{"id": "a", "type": "message", "template": {"name": "t", "language": {"code": "en"}, "components": [null]}}`), false},
	{"null branch condition", doc(`{"id": "a", "type": "decision", "branches": [{"when": null, "next": "b"}]}`, `{"id": "b", "type": "end"}`), false},
	{"media with text", doc(`{"id": "a", "type": "message", "text": "x", "media": {"type": "image", "url": "https://x.example.com/a.png"}}`), false},
	{"buttons without text", doc(`{"id": "a", "type": "message", "buttons": [{"title": "Yes"}]}`), false},
	{"input buttons without text", doc(`{"id": "a", "type": "input", "buttons": [{"title": "Yes"}]}`), false},
	{"buttons and a card", doc(`{"id": "a", "type": "message", "text": "x", "buttons": [{"title": "Yes"}], "card": {"title": "t"}}`), false},
	{"media and a template", doc(`{"id": "a", "type": "message", "media": {"type": "image", "url": "https://x.example.com/a.png"}, "template": {"name": "t", "language": {"code": "en"}}}`), false},
	{"eleven buttons", doc(`{"id": "a", "type": "message", "text": "x", "buttons": [` + strings.Repeat(`{"title": "b"},`, 10) + `{"title": "b"}]}`), false},
	{"blank button title", doc(`{"id": "a", "type": "message", "text": "x", "buttons": [{"title": " \t"}]}`), false},
	{"button title of no-break spaces", doc(`{"id": "a", "type": "message", "text": "x", "buttons": [{"title": "\u00a0\u3000"}]}`), false},
	{"button with an unknown field", doc(`{"id": "a", "type": "message", "text": "x", "buttons": [{"title": "b", "payload": "p"}]}`), false},
	{"empty card", doc(`{"id": "a", "type": "message", "card": {"title": ""}}`), false},
	{"card with an ftp url", doc(`{"id": "a", "type": "message", "card": {"title": "t", "media_url": "ftp://x.example.com/a.png"}}`), false},
	{"media without a url", doc(`{"id": "a", "type": "message", "media": {"type": "image"}}`), false},
	{"media url without a host", doc(`{"id": "a", "type": "message", "media": {"type": "image", "url": "https:///a.png"}}`), false},
	{"template without a name", doc(`{"id": "a", "type": "message", "template": {"name": "", "language": {"code": "en"}}}`), false},
	{"template without a language", doc(`{"id": "a", "type": "message", "template": {"name": "t"}}`), false},
	{"template language without a code", doc(`{"id": "a", "type": "message", "template": {"name": "t", "language": {"code": ""}}}`), false},
	{"template language with an unknown field", doc(`{"id": "a", "type": "message", "template": {"name": "t", "language": {"code": "en", "region": "IN"}}}`), false},
	{"decision without branches", doc(`{"id": "a", "type": "decision", "branches": [], "else": "b"}`, `{"id": "b", "type": "end"}`), false},
	{"branch without next", doc(`{"id": "a", "type": "decision", "branches": [{"when": {"attribute": "x", "op": "exists"}}]}`), false},
	{"branch without a condition", doc(`{"id": "a", "type": "decision", "branches": [{"next": "b"}]}`, `{"id": "b", "type": "end"}`), false},
	{"group and test", cond(`{"all": [{"attribute": "x", "op": "exists"}], "attribute": "y", "op": "exists"}`), false},
	{"all and any", cond(`{"all": [{"attribute": "x", "op": "exists"}], "any": [{"attribute": "y", "op": "exists"}]}`), false},
	{"op without attribute", cond(`{"op": "exists"}`), false},
	{"attribute without op", cond(`{"attribute": "x"}`), false},
	{"bad attribute in a condition", cond(`{"attribute": "x y", "op": "exists"}`), false},
	{"exists with a value", cond(`{"attribute": "x", "op": "exists", "value": "y"}`), false},
	{"eq without a value", cond(`{"attribute": "x", "op": "eq"}`), false},
	{"eq with a list", cond(`{"attribute": "x", "op": "eq", "value": ["y"]}`), false},
	{"gt with a boolean", cond(`{"attribute": "x", "op": "gt", "value": true}`), false},
	{"matches with a number", cond(`{"attribute": "x", "op": "matches", "value": 5}`), false},
	{"in with an empty list", cond(`{"attribute": "x", "op": "in", "value": []}`), false},
	{"in with an object", cond(`{"attribute": "x", "op": "in", "value": [{"a": 1}]}`), false},
	{"condition with an unknown field", cond(`{"attribute": "x", "op": "exists", "not": true}`), false},
	{"clear a bad attribute", doc(`{"id": "a", "type": "set", "clear": ["x y"]}`), false},
	{"set an empty object", doc(`{"id": "a", "type": "set", "set": {}, "clear": []}`), false},
	{"set a number", doc(`{"id": "a", "type": "set", "set": {"x": 1}}`), false},
	{"bad save_as", doc(`{"id": "a", "type": "input", "text": "x", "save_as": ".x"}`), false},
	{"input timeout over 30 days", doc(`{"id": "a", "type": "input", "text": "x", "timeout_seconds": 2592001}`), false},
	{"negative input timeout", doc(`{"id": "a", "type": "input", "text": "x", "timeout_seconds": -1}`), false},
	{"http timeout below 0", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "timeout_seconds": -1}`), false},
	{"http without a url", doc(`{"id": "a", "type": "http", "method": "GET"}`), false},
	{"http without a method", doc(`{"id": "a", "type": "http", "url": "https://x.example.com"}`), false},
	{"lower-case method", doc(`{"id": "a", "type": "http", "method": "get", "url": "https://x.example.com"}`), false},
	{"url without a scheme", doc(`{"id": "a", "type": "http", "method": "GET", "url": "{{base}}/orders"}`), false},
	{"bad header name", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "headers": {"X Token": "t"}}`), false},
	{"empty header name", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "headers": {"": "t"}}`), false},
	{"header value not a string", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "headers": {"X-N": 1}}`), false},
	{"mode none with content", doc(`{"id": "a", "type": "http", "method": "POST", "url": "https://x.example.com", "body": {"mode": "none", "content": "x"}}`), false},
	{"no mode with fields", doc(`{"id": "a", "type": "http", "method": "POST", "url": "https://x.example.com", "body": {"fields": {"a": "b"}}}`), false},
	{"query mode with content", doc(`{"id": "a", "type": "http", "method": "POST", "url": "https://x.example.com", "body": {"mode": "query", "content": "a=b"}}`), false},
	{"body with an unknown field", doc(`{"id": "a", "type": "http", "method": "POST", "url": "https://x.example.com", "body": {"mode": "raw", "charset": "utf-8"}}`), false},
	{"save to a bad attribute", doc(`{"id": "a", "type": "http", "method": "GET", "url": "https://x.example.com", "save": {"-x": "a"}}`), false},
	{"jump to a bad key", doc(`{"id": "a", "type": "jump", "flow": "no such key"}`), false},
	{"end with an unknown field", doc(`{"id": "a", "type": "end", "text": "bye"}`), false},
}

// cond is a document whose decision tests c.
func cond(c string) string {
	return doc(`{"id": "a", "type": "decision", "branches": [{"when": `+c+`, "next": "b"}]}`, `{"id": "b", "type": "end"}`)
}

func manyNodes(n int) string {
	nodes := make([]string, n)
	for i := range nodes {
		next := ""
		if i+1 < n {
			next = fmt.Sprintf(`, "next": "n%d"`, i+1)
		}
		nodes[i] = fmt.Sprintf(`{"id": "n%d", "type": "message", "text": "x"%s}`, i, next)
	}
	return `{"start": "n0", "nodes": [` + strings.Join(nodes, ",") + `]}`
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema))
	if err != nil {
		t.Fatalf("flow.schema.json: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("flow.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("flow.schema.json") // also checks it against the draft's metaschema
	if err != nil {
		t.Fatalf("flow.schema.json does not compile: %v", err)
	}
	return sch
}

// schemaCheck is the schema's verdict on a document: nil when valid.
func schemaCheck(sch *jsonschema.Schema, data []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

// onlyInexpressible reports whether every problem Parse found breaks a rule of
// schemaCannotExpress.
func onlyInexpressible(err error) bool {
	var verrs ValidationErrors
	if !errors.As(err, &verrs) || len(verrs) == 0 {
		return false
	}
	for _, e := range verrs {
		if !inexpressible(e.Error()) {
			return false
		}
	}
	return true
}

func inexpressible(msg string) bool {
	for _, r := range schemaCannotExpress {
		for _, m := range r.msgs {
			if strings.Contains(msg, m) {
				return true
			}
		}
	}
	return false
}

type flowDoc struct {
	name string
	data []byte
}

// flowDocuments collects every flow document of the repository: the JSON files (the demo
// flow, test data), the README's examples, every Go string literal that is a flow document
// (the tests' flows, the benchmarks'), and the tables of this package's tests.
func flowDocuments(t *testing.T) []flowDoc {
	t.Helper()
	var out []flowDoc
	seen := map[string]bool{}
	add := func(name string, data []byte) {
		if !seen[string(data)] {
			seen[string(data)] = true
			out = append(out, flowDoc{name, data})
		}
	}
	// addFlows adds data if it is a flow document, and every flow document nested in it.
	addFlows := func(name string, data []byte) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			return
		}
		var walk func(v any, top bool)
		walk = func(v any, top bool) {
			switch v := v.(type) {
			case map[string]any:
				if _, ok := v["nodes"].([]any); ok {
					if top {
						add(name, data)
					} else {
						b, _ := json.Marshal(v)
						add(name, b)
					}
				}
				for _, x := range v {
					walk(x, false)
				}
			case []any:
				for _, x := range v {
					walk(x, false)
				}
			}
		}
		walk(v, true)
	}

	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case rel == filepath.Join("internal", "flow", "flow.schema.json"):
		case strings.HasSuffix(path, ".json"):
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			addFlows(rel, data)
		case strings.HasSuffix(path, ".go"):
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(lit.Value)
				if err == nil && strings.Contains(s, `"nodes"`) {
					addFlows(fmt.Sprintf("%s:%d", rel, fset.Position(lit.Pos()).Line), []byte(s))
				}
				return true
			})
		case rel == "README.md":
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(data, -1) {
				addFlows("README.md", m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{filepath.Join("internal", "app", "demo_flow.json"), "README.md"} {
		found := false
		for _, d := range out {
			found = found || d.name == want
		}
		if !found {
			t.Errorf("found no flow document in %s", want)
		}
	}

	add("validDoc", []byte(validDoc))
	for _, c := range parseErrorCases {
		add("parseErrorCases/"+c.name, []byte(c.doc))
	}
	for _, c := range schemaCases {
		add("schemaCases/"+c.name, []byte(c.doc))
	}
	for _, r := range schemaCannotExpress {
		add("schemaCannotExpress/"+r.rule, []byte(r.example))
	}
	return out
}

// TestSchemaAgreesWithParse holds flow.schema.json and Parse to the same verdict on every
// flow document of the repository, except where a document breaks only rules listed in
// schemaCannotExpress.
func TestSchemaAgreesWithParse(t *testing.T) {
	sch := compileSchema(t)
	docs := flowDocuments(t)
	if len(docs) < len(parseErrorCases)+len(schemaCases)+20 {
		t.Fatalf("only %d flow documents found", len(docs))
	}
	valid := 0
	for _, d := range docs {
		perr := func() error { _, err := Parse(d.data); return err }()
		serr := schemaCheck(sch, d.data)
		switch {
		case perr == nil && serr == nil:
			valid++
		case perr != nil && serr != nil:
		case perr == nil:
			t.Errorf("%s: Parse accepts it, the schema does not: %v\n%s", d.name, serr, d.data)
		case !onlyInexpressible(perr):
			t.Errorf("%s: Parse refuses it, the schema accepts it: %v\n%s", d.name, perr, d.data)
		}
	}
	if valid < 10 {
		t.Errorf("only %d of %d documents are valid: the corpus should hold the repository's working flows", valid, len(docs))
	}
	t.Logf("%d flow documents, %d valid", len(docs), valid)
}

// TestSchemaCases checks the table itself: each case is what it says to Parse.
func TestSchemaCases(t *testing.T) {
	for _, c := range schemaCases {
		if _, err := Parse([]byte(c.doc)); (err == nil) != c.valid {
			t.Errorf("%s: Parse = %v; want valid = %v", c.name, err, c.valid)
		}
	}
}

// TestSchemaCannotExpress keeps the list of allowed disagreements honest: each example
// breaks its rule alone, Parse names the rule, and the schema indeed accepts it.
func TestSchemaCannotExpress(t *testing.T) {
	sch := compileSchema(t)
	for _, r := range schemaCannotExpress {
		_, perr := Parse([]byte(r.example))
		var verrs ValidationErrors
		if !errors.As(perr, &verrs) || len(verrs) == 0 {
			t.Errorf("%s: Parse accepts the example: %v", r.rule, perr)
			continue
		}
		for _, e := range verrs {
			named := false
			for _, m := range r.msgs {
				named = named || strings.Contains(e.Error(), m)
			}
			if !named {
				t.Errorf("%s: the example breaks another rule too: %v", r.rule, e)
			}
		}
		if err := schemaCheck(sch, []byte(r.example)); err != nil {
			t.Errorf("%s: the schema refuses the example, so the rule is not missing from it: %v", r.rule, err)
		}
	}
}
