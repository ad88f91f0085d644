package httpstep

import (
	"maps"
	"net/http"
	"net/url"
	"strings"
)

// Redacted replaces a secret in a redacted Result.
const Redacted = "[REDACTED]"

// sensitiveHeaders are credential headers whose names hold none of sensitiveWords.
var sensitiveHeaders = map[string]bool{"cookie": true, "set-cookie": true}

// sensitiveWords mark a header, query parameter or form field as a credential when its
// name contains one (case-insensitively): "X-Api-Key", "access_token", "Authorization".
var sensitiveWords = []string{"key", "token", "secret", "password", "passwd", "auth", "session", "signature"}

func sensitiveName(name string) bool {
	n := strings.ToLower(name)
	if sensitiveHeaders[n] {
		return true
	}
	for _, w := range sensitiveWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// Redact returns a copy of r fit for logs: the values of credential headers (request and
// response), of query parameters and form fields named like credentials, and the password
// of a URL's userinfo, are replaced with "[REDACTED]". JSON bodies and the mapping are
// left as they are. r itself is not changed.
func Redact(r *Result) *Result {
	if r == nil {
		return nil
	}
	out := *r
	out.Request.Header = redactHeader(r.Request.Header)
	out.Request.URL = redactURL(r.Request.URL)
	if isForm(r.Request.Header) {
		out.Request.Body = redactQuery(r.Request.Body)
	}
	out.Response.Header = redactHeader(r.Response.Header)
	out.Response.URL = redactURL(r.Response.URL)
	out.Leaves = maps.Clone(r.Leaves)
	return &out
}

// RedactSecretHeaders returns r with the request headers named in secret (a node's
// secret_headers, any case) redacted, whatever their names; r is not changed. A nil r
// or an empty list gives r back.
func RedactSecretHeaders(r *Result, secret []string) *Result {
	if r == nil || len(secret) == 0 || len(r.Request.Header) == 0 {
		return r
	}
	out := *r
	out.Request.Header = r.Request.Header.Clone()
	for _, name := range secret {
		canon := http.CanonicalHeaderKey(strings.TrimSpace(name))
		if values, ok := out.Request.Header[canon]; ok {
			red := make([]string, len(values))
			for i := range red {
				red[i] = Redacted
			}
			out.Request.Header[canon] = red
		}
	}
	return &out
}

func isForm(h http.Header) bool {
	ct := strings.ToLower(strings.TrimSpace(h.Get("Content-Type")))
	return strings.HasPrefix(ct, ContentTypeForm)
}

func redactHeader(h http.Header) http.Header {
	if h == nil {
		return nil
	}
	out := make(http.Header, len(h))
	for name, values := range h {
		if !sensitiveName(name) {
			out[name] = append([]string(nil), values...)
			continue
		}
		red := make([]string, len(values))
		for i := range red {
			red[i] = Redacted
		}
		out[name] = red
	}
	return out
}

// redactURL hides the userinfo password and credential-named query parameters. It edits
// the text rather than re-encoding the whole URL, so the log shows the URL as it was sent.
func redactURL(raw string) string {
	if raw == "" {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Not a URL we can take apart: hide everything after "?" rather than risk a token.
		if before, _, found := strings.Cut(raw, "?"); found {
			return before + "?" + Redacted
		}
		return raw
	}
	changed := false
	if q := redactQuery(u.RawQuery); q != u.RawQuery {
		u.RawQuery = q
		changed = true
	}
	var userinfo string
	if u.User != nil {
		if _, has := u.User.Password(); has {
			// url.UserPassword would percent-encode the brackets; write it by hand.
			userinfo = url.User(u.User.Username()).String() + ":" + Redacted + "@"
			u.User = nil
			changed = true
		}
	}
	if !changed {
		return raw
	}
	s := u.String()
	if userinfo != "" {
		if scheme, rest, ok := strings.Cut(s, "://"); ok {
			s = scheme + "://" + userinfo + rest
		}
	}
	return s
}

// redactQuery redacts the values of credential-named fields of a form-encoded string,
// keeping the order and encoding of everything else.
func redactQuery(q string) string {
	if q == "" {
		return q
	}
	parts := strings.Split(q, "&")
	changed := false
	for i, part := range parts {
		rawName, _, _ := strings.Cut(part, "=")
		name := rawName
		if n, err := url.QueryUnescape(rawName); err == nil {
			name = n
		}
		if sensitiveName(name) {
			parts[i] = rawName + "=" + Redacted
			changed = true
		}
	}
	if !changed {
		return q
	}
	return strings.Join(parts, "&")
}
