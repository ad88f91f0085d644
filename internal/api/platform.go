package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/engine"
	"github.com/parleyhq/parley/internal/flow"
	"github.com/parleyhq/parley/internal/phone"
	"github.com/parleyhq/parley/internal/sanitize"
	"github.com/parleyhq/parley/internal/store"
)

// Limits on what a trigger may carry.
const (
	maxTriggerAttrs = 100
	maxWait         = 60 * time.Second
	defaultWait     = 30 * time.Second
	// maxIdempotencyKey bounds an Idempotency-Key (or operationid), in characters.
	maxIdempotencyKey = 200
	// maxPageNumber keeps (page_number-1)*page_size far from overflowing.
	maxPageNumber = math.MaxInt32
)

// triggerInput is a trigger after decoding, before validation.
type triggerInput struct {
	channel string
	phone   string
	attrs   map[string]string
}

// triggerV1 starts a flow from query parameters; a body, which real integrations send
// anyway, is ignored.
func (s *Server) triggerV1(w http.ResponseWriter, r *http.Request, p auth.Principal) *Error {
	received := time.Now()
	// Read the ignored body all the same: until the body is read, the server cannot
	// notice a client that hangs up while the trigger waits.
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		return bodyError(err)
	}
	in := triggerInput{attrs: map[string]string{}}
	for name, vals := range r.URL.Query() {
		v := vals[len(vals)-1]
		switch name {
		case "user.channel", "user_channel":
			in.channel = v
		case "user.phone_no", "user_phone_no":
			in.phone = v
		case "authorization", "wait", "wait_ms":
		default:
			if e := addAttr(in.attrs, name, v); e != nil {
				return e
			}
		}
	}
	return s.trigger(w, r, p, in, received)
}

// triggerV2 starts a flow from a flat JSON object of attributes.
func (s *Server) triggerV2(w http.ResponseWriter, r *http.Request, p auth.Principal) *Error {
	received := time.Now()
	var body map[string]any
	if e := decodeJSON(r, &body); e != nil {
		return e
	}
	if body == nil {
		return invalid("the body must be a JSON object")
	}
	in := triggerInput{attrs: map[string]string{}}
	for name, raw := range body {
		v, e := scalar(name, raw)
		if e != nil {
			return e
		}
		switch name {
		case "user.channel", "user_channel":
			in.channel = v
		case "user.phone_no", "user_phone_no":
			in.phone = v
		default:
			if e := addAttr(in.attrs, name, v); e != nil {
				return e
			}
		}
	}
	return s.trigger(w, r, p, in, received)
}

// scalar turns a JSON value into an attribute value. Nested objects and arrays are
// refused rather than flattened: flat attributes are what flows read.
func scalar(name string, v any) (string, *Error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	return "", invalid("attribute %q: nested objects and arrays are not accepted; send flat \"name\": value pairs (string, number or boolean)", name)
}

func addAttr(attrs map[string]string, name, v string) *Error {
	if !flow.ValidAttributeName(name) {
		return invalid("%q is not a valid attribute name: use letters, digits, _, - and . (at most 100)", name)
	}
	if err := sanitize.Check(v); err != nil {
		return invalid("attribute %q %v", name, err)
	}
	if sanitize.Len(v) > sanitize.MaxAttrValue {
		return invalid("attribute %q is longer than %d characters", name, sanitize.MaxAttrValue)
	}
	if len(attrs) >= maxTriggerAttrs {
		return invalid("more than %d attributes", maxTriggerAttrs)
	}
	attrs[name] = v
	return nil
}

// trigger starts the run; the wait, if any, counts from received, when the request came.
func (s *Server) trigger(w http.ResponseWriter, r *http.Request, p auth.Principal, in triggerInput, received time.Time) *Error {
	ch := strings.ToLower(strings.TrimSpace(in.channel))
	switch ch {
	case "":
		ch = channel.WhatsApp
	case channel.WhatsApp, channel.RCS:
	default:
		return invalid("user.channel %q is not supported: use whatsapp or rcs", in.channel)
	}
	if strings.TrimSpace(in.phone) == "" {
		return invalid("user.phone_no is required: the user's phone number with country code, e.g. 919876543210")
	}
	num, err := phone.Parse(in.phone)
	if err != nil {
		return invalid("user.phone_no: %v", err)
	}
	wait, e := waitParam(r.URL.Query())
	if e != nil {
		return e
	}
	in.attrs["user.channel"], in.attrs["user.phone_no"] = ch, num.E164
	idem := strings.TrimSpace(r.Header.Get("Idempotency-Key"))
	if err := sanitize.Check(idem); err != nil {
		return invalid("the Idempotency-Key header %v", err)
	}
	if idem == "" {
		idem = strings.TrimSpace(in.attrs["operationid"])
	}
	if sanitize.Len(idem) > maxIdempotencyKey {
		return invalid("the idempotency key is longer than %d characters", maxIdempotencyKey)
	}
	v, err := s.Engine.Trigger(r.Context(), engine.TriggerRequest{
		BotID: p.BotID, CustomerID: p.CustomerID, FlowKey: r.PathValue("flowKey"), Channel: ch,
		Phone: num.E164, Digits: num.Digits, Attrs: in.attrs, IdempotencyKey: idem, Wait: wait,
		Received: received,
	})
	switch {
	case errors.Is(err, engine.ErrFlowNotFound):
		return errorf(http.StatusNotFound, CodeNotFound, "FLOW_NOT_FOUND", "this bot has no flow with key %q", r.PathValue("flowKey"))
	case errors.Is(err, engine.ErrNotAccepted):
		// Nothing was stored (the engine made sure of it), so sending the trigger again
		// cannot start the flow twice.
		w.Header().Set("Retry-After", "1")
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "UNAVAILABLE",
			"the server is too busy with this account's runs to accept the trigger in time; nothing was started: send it again")
	case errors.Is(err, engine.ErrStopping):
		w.Header().Set("Retry-After", "1")
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "UNAVAILABLE", "the server is shutting down; nothing was started: send the trigger again")
	case err != nil:
		return s.failed(r, "trigger", err)
	}
	writeOK(w, v)
	return nil
}

// waitParam reads ?wait=true (wait up to 30 s) or ?wait_ms=N (at most 60 s). The wait
// counts from the trigger's arrival: the answer comes by then whatever the load, with the
// run as it then is (see engine.Trigger).
func waitParam(q url.Values) (time.Duration, *Error) {
	if ms := q.Get("wait_ms"); ms != "" {
		n, err := strconv.Atoi(ms)
		if err != nil || n < 0 {
			return 0, invalid("wait_ms must be a whole number of milliseconds")
		}
		return min(time.Duration(n)*time.Millisecond, maxWait), nil
	}
	switch strings.ToLower(q.Get("wait")) {
	case "", "false", "0":
		return 0, nil
	case "true", "1":
		return defaultWait, nil
	}
	return 0, invalid("wait must be true or false")
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request, p auth.Principal) *Error {
	v, err := s.Engine.View(r.Context(), p.BotID, r.PathValue("runId"))
	if errors.Is(err, engine.ErrRunNotFound) {
		return notFound("this bot has no run %q", r.PathValue("runId"))
	}
	if err != nil {
		return s.failed(r, "read run", err)
	}
	writeOK(w, v)
	return nil
}

// timestampLayout is the conversations API's time format, which public integrations parse.
const timestampLayout = "2006-01-02 15:04:05.000-0700"

func formatTime(t time.Time) string { return t.UTC().Format(timestampLayout) }

type userJSON struct {
	ChannelUserID string            `json:"channel_user_id"`
	Channel       string            `json:"channel"`
	Name          string            `json:"name"`
	CreatedAt     string            `json:"created_at"`
	CreatedAtMS   int64             `json:"created_at_ms"`
	UpdatedAt     string            `json:"updated_at"`
	UpdatedAtMS   int64             `json:"updated_at_ms"`
	Attributes    map[string]string `json:"attributes"`
}

func toUserJSON(u store.User) userJSON {
	return userJSON{ChannelUserID: u.ChannelUserID, Channel: u.Channel, Name: u.Attrs["user.user_name"],
		CreatedAt: formatTime(u.CreatedAt), CreatedAtMS: u.CreatedAt.UnixMilli(),
		UpdatedAt: formatTime(u.UpdatedAt), UpdatedAtMS: u.UpdatedAt.UnixMilli(), Attributes: u.Attrs}
}

// pageRequest is a list's page as asked: by number, or by a cursor from an earlier page.
type pageRequest struct {
	number, size int
	query        store.PageQuery
}

// page reads page_number, page_size and cursor (also accepted as after) for the list
// kind. A cursor carries its page's number, so a page reached by cursor reports the same
// page_number as the one asked for by number.
func page(q url.Values, kind string, defSize, maxSize int) (pageRequest, *Error) {
	p := pageRequest{number: 1, size: defSize}
	if v := q.Get("page_number"); v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 || n > maxPageNumber {
			return p, errorf(http.StatusBadRequest, CodeInvalidPage, "INVALID_PAGE_NUMBER",
				"Please enter the correct page number. The page number in the API is a positive integer value starting with 1 (at most %d).", maxPageNumber)
		}
		p.number = n
	}
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 || n > maxSize {
			return p, invalid("page_size must be a whole number from 1 to %d", maxSize)
		}
		p.size = n
	}
	p.query = store.PageQuery{Size: p.size, Skip: int64(p.number-1) * int64(p.size)}
	c := q.Get("cursor")
	if c == "" {
		c = q.Get("after")
	}
	if c != "" {
		number, key, ok := decodeCursor(kind, c)
		if !ok {
			return p, invalid("cursor is not a next_cursor this list gave: start again without it")
		}
		p.number, p.query.After, p.query.Skip = number, &key, 0
	}
	return p, nil
}

// encodeCursor makes the opaque cursor of the page after the one with this number, which
// ended at key; nil when there is no next page.
func encodeCursor(kind string, number int, key *store.PageKey) *string {
	if key == nil || number >= maxPageNumber {
		return nil
	}
	c := base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%s.%d.%d.%d", kind, number+1, key.Time, key.ID))
	return &c
}

func decodeCursor(kind, c string) (int, store.PageKey, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, store.PageKey{}, false
	}
	parts := strings.Split(string(b), ".")
	if len(parts) != 4 || parts[0] != kind {
		return 0, store.PageKey{}, false
	}
	number, err1 := strconv.Atoi(parts[1])
	t, err2 := strconv.ParseInt(parts[2], 10, 64)
	id, err3 := strconv.ParseInt(parts[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || number < 2 || number > maxPageNumber || t < 0 || id < 0 {
		return 0, store.PageKey{}, false
	}
	return number, store.PageKey{Time: t, ID: id}, true
}

// Cursor kinds: a cursor of one list is refused by another.
const (
	cursorUsers         = "u"
	cursorConversations = "c"
	cursorRecipients    = "r"
)

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, p auth.Principal) *Error {
	q := r.URL.Query()
	name, value := q.Get("attribute_name"), q.Get("attribute_value")
	if name == "" || !q.Has("attribute_value") {
		return invalid("attribute_name and attribute_value are required")
	}
	if !flow.ValidAttributeName(name) {
		return invalid("%q is not a valid attribute name", name)
	}
	if err := sanitize.Check(value); err != nil {
		return invalid("attribute_value %v", err)
	}
	pr, e := page(q, cursorUsers, 100, 500)
	if e != nil {
		return e
	}
	users, pg, err := s.Store.UsersByAttribute(r.Context(), p.BotID, name, value, pr.query)
	if err != nil {
		return s.failed(r, "list users", err)
	}
	out := make([]userJSON, len(users))
	for i, u := range users {
		out[i] = toUserJSON(u)
	}
	writeOK(w, map[string]any{"users": out, "page_number": pr.number, "page_size": pr.size, "total": pg.Total,
		"next_cursor": encodeCursor(cursorUsers, pr.number, pg.Next)})
	return nil
}

type messageJSON struct {
	MessageID   string          `json:"message_id"`
	Sender      string          `json:"sender"`
	Channel     string          `json:"channel"`
	Type        string          `json:"type"`
	Text        string          `json:"text"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	Status      string          `json:"status"`
	Error       string          `json:"error,omitempty"`
	ProviderID  string          `json:"provider_message_id,omitempty"`
	RunID       string          `json:"run_id,omitempty"`
	Timestamp   string          `json:"timestamp"`
	TimestampMS int64           `json:"timestamp_ms"`
}

func toMessageJSON(m store.Message) messageJSON {
	out := messageJSON{MessageID: strconv.FormatInt(m.ID, 10), Sender: m.Sender, Channel: m.Channel, Type: m.Type,
		Text: m.Text, Status: m.Status, Error: m.Error, Timestamp: formatTime(time.UnixMilli(m.CreatedAt)), TimestampMS: m.CreatedAt}
	if json.Valid(m.Payload) {
		out.Payload = m.Payload
	}
	if m.ProviderID != nil {
		out.ProviderID = *m.ProviderID
	}
	if m.RunID != nil {
		out.RunID = *m.RunID
	}
	return out
}

func (s *Server) conversations(w http.ResponseWriter, r *http.Request, p auth.Principal) *Error {
	return s.serveConversations(w, r, p.BotID)
}

// serveConversations answers the conversations API for a bot (the platform's and the
// admin API's route alike).
func (s *Server) serveConversations(w http.ResponseWriter, r *http.Request, botID int64) *Error {
	q := r.URL.Query()
	now := time.Now().UnixMilli()
	from, to := int64(0), now
	badDate := errorf(http.StatusBadRequest, CodeInvalidDate, "INVALID_INPUT_DATE_VALUE",
		"The start_date and end_date values are the time in milliseconds and the end_date should be greater than start_date.")
	for _, d := range []struct {
		name string
		dst  *int64
	}{{"start_date", &from}, {"end_date", &to}} {
		if v := strings.TrimSpace(q.Get(d.name)); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return badDate
			}
			*d.dst = n
		}
	}
	if to < from {
		return badDate
	}
	pr, e := page(q, cursorConversations, 500, 1000)
	if e != nil {
		return e
	}
	u, err := s.Store.UserByChannelID(r.Context(), botID, strings.TrimPrefix(r.PathValue("channelUserId"), "+"))
	if errors.Is(err, store.ErrNotFound) {
		return badBotOrCustomer()
	}
	if err != nil {
		return s.failed(r, "conversations: user", err)
	}
	msgs, pg, err := s.Store.Conversation(r.Context(), u.ID, from, to, pr.query)
	if err != nil {
		return s.failed(r, "conversations", err)
	}
	out := make([]messageJSON, len(msgs))
	for i, m := range msgs {
		out[i] = toMessageJSON(m)
	}
	writeOK(w, map[string]any{"channel_user_id": u.ChannelUserID, "conversations": out,
		"page_number": pr.number, "page_size": pr.size, "total": pg.Total, "next_cursor": encodeCursor(cursorConversations, pr.number, pg.Next)})
	return nil
}
