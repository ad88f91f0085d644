package flow

import (
	"encoding/json"
	"net/url"
	"strings"
)

// Escape says how a substituted value is escaped for where it lands.
type Escape int

const (
	// EscapeNone inserts values as they are (message text).
	EscapeNone Escape = iota
	// EscapeJSON escapes values for the inside of a JSON string; a value in place of a
	// number comes out unchanged when it is one.
	EscapeJSON
	// EscapeURL path-escapes values before the template's first "?" and query-escapes
	// them after it.
	EscapeURL
)

// Lookup resolves a reference; ok is false for a name that has no value (rendered as "").
type Lookup func(name string) (value string, ok bool)

// Render substitutes every {{name}} in s. It only ever looks names up: there are no
// expressions, calls or loops, so a template cannot run code. An unclosed "{{" is kept as
// literal text.
func Render(s string, lookup Lookup, esc Escape) string {
	if !strings.Contains(s, "{{") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	inQuery := false
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.Index(s[i+2:], "}}")
		if j < 0 {
			b.WriteString(s)
			return b.String()
		}
		lit := s[:i]
		if esc == EscapeURL && !inQuery && strings.Contains(lit, "?") {
			inQuery = true
		}
		b.WriteString(lit)
		name := strings.TrimSpace(s[i+2 : i+2+j])
		v, _ := lookup(name)
		switch esc {
		case EscapeJSON:
			b.WriteString(jsonEscape(v))
		case EscapeURL:
			if inQuery {
				b.WriteString(url.QueryEscape(v))
			} else {
				b.WriteString(url.PathEscape(v))
			}
		default:
			b.WriteString(v)
		}
		s = s[i+2+j+2:]
	}
}

// jsonEscape returns v escaped for the inside of a JSON string, without the quotes.
func jsonEscape(v string) string {
	b, err := json.Marshal(v)
	if err != nil || len(b) < 2 {
		return ""
	}
	return string(b[1 : len(b)-1])
}

// References lists the names referenced in s, in order, with repeats.
func References(s string) []string {
	var out []string
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			return out
		}
		j := strings.Index(s[i+2:], "}}")
		if j < 0 {
			return out
		}
		out = append(out, strings.TrimSpace(s[i+2:i+2+j]))
		s = s[i+2+j+2:]
	}
}
