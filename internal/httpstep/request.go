// Package httpstep is the flow's http node (SPEC section 4). request.go, client.go and
// mapping.go are the mechanics of one call — building the request from the node's
// templates, making it through a client that refuses the server's own network, reading
// the JSON response into paths later steps can use — and touch no database; service.go
// adds what lives in the database: the account's rate limit, the step's logs, structure
// changes and alert mail.
package httpstep

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/parleyhq/parley/internal/flow"
)

// Body modes of an http node.
const (
	ModeNone  = "none"
	ModeQuery = "query"
	ModeJSON  = "json"
	ModeRaw   = "raw"
)

// Content types Build sets when the node does not set its own Content-Type header.
const (
	ContentTypeJSON    = "application/json"
	ContentTypeForm    = "application/x-www-form-urlencoded"
	ContentTypeRawText = "text/plain; charset=utf-8"
)

// Call is a request ready to be made: every template rendered and escaped.
type Call struct {
	Method string
	URL    string
	// Header holds every header Build decided on, Content-Type included when there is one.
	Header http.Header
	Body   []byte
	// ContentType is the effective Content-Type ("" when there is no body and the node set
	// none); it always equals Header.Get("Content-Type").
	ContentType string
}

// RequestError says why a node's request could not be built. The engine reports it as a
// failed call of kind invalid_request.
type RequestError struct {
	Node   string // the node's id
	Field  string // url, method, headers.X-Name, body.content, ...
	Reason string
	Err    error // the underlying error, if any
}

func (e *RequestError) Error() string {
	s := fmt.Sprintf("http node %q: %s: %s", e.Node, e.Field, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *RequestError) Unwrap() error { return e.Err }

// fieldsInURL lists the methods whose query-mode fields go into the URL: these methods
// carry no body by convention, and some servers reject one.
var fieldsInURL = map[string]bool{http.MethodGet: true, http.MethodHead: true, http.MethodDelete: true, http.MethodOptions: true}

var methods = map[string]bool{
	http.MethodGet: true, http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true,
	http.MethodDelete: true, http.MethodHead: true, http.MethodOptions: true,
}

// Build renders the node's templates with lookup into a Call. Values substituted into the
// URL are path- or query-escaped, into a JSON body JSON-escaped, and elsewhere inserted as
// they are (header values lose CR and LF so they cannot start a new header).
func Build(n *flow.HTTPNode, lookup flow.Lookup) (*Call, error) {
	if n == nil {
		return nil, &RequestError{Field: "node", Reason: "missing"}
	}
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	fail := func(field, reason string, err error) (*Call, error) {
		return nil, &RequestError{Node: n.ID, Field: field, Reason: reason, Err: err}
	}

	method := strings.ToUpper(strings.TrimSpace(n.Method))
	if !methods[method] {
		return fail("method", fmt.Sprintf("%q is not one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS", n.Method), nil)
	}
	u, err := url.Parse(strings.TrimSpace(flow.Render(n.URL, lookup, flow.EscapeURL)))
	if err != nil {
		// url.Error repeats the whole URL, which may carry secrets: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fail("url", "not a valid URL after substitution", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fail("url", "the URL must start with http:// or https://", nil)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fail("url", "the URL has no host", nil)
	}
	// A fragment is never sent; dropping it keeps logs to what went over the wire.
	u.Fragment, u.RawFragment = "", ""

	c := &Call{Method: method, Header: make(http.Header, len(n.Headers)+1)}

	// Sorted, so that two names differing only in case resolve the same way every time.
	for _, name := range slices.Sorted(maps.Keys(n.Headers)) {
		canon := http.CanonicalHeaderKey(strings.TrimSpace(name))
		if !validHeaderName(canon) {
			return fail("headers", fmt.Sprintf("%q is not a valid header name", name), nil)
		}
		c.Header.Set(canon, cleanHeaderValue(flow.Render(n.Headers[name], lookup, flow.EscapeNone)))
	}

	mode := ModeNone
	if n.Body != nil && n.Body.Mode != "" {
		mode = n.Body.Mode
	}
	switch mode {
	case ModeNone:
	case ModeJSON:
		body := flow.Render(n.Body.Content, lookup, flow.EscapeJSON)
		if strings.TrimSpace(body) != "" {
			if !json.Valid([]byte(body)) {
				return fail("body.content", "not valid JSON after substitution", nil)
			}
			c.Body = []byte(body)
			c.ContentType = ContentTypeJSON
		}
	case ModeRaw:
		body := flow.Render(n.Body.Content, lookup, flow.EscapeNone)
		if body != "" {
			c.Body = []byte(body)
			c.ContentType = cleanHeaderValue(strings.TrimSpace(n.Body.ContentType))
			if c.ContentType == "" {
				c.ContentType = ContentTypeRawText
			}
		}
	case ModeQuery:
		form := make(url.Values, len(n.Body.Fields))
		for name, tmpl := range n.Body.Fields {
			form.Set(name, flow.Render(tmpl, lookup, flow.EscapeNone))
		}
		if len(form) > 0 {
			enc := form.Encode() // sorted by name: stable requests and logs
			if fieldsInURL[method] {
				if u.RawQuery == "" {
					u.RawQuery = enc
				} else {
					u.RawQuery += "&" + enc
				}
			} else {
				c.Body = []byte(enc)
				c.ContentType = ContentTypeForm
			}
		}
	default:
		return fail("body.mode", fmt.Sprintf("%q is not one of none, query, json, raw", mode), nil)
	}

	// The node's own Content-Type wins: some APIs want a vendor type for the same JSON.
	if ct := c.Header.Get("Content-Type"); ct != "" {
		c.ContentType = ct
	} else if c.ContentType != "" {
		c.Header.Set("Content-Type", c.ContentType)
	}

	c.URL = u.String()
	return c, nil
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 section 5.6.2), which is
// what the transport would otherwise refuse only at send time.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// cleanHeaderValue drops CR and LF, so a substituted value cannot add a header, and the
// other control characters (tab aside) that the transport would reject.
func cleanHeaderValue(v string) string {
	clean := true
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c >= 0x20 || c == '\t') && c != 0x7f {
			b.WriteByte(c)
		}
	}
	return b.String()
}
