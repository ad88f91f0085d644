// Package api serves Parley's HTTP API: the Engati-compatible platform API, the admin
// API and the channel webhooks. Handlers decode, validate, call the domain packages and
// write the platform's envelope; they hold no SQL.
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/parleyhq/parley/internal/sanitize"
)

// Status codes of the envelope. 1000–1004 are the vendor's; the rest are Parley's, one
// per kind of failure, so scripts can tell them apart without parsing sentences.
const (
	CodeSuccess              = 1000
	CodeInvalidInput         = 1001
	CodeInvalidBotOrCustomer = 1002
	CodeInvalidDate          = 1003
	CodeInvalidPage          = 1004
	CodeNotFound             = 1005
	CodePayloadTooLarge      = 1006
	CodeRateLimited          = 1007
	CodeUnauthorized         = 1008
	CodeForbidden            = 1009
	CodeMethodNotAllowed     = 1010
	CodeConflict             = 1011
	CodeMessageNotSent       = 1012
	CodeUnavailable          = 1013
	// CodeClientClosed goes with HTTP 499 when the client went away before the answer:
	// nobody receives it, but logs and metrics tell it apart from a failure of Parley's.
	CodeClientClosed = 1499
	CodeInternal     = 1500
)

// Status is the envelope's status member.
type Status struct {
	Code    int    `json:"code"`
	Desc    string `json:"desc"`
	Details string `json:"details,omitempty"`
}

type envelope struct {
	Status         Status `json:"status"`
	ResponseObject any    `json:"responseObject,omitempty"`
}

// Error is a failure to report in the envelope.
type Error struct {
	HTTP    int
	Code    int
	Desc    string
	Details string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Code, e.Desc, e.Details) }

func errorf(httpStatus, code int, desc, format string, args ...any) *Error {
	return &Error{HTTP: httpStatus, Code: code, Desc: desc, Details: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, CodeInvalidInput, "INVALID_INPUT", format, args...)
}

func notFound(format string, args ...any) *Error {
	return errorf(http.StatusNotFound, CodeNotFound, "NOT_FOUND", format, args...)
}

func badBotOrCustomer() *Error {
	return errorf(http.StatusBadRequest, CodeInvalidBotOrCustomer, "INVALID_BOT_OR_CUSTOMER_ID",
		"The bot id/customer id/user id provided is invalid")
}

func unauthorized(details string) *Error {
	return errorf(http.StatusUnauthorized, CodeUnauthorized, "UNAUTHORIZED", "%s", details)
}

func forbidden(details string) *Error {
	return errorf(http.StatusForbidden, CodeForbidden, "FORBIDDEN", "%s", details)
}

func methodNotAllowed(method, path, allow string) *Error {
	return errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "METHOD_NOT_ALLOWED",
		"%s is not allowed on %s; allowed: %s", method, path, allow)
}

// StatusClientClosedRequest is the status logged for a request whose client went away
// before the answer (nginx's 499).
const StatusClientClosedRequest = 499

func clientClosed() *Error {
	return errorf(StatusClientClosedRequest, CodeClientClosed, "CLIENT_CLOSED_REQUEST",
		"the client closed the connection before the answer")
}

func internalError() *Error {
	return errorf(http.StatusInternalServerError, CodeInternal, "INTERNAL_ERROR",
		"Something went wrong on our side; the request was logged")
}

// writeJSON writes v with the given HTTP status.
func writeJSON(w http.ResponseWriter, httpStatus int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(httpStatus)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// writeOK writes the success envelope around obj.
func writeOK(w http.ResponseWriter, obj any) {
	writeJSON(w, http.StatusOK, envelope{Status: Status{Code: CodeSuccess, Desc: "Success"}, ResponseObject: obj})
}

// writeError writes e in the envelope.
func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.HTTP, envelope{Status: Status{Code: e.Code, Desc: e.Desc, Details: e.Details}})
}

// maxBody is the largest request body the API reads.
const maxBody = 1 << 20

// decodeJSON reads a JSON object body into v, refusing garbage, trailing data, bodies
// over the limit, and text the database cannot store, with errors fit for the envelope.
// Unknown fields are ignored, as the vendor's API does.
func decodeJSON(r *http.Request, v any) *Error { return decodeBody(r, v, false) }

// decodeStrict is decodeJSON refusing unknown fields, so a misspelt setting is reported
// rather than silently dropped (every admin body).
func decodeStrict(r *http.Request, v any) *Error { return decodeBody(r, v, true) }

func decodeBody(r *http.Request, v any, strict bool) *Error {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return bodyError(err)
	}
	return decodeBytes(raw, v, strict)
}

// decodeBytes decodes one JSON value from raw into v. The body must be UTF-8 (JSON's
// encoding: encoding/json would silently replace bad bytes), and no string in it, names
// included, may hold a NUL character.
func decodeBytes(raw []byte, v any, strict bool) *Error {
	if !utf8.Valid(raw) {
		return invalid("the body is not valid UTF-8 (at byte %d)", invalidUTF8At(raw))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return bodyError(err)
		}
		return invalid("the body holds more than one JSON value")
	}
	return textError(v)
}

// textError refuses the first string in a decoded body that cannot be stored, naming
// its field.
func textError(v any) *Error {
	if path, err := sanitize.Find(v); err != nil {
		if path == "" {
			path = "the body"
		}
		return invalid("%s %v", path, err)
	}
	return nil
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

func bodyError(err error) *Error {
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return errorf(http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "PAYLOAD_TOO_LARGE",
			"the body is larger than %d bytes", tooBig.Limit)
	case errors.Is(err, io.EOF):
		return invalid("the body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("the body is cut short: not complete JSON")
	case errors.As(err, &syntax):
		return invalid("the body is not valid JSON (at byte %d): %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return invalid("the body must be a JSON object, not %s", typ.Value)
		}
		return invalid("%s must not be %s", field, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return invalid("%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return invalid("the body could not be read: %v", err)
}
