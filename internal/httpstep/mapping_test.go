package httpstep

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/flow"
)

// decode reads JSON the way Do does.
func decode(t testing.TB, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return v
}

func TestLeaves(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		json string
		want map[string]string
	}{
		{"nested objects and arrays",
			`{"customer":{"tier":"gold","id":42},"items":[{"sku":"A1","qty":2},{"sku":"B2","qty":1.50}],"tags":["x","y"],"ok":true,"no":false,"none":null}`,
			map[string]string{"customer.tier": "gold", "customer.id": "42", "items.0.sku": "A1", "items.0.qty": "2",
				"items.1.sku": "B2", "items.1.qty": "1.50", "tags.0": "x", "tags.1": "y", "ok": "true", "no": "false", "none": ""}},
		{"numbers keep their text", `{"big":12345678901234567890,"exp":1e-7,"neg":-0.0}`,
			map[string]string{"big": "12345678901234567890", "exp": "1e-7", "neg": "-0.0"}},
		{"top-level array", `[{"a":1},[2,3]]`, map[string]string{"0.a": "1", "1.0": "2", "1.1": "3"}},
		{"keys a path cannot hold are skipped with their subtree",
			`{"a.b":1,"":2,"sp ace":3,"x":{"$ref":{"deep":1},"ok-key_1":"v"},"ü":4}`,
			map[string]string{"x.ok-key_1": "v"}},
		{"empty containers give nothing", `{"a":{},"b":[]}`, map[string]string{}},
		{"scalar at the top gives nothing", `"text"`, map[string]string{}},
		{"strings are unescaped", `{"s":"line\nnext \"q\" \u00e9"}`, map[string]string{"s": "line\nnext \"q\" é"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Leaves(decode(t, tt.json))
			if !maps.Equal(got, tt.want) {
				t.Errorf("Leaves = %v\nwant     %v", got, tt.want)
			}
			for p, v := range tt.want {
				if got, ok := Lookup(got, p); !ok || got != v {
					t.Errorf("Lookup(%q) = %q, %v", p, got, ok)
				}
			}
		})
	}
	if _, ok := Lookup(map[string]string{"a": "1"}, "b"); ok {
		t.Error("Lookup found a missing path")
	}
}

func TestLeavesWithoutUseNumber(t *testing.T) {
	t.Parallel()
	var v any
	if err := json.Unmarshal([]byte(`{"n":1.5,"i":3}`), &v); err != nil {
		t.Fatal(err)
	}
	if got := Leaves(v); got["n"] != "1.5" || got["i"] != "3" {
		t.Errorf("Leaves = %v", got)
	}
}

func TestLeavesCap(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString(`{"list":[`)
	for i := range 3000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"i":%d}`, i)
	}
	b.WriteString(`],"z":"last"}`)
	got := Leaves(decode(t, b.String()))
	if len(got) != MaxLeaves {
		t.Fatalf("%d leaves, want %d", len(got), MaxLeaves)
	}
	if got["list.0.i"] != "0" || got["list.1999.i"] != "1999" || got["list.2000.i"] != "" || got["z"] != "" {
		t.Errorf("kept the wrong leaves: list.0.i=%q list.1999.i=%q", got["list.0.i"], got["list.1999.i"])
	}
}

func TestLeavesDepth(t *testing.T) {
	t.Parallel()
	deep := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	if got := Leaves(decode(t, deep(maxDepth))); len(got) != 1 {
		t.Errorf("depth %d: leaves %v", maxDepth, got)
	}
	if got := Leaves(decode(t, deep(maxDepth+1))); len(got) != 0 {
		t.Errorf("depth %d: %d leaves, want none", maxDepth+1, len(got))
	}
	// Deep nesting must stay cheap: this would be gigabytes of paths if every level
	// built its own.
	v := decode(t, strings.Repeat("[", 5000)+strings.Repeat("]", 5000))
	_ = Leaves(v)
	if s := Shape(v); len(s) > 64*maxDepth*4 {
		t.Errorf("shape of deep nesting is %d bytes", len(s))
	}
}

func TestShapeStable(t *testing.T) {
	t.Parallel()
	base := `{"customer":{"id":1,"tier":"gold"},"items":[{"sku":"A","qty":1}],"ok":true}`
	same := []struct{ name, json string }{
		{"other values", `{"customer":{"id":99,"tier":"silver"},"items":[{"sku":"Z","qty":7}],"ok":false}`},
		{"other key order", `{"ok":true,"items":[{"qty":1,"sku":"A"}],"customer":{"tier":"gold","id":1}}`},
		{"longer list", `{"customer":{"id":1,"tier":"gold"},"items":[{"sku":"A","qty":1},{"sku":"B","qty":2},{"sku":"C","qty":3}],"ok":true}`},
		{"unmappable keys do not count", `{"customer":{"id":1,"tier":"gold"},"items":[{"sku":"A","qty":1}],"ok":true,"a.b":1}`},
	}
	want := Shape(decode(t, base))
	for _, tt := range same {
		if got := Shape(decode(t, tt.json)); got != want {
			t.Errorf("%s: shape\n%s\nwant\n%s", tt.name, got, want)
		}
	}
	if want != "$ object\n$.customer object\n$.customer.id number\n$.customer.tier string\n$.items array\n$.items.[] object\n$.items.[].qty number\n$.items.[].sku string\n$.ok boolean" {
		t.Errorf("shape format changed:\n%s", want)
	}
}

func TestShapeChanged(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		recorded, now string
		want          bool
	}{
		{"same", `{"a":1}`, `{"a":2}`, false},
		{"longer list", `{"l":[{"x":1}]}`, `{"l":[{"x":1},{"x":2},{"x":3}]}`, false},
		{"empty list now", `{"l":[{"x":1}]}`, `{"l":[]}`, false},
		{"empty list before", `{"l":[]}`, `{"l":[{"x":1}]}`, false},
		{"null now", `{"c":{"x":1}}`, `{"c":null}`, false},
		{"null before", `{"c":null}`, `{"c":"text"}`, false},
		{"null elements in a list", `{"l":[{"x":1}]}`, `{"l":[null,{"x":2}]}`, false},
		{"key added", `{"a":1}`, `{"a":1,"b":2}`, true},
		{"key removed", `{"a":1,"b":2}`, `{"a":1}`, true},
		{"key removed that was null", `{"a":1,"b":null}`, `{"a":1}`, true},
		{"type changed", `{"a":1}`, `{"a":"1"}`, true},
		{"object became array", `{"a":{"x":1}}`, `{"a":[{"x":1}]}`, true},
		{"empty list became object", `{"a":[]}`, `{"a":{}}`, true},
		{"element structure changed", `{"l":[{"x":1}]}`, `{"l":[{"y":1}]}`, true},
		{"nested key renamed", `{"c":{"tier":"g"}}`, `{"c":{"level":"g"}}`, true},
		{"empty object filled", `{"m":{}}`, `{"m":{"k":1}}`, true},
		{"top level kind", `{"a":1}`, `[{"a":1}]`, true},
		{"mixed list gains a type", `{"l":[1]}`, `{"l":[1,"a"]}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := Shape(decode(t, tt.recorded)), Shape(decode(t, tt.now))
			if got := ShapeChanged(a, b); got != tt.want {
				t.Errorf("ShapeChanged = %v, want %v\nrecorded:\n%s\nnow:\n%s", got, tt.want, a, b)
			}
			if ShapeChanged(a, a) || ShapeChanged(b, b) {
				t.Error("a shape differs from itself")
			}
		})
	}
}

func FuzzLeaves(f *testing.F) {
	for _, s := range []string{
		`{"customer":{"tier":"gold"},"items":[{"sku":"A1"}],"n":1.50,"b":true,"z":null}`,
		`[1,[2,[3,{"a.b":{"c":1}}]]]`, `{"":{"":""}}`, `"x"`, `{"a":[],"b":{}}`, `[[],[[]],{}]`,
		`{"x":[1,"a",null,{"k":[]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			return
		}
		leaves := Leaves(v)
		if len(leaves) > MaxLeaves {
			t.Fatalf("%d leaves", len(leaves))
		}
		for p, val := range leaves {
			if !flow.ValidPath(p) {
				t.Fatalf("leaf path %q is not a valid path", p)
			}
			if got, ok := Lookup(leaves, p); !ok || got != val {
				t.Fatalf("Lookup(%q) = %q, %v", p, got, ok)
			}
		}
		if again := Leaves(v); !maps.Equal(again, leaves) {
			t.Fatal("Leaves is not deterministic")
		}
		s := Shape(v)
		if Shape(v) != s {
			t.Fatal("Shape is not deterministic")
		}
		if ShapeChanged(s, s) {
			t.Fatal("a shape differs from itself")
		}
	})
}
