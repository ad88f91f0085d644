package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/catalog"
	"github.com/parleyhq/parley/internal/engine"
	"github.com/parleyhq/parley/internal/flow"
	"github.com/parleyhq/parley/internal/store"
)

// browseRoutes serve what the console lists and reads: a bot's runs, users and their
// conversations, a flow's versions, and "Try it" (a trigger without an API key). They
// are ordinary admin routes: whatever the console shows, a script can read too.
func (s *Server) browseRoutes() {
	m := s.mux
	const b = "/admin/v1/customers/{cid}/bots/{botKey}"
	m.HandleFunc("GET "+b+"/runs", s.admin(s.listRuns))
	m.HandleFunc("GET "+b+"/users", s.admin(s.adminUsers))
	m.HandleFunc("GET "+b+"/users/{channelUserId}", s.admin(s.adminUser))
	m.HandleFunc("GET "+b+"/users/{channelUserId}/conversations", s.admin(s.adminConversations))
	m.HandleFunc("GET "+b+"/flows/{flowKey}/versions", s.admin(s.flowVersions))
	m.HandleFunc("GET "+b+"/flows/{flowKey}/versions/{version}", s.admin(s.flowVersion))
	m.HandleFunc("POST "+b+"/flows/{flowKey}/trigger", s.admin(s.adminTrigger))
}

// List sizes of the admin lists.
const (
	defaultListLimit = 50
	maxListLimit     = 200
)

func listLimit(q url.Values) (int, *Error) {
	v := strings.TrimSpace(q.Get("limit"))
	if v == "" {
		return defaultListLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxListLimit {
		return 0, invalid("limit must be a whole number from 1 to %d", maxListLimit)
	}
	return n, nil
}

// timeParam reads a time given as RFC 3339 or as Unix milliseconds; 0 when absent.
func timeParam(q url.Values, name string) (int64, *Error) {
	v := strings.TrimSpace(q.Get(name))
	if v == "" {
		return 0, nil
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms >= 0 {
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return 0, errorf(http.StatusBadRequest, CodeInvalidDate, "INVALID_INPUT_DATE_VALUE",
			"%s must be an RFC 3339 time (2024-03-10T12:00:00Z) or Unix milliseconds", name)
	}
	return t.UnixMilli(), nil
}

type runSummaryJSON struct {
	RunID         string    `json:"run_id"`
	FlowKey       string    `json:"flow_key"`
	FlowVersion   int       `json:"flow_version"`
	Status        string    `json:"status"`
	Channel       string    `json:"channel"`
	ChannelUserID string    `json:"channel_user_id"`
	CurrentNode   string    `json:"current_node,omitempty"`
	Error         string    `json:"error,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

var runStatuses = []string{store.RunQueued, store.RunRunning, store.RunWaiting, store.RunCompleted, store.RunFailed}

// listRuns lists a bot's runs newest first: ?flow=&user=&status=&since=&until=&limit=&cursor=
// (user: a channel user id).
// The cursor is the last run id of the previous page.
func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) *Error {
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	q := r.URL.Query()
	f := store.RunFilter{BotID: b.ID, Before: strings.TrimSpace(q.Get("cursor"))}
	if f.Limit, e = listLimit(q); e != nil {
		return e
	}
	if key := strings.TrimSpace(q.Get("flow")); key != "" {
		rec, err := s.Store.FlowByKey(r.Context(), b.ID, key)
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusNotFound, CodeNotFound, "FLOW_NOT_FOUND", "this bot has no flow with key %s", strconvQuote(key))
		}
		if err != nil {
			return s.storeError(r, "flow", err)
		}
		f.FlowID = rec.ID
	}
	if cuid := strings.TrimPrefix(strings.TrimSpace(q.Get("user")), "+"); cuid != "" {
		u, err := s.Store.UserByChannelID(r.Context(), b.ID, cuid)
		if errors.Is(err, store.ErrNotFound) {
			writeOK(w, map[string]any{"runs": []runSummaryJSON{}, "next_cursor": nil})
			return nil
		}
		if err != nil {
			return s.storeError(r, "user", err)
		}
		f.UserID = u.ID
	}
	if st := strings.TrimSpace(q.Get("status")); st != "" {
		ok := false
		for _, known := range runStatuses {
			ok = ok || st == known
		}
		if !ok {
			return invalid("status must be one of %s", strings.Join(runStatuses, ", "))
		}
		f.Status = st
	}
	if f.Since, e = timeParam(q, "since"); e != nil {
		return e
	}
	if f.Until, e = timeParam(q, "until"); e != nil {
		return e
	}
	runs, err := s.Store.RunSummaries(r.Context(), f)
	if err != nil {
		return s.storeError(r, "runs", err)
	}
	out := make([]runSummaryJSON, len(runs))
	for i, x := range runs {
		out[i] = runSummaryJSON{RunID: x.ID, FlowKey: x.FlowKey, FlowVersion: x.FlowVersion, Status: x.Status,
			Channel: x.Channel, ChannelUserID: x.ChannelUserID, Error: x.Error,
			CreatedAt: time.UnixMilli(x.CreatedAt).UTC(), UpdatedAt: time.UnixMilli(x.UpdatedAt).UTC()}
		if x.Status != store.RunCompleted && x.Status != store.RunFailed {
			out[i].CurrentNode = x.Node
		}
	}
	var next *string
	if len(runs) == f.Limit {
		next = &runs[len(runs)-1].ID
	}
	writeOK(w, map[string]any{"runs": out, "next_cursor": next})
	return nil
}

// adminRunStep is a step of a run's trace, with the log of the call an http node made.
type adminRunStep struct {
	Node      string `json:"node"`
	Type      string `json:"type"`
	Outcome   string `json:"outcome"`
	Error     string `json:"error,omitempty"`
	AtMS      int64  `json:"at_ms"`
	HTTPLogID int64  `json:"http_log_id,omitempty"`
}

type adminRunJSON struct {
	engine.RunView
	Steps    []adminRunStep `json:"steps"`
	Messages []messageJSON  `json:"messages"`
}

// adminRun is a run's trace for the console: the platform's run view, the messages the
// run sent, and, on each http node's step, the id of its call's log (while kept).
func (s *Server) adminRun(w http.ResponseWriter, r *http.Request) *Error {
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	ctx := r.Context()
	v, err := s.Engine.View(ctx, b.ID, r.PathValue("runId"))
	if errors.Is(err, engine.ErrRunNotFound) {
		return notFound("this bot has no run %s", strconvQuote(r.PathValue("runId")))
	}
	if err != nil {
		return s.storeError(r, "run", err)
	}
	msgs, err := s.Store.RunMessages(ctx, v.RunID)
	if err != nil {
		return s.storeError(r, "run messages", err)
	}
	logs, err := s.Store.RunHTTPLogs(ctx, b.ID, v.RunID)
	if err != nil {
		return s.storeError(r, "run http logs", err)
	}
	// Calls are logged in the order the run made them: hand each http step of the trace
	// the next log of its node.
	byNode := map[string][]int64{}
	for _, l := range logs {
		byNode[l.NodeID] = append(byNode[l.NodeID], l.Seq)
	}
	out := adminRunJSON{RunView: v, Steps: make([]adminRunStep, len(v.Steps)), Messages: make([]messageJSON, len(msgs))}
	for i, st := range v.Steps {
		out.Steps[i] = adminRunStep{Node: st.Node, Type: st.Type, Outcome: st.Outcome, Error: st.Error, AtMS: st.At}
		if st.Type == flow.TypeHTTP && len(byNode[st.Node]) > 0 {
			out.Steps[i].HTTPLogID, byNode[st.Node] = byNode[st.Node][0], byNode[st.Node][1:]
		}
	}
	for i, m := range msgs {
		out.Messages[i] = toMessageJSON(m)
	}
	writeOK(w, out)
	return nil
}

// adminUsers lists a bot's users: ?attribute_name=&attribute_value= and/or ?search= (a
// prefix of the channel user id or the name), paged by ?limit=&cursor=.
func (s *Server) adminUsers(w http.ResponseWriter, r *http.Request) *Error {
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	q := r.URL.Query()
	f := store.UserFilter{BotID: b.ID, AttrName: q.Get("attribute_name"), AttrValue: q.Get("attribute_value"),
		Search: strings.TrimSpace(q.Get("search"))}
	if f.AttrName != "" && !flow.ValidAttributeName(f.AttrName) {
		return invalid("%s is not a valid attribute name", strconvQuote(f.AttrName))
	}
	if len(f.Search) > 100 {
		return invalid("search is longer than 100 characters")
	}
	if f.Limit, e = listLimit(q); e != nil {
		return e
	}
	if c := strings.TrimSpace(q.Get("cursor")); c != "" {
		n, err := strconv.ParseInt(c, 10, 64)
		if err != nil || n < 0 {
			return invalid("cursor %s is not one this API gave", strconvQuote(c))
		}
		f.After = n
	}
	users, err := s.Store.Users(r.Context(), f)
	if err != nil {
		return s.storeError(r, "users", err)
	}
	out := make([]userJSON, len(users))
	for i, u := range users {
		out[i] = toUserJSON(u)
	}
	var next *string
	if len(users) == f.Limit {
		c := strconv.FormatInt(users[len(users)-1].ID, 10)
		next = &c
	}
	writeOK(w, map[string]any{"users": out, "next_cursor": next})
	return nil
}

func (s *Server) adminUser(w http.ResponseWriter, r *http.Request) *Error {
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	u, err := s.Store.UserByChannelID(r.Context(), b.ID, strings.TrimPrefix(r.PathValue("channelUserId"), "+"))
	if err != nil {
		return s.storeError(r, "user", err)
	}
	writeOK(w, toUserJSON(u))
	return nil
}

func (s *Server) adminConversations(w http.ResponseWriter, r *http.Request) *Error {
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	return s.serveConversations(w, r, b.ID)
}

// pathFlow resolves the bot and the flow of an admin path, at its current version.
func (s *Server) pathFlow(r *http.Request) (store.Bot, store.FlowRecord, *Error) {
	b, e := s.pathBot(r)
	if e != nil {
		return store.Bot{}, store.FlowRecord{}, e
	}
	rec, err := s.Store.FlowByKey(r.Context(), b.ID, r.PathValue("flowKey"))
	if errors.Is(err, store.ErrNotFound) {
		return b, store.FlowRecord{}, errorf(http.StatusNotFound, CodeNotFound, "FLOW_NOT_FOUND",
			"this bot has no flow with key %s", strconvQuote(r.PathValue("flowKey")))
	}
	if err != nil {
		return b, store.FlowRecord{}, s.storeError(r, "flow", err)
	}
	return b, rec, nil
}

// pathVersion resolves the bot and the version of a flow an admin path names.
func (s *Server) pathVersion(r *http.Request) (store.Bot, store.FlowRecord, *Error) {
	b, cur, e := s.pathFlow(r)
	if e != nil {
		return b, cur, e
	}
	n, err := strconv.Atoi(r.PathValue("version"))
	if err != nil || n < 1 {
		return b, cur, invalid("version %s is not a positive number", strconvQuote(r.PathValue("version")))
	}
	v, err := s.Store.FlowVersion(r.Context(), cur.ID, n)
	if errors.Is(err, store.ErrNotFound) {
		return b, cur, notFound("flow %s has no version %d", cur.Key, n)
	}
	if err != nil {
		return b, cur, s.storeError(r, "flow version", err)
	}
	return b, v, nil
}

func (s *Server) flowVersions(w http.ResponseWriter, r *http.Request) *Error {
	_, rec, e := s.pathFlow(r)
	if e != nil {
		return e
	}
	vs, err := s.Store.FlowVersions(r.Context(), rec.ID)
	if err != nil {
		return s.storeError(r, "flow versions", err)
	}
	writeOK(w, map[string]any{"flow_key": rec.Key, "current_version": rec.Version, "versions": vs})
	return nil
}

// flowVersion exports one version of a flow, as the flow export does the current one.
func (s *Server) flowVersion(w http.ResponseWriter, r *http.Request) *Error {
	_, v, e := s.pathVersion(r)
	if e != nil {
		return e
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Flow-Version", strconv.Itoa(v.Version))
	doc := catalog.RedactSecrets(v.Document)
	// Stored versions are indented; one redacted comes back compact.
	var pretty bytes.Buffer
	if json.Indent(&pretty, doc, "", "  ") == nil {
		doc = pretty.Bytes()
	}
	_, _ = w.Write(doc)
	return nil
}

// adminTrigger is "Try it": the platform's v2 trigger for a bot, with admin credentials
// instead of an API key. The body and ?wait= are the v2 trigger's.
func (s *Server) adminTrigger(w http.ResponseWriter, r *http.Request) *Error {
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	return s.triggerV2(w, r, auth.Principal{BotID: b.ID, BotKey: b.Key, CustomerID: b.CustomerID})
}
