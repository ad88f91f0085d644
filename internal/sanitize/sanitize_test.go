package sanitize

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCheckAndClean(t *testing.T) {
	for _, tc := range []struct {
		in    string
		err   error
		clean string
	}{
		{"", nil, ""},
		{"héllo, 世界", nil, "héllo, 世界"},
		{"a\x00b", ErrNUL, "ab"},
		{"a\xffb", ErrInvalid, "a\uFFFDb"},
		{"\x00\xc3", ErrNUL, "\uFFFD"},
	} {
		if err := Check(tc.in); !errors.Is(err, tc.err) {
			t.Errorf("Check(%q) = %v, want %v", tc.in, err, tc.err)
		}
		if got := Clean(tc.in); got != tc.clean || Check(got) != nil {
			t.Errorf("Clean(%q) = %q, want %q", tc.in, got, tc.clean)
		}
	}
	if got := string(CleanBytes([]byte("{\"a\":\"\xff\"}"))); got != "{\"a\":\"\uFFFD\"}" {
		t.Errorf("CleanBytes = %q", got)
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abcdef", 3, "abc"},
		{"ééé", 2, "éé"},
		{"ééé", 3, "ééé"},
		{"", 0, ""},
	} {
		if got := Truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"Acme Corp", true},
		{strings.Repeat("ñ", MaxName), true},
		{strings.Repeat("ñ", MaxName+1), false},
		{"a\nb", false},
		{"a\tb", false},
		{"a\x00b", false},
		{"a\xffb", false},
	} {
		if err := CheckName(tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckName(%.20q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestFind(t *testing.T) {
	type inner struct {
		Text string `json:"text"`
	}
	type embedded struct {
		Caption string `json:"caption"`
	}
	type outer struct {
		embedded
		Name   string            `json:"name,omitempty"`
		Skip   string            `json:"-"`
		Items  []inner           `json:"items"`
		Attrs  map[string]string `json:"attrs"`
		Ptr    *inner            `json:"ptr"`
		Raw    json.RawMessage   `json:"raw"`
		hidden string
	}
	var decoded map[string]any
	_ = json.Unmarshal([]byte(`{"b": [1, {"c": "x\u0000"}], "a": "ok"}`), &decoded)
	for _, tc := range []struct {
		name string
		v    any
		path string
	}{
		{"clean", outer{Name: "n", Items: []inner{{"t"}}, Attrs: map[string]string{"k": "v"}, Raw: json.RawMessage("\"\\u0000\""), hidden: "\x00"}, ""},
		{"field", outer{Name: "a\x00"}, "name"},
		{"slice", outer{Items: []inner{{"ok"}, {"\xff"}}}, "items[1].text"},
		{"map value", outer{Attrs: map[string]string{"k": "\x00"}}, "attrs.k"},
		{"map key", outer{Attrs: map[string]string{"k\x00": "v"}}, `attrs."k\x00"`},
		{"pointer", outer{Ptr: &inner{"\x00"}}, "ptr.text"},
		{"embedded", outer{embedded: embedded{"\x00"}}, "caption"},
		{"ignored field", outer{Skip: "\x00"}, ""},
		{"decoded JSON", decoded, "b[1].c"},
		{"nil", nil, ""},
	} {
		path, err := Find(tc.v)
		if path != tc.path || (err != nil) != (tc.path != "") {
			t.Errorf("%s: Find = %q, %v; want %q", tc.name, path, err, tc.path)
		}
	}
}
