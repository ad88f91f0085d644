package flow

import (
	"net/url"
	"strings"
)

// Markers of a button payload. Both are matched case-insensitively.
const (
	payloadFlowPrefix = "flow_"
	payloadDataSep    = "||data_"
)

// ParseButtonPayload reads a quick-reply button payload that starts a flow with
// attributes set, as WhatsApp template buttons and RCS suggestions carry it.
//
// Grammar (after trimming leading and trailing white space):
//
//	payload = "flow_" key [ "||data_" [ pairs ] ]
//	key     = 1*100 ( ALPHA / DIGIT / "_" / "-" )
//	pairs   = pair *( "_" pair )
//	pair    = attr "=" value
//
// "flow_" and "||data_" are matched case-insensitively; the key is returned as given
// (flow keys are compared case-insensitively later). Because attribute names and values
// may both contain "_", the data part is split at every "=" and each segment that lies
// between two "=" signs is split at its FIRST "_": the text before it is the previous
// pair's value, the text after it the next pair's name. So in every pair but the last
// the value cannot contain "_" (names can), and the last value runs to the end:
//
//	data_personx_response=declined_invoice_no_12345  ->  personx_response = "declined_invoice_no_12345"
//	data_a=1_order_id=77                             ->  a = "1", order_id = "77"
//
// No value can contain "=". A value holding %XX escapes is URL-unescaped (so "%5F" and
// "%3D" carry "_" and "=" where the grammar forbids them; "+" stays "+"); when
// unescaping fails the value is kept as written. Values may be empty. Every attribute
// name must satisfy ValidAttributeName. When a name repeats, the last value wins.
// "||data_" with nothing after it gives no attributes.
//
// ok is false when the payload does not start with "flow_" (the caller separately
// tries the payload as a bare flow key), when the key is empty or invalid, when
// anything other than "||data_" follows the key, and when the data part is malformed:
// a pair without "=", a segment between two "=" signs without "_", or an invalid name.
func ParseButtonPayload(s string) (flowKey string, attrs map[string]string, ok bool) {
	s = strings.TrimSpace(s)
	if len(s) < len(payloadFlowPrefix) || !strings.EqualFold(s[:len(payloadFlowPrefix)], payloadFlowPrefix) {
		return "", nil, false
	}
	rest := s[len(payloadFlowPrefix):]

	// A key cannot contain "|", so the first "|" ends it.
	key, data, hasData := rest, "", false
	if i := strings.IndexByte(rest, '|'); i >= 0 {
		key = rest[:i]
		tail := rest[i:]
		if len(tail) < len(payloadDataSep) || !strings.EqualFold(tail[:len(payloadDataSep)], payloadDataSep) {
			return "", nil, false
		}
		data, hasData = tail[len(payloadDataSep):], true
	}
	if !ValidKey(key) {
		return "", nil, false
	}
	attrs = map[string]string{}
	if !hasData || data == "" {
		return key, attrs, true
	}
	if !parsePayloadPairs(data, attrs) {
		return "", nil, false
	}
	return key, attrs, true
}

// parsePayloadPairs fills attrs from the data part by the rules in ParseButtonPayload's
// comment and reports whether the part was well formed.
func parsePayloadPairs(data string, attrs map[string]string) bool {
	segs := strings.Split(data, "=")
	if len(segs) < 2 {
		return false // no "=" at all
	}
	name := segs[0]
	for i := 1; i < len(segs); i++ {
		var value, next string
		if i == len(segs)-1 {
			value = segs[i]
		} else {
			j := strings.IndexByte(segs[i], '_')
			if j < 0 {
				return false // "a=1=2": nothing separates the value from a next name
			}
			value, next = segs[i][:j], segs[i][j+1:]
		}
		if !ValidAttributeName(name) {
			return false
		}
		attrs[name] = unescapePayloadValue(value)
		name = next
	}
	return true
}

// unescapePayloadValue decodes %XX escapes. Path rules, not query rules, so that a "+"
// typed into a payload keeps its meaning.
func unescapePayloadValue(v string) string {
	if !strings.Contains(v, "%") {
		return v
	}
	u, err := url.PathUnescape(v)
	if err != nil {
		return v
	}
	return u
}
