package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/broadcast"
	"github.com/parleyhq/parley/internal/store"
)

// maxBroadcastBody is the largest broadcast request: 100,000 v2 users with their
// attributes fit, where every other body stops at maxBody.
const maxBroadcastBody = 48 << 20

// broadcastRoutes serve the vendor's broadcast APIs (v1: audience and direct content;
// v2: users and a WhatsApp template), reading and cancelling them under both versions,
// and the admin API's equivalents.
func (s *Server) broadcastRoutes() {
	m := s.mux
	const bot = "/customer/{cid}/bot/{botKey}/broadcast"
	m.HandleFunc("POST /bot-api/v1.0"+bot, s.platform(s.createBroadcastV1))
	m.HandleFunc("POST /bot-api/v2.0"+bot, s.platform(s.createBroadcastV2))
	for _, v := range []string{"v1.0", "v2.0"} {
		m.HandleFunc("GET /bot-api/"+v+bot, s.platform(s.platformBroadcasts))
		m.HandleFunc("GET /bot-api/"+v+bot+"/{broadcastId}", s.platform(s.platformBroadcast))
		m.HandleFunc("GET /bot-api/"+v+bot+"/{broadcastId}/recipients", s.platform(s.platformRecipients))
		m.HandleFunc("DELETE /bot-api/"+v+bot+"/{broadcastId}", s.platform(s.platformCancelBroadcast))
	}
	const b = "/admin/v1/customers/{cid}/bots/{botKey}/broadcasts"
	m.HandleFunc("POST "+b, s.admin(s.adminCreateBroadcast))
	m.HandleFunc("GET "+b, s.admin(s.withPathBot(s.serveBroadcasts)))
	m.HandleFunc("GET "+b+"/{broadcastId}", s.admin(s.withPathBot(s.serveBroadcast)))
	m.HandleFunc("GET "+b+"/{broadcastId}/recipients", s.admin(s.withPathBot(s.serveRecipients)))
	m.HandleFunc("DELETE "+b+"/{broadcastId}", s.admin(s.withPathBot(s.serveCancelBroadcast)))
}

// bodyLimit is the largest body a request may send.
func bodyLimit(r *http.Request) int64 {
	if r.Method == http.MethodPost && (strings.HasSuffix(r.URL.Path, "/broadcast") || strings.HasSuffix(r.URL.Path, "/broadcasts")) {
		return maxBroadcastBody
	}
	return maxBody
}

func (s *Server) broadcastsReady() *Error {
	if s.Broadcasts == nil {
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "UNAVAILABLE", "broadcasts are not enabled on this server")
	}
	return nil
}

// broadcastIdempotencyKey reads the Idempotency-Key header, as the trigger does.
func broadcastIdempotencyKey(r *http.Request) (string, *Error) {
	key := strings.TrimSpace(r.Header.Get("Idempotency-Key"))
	if len(key) > 200 {
		return "", invalid("the Idempotency-Key header is longer than 200 characters")
	}
	return key, nil
}

func (s *Server) createBroadcastV1(w http.ResponseWriter, r *http.Request, p auth.Principal) *Error {
	if e := s.broadcastsReady(); e != nil {
		return e
	}
	var req broadcast.V1Request
	if e := decodeJSON(r, &req); e != nil {
		return e
	}
	plan, err := broadcast.PlanV1(req, time.Now(), s.Broadcasts.Max())
	return s.createBroadcast(w, r, p, plan, err)
}

func (s *Server) createBroadcastV2(w http.ResponseWriter, r *http.Request, p auth.Principal) *Error {
	if e := s.broadcastsReady(); e != nil {
		return e
	}
	var req broadcast.V2Request
	if e := decodeJSON(r, &req); e != nil {
		return e
	}
	plan, err := broadcast.PlanV2(req, time.Now(), s.Broadcasts.Max())
	return s.createBroadcast(w, r, p, plan, err)
}

// adminCreateBroadcast is the platform's broadcast for a bot with admin credentials
// instead of an API key: the console's "New broadcast". Body, Idempotency-Key and answer
// are v1's, or v2's (WhatsApp templates) with ?version=2.
func (s *Server) adminCreateBroadcast(w http.ResponseWriter, r *http.Request) *Error {
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	p := auth.Principal{BotID: b.ID, BotKey: b.Key, CustomerID: b.CustomerID}
	switch v := r.URL.Query().Get("version"); v {
	case "", "1":
		return s.createBroadcastV1(w, r, p)
	case "2":
		return s.createBroadcastV2(w, r, p)
	default:
		return invalid("version %s is not 1 (audience and direct content) or 2 (users and a WhatsApp template)", strconvQuote(v))
	}
}

func (s *Server) createBroadcast(w http.ResponseWriter, r *http.Request, p auth.Principal, plan *broadcast.Plan, err error) *Error {
	var ie *broadcast.InputError
	if errors.As(err, &ie) {
		return invalid("%s", ie.Msg)
	}
	if err != nil {
		return s.failed(r, "plan broadcast", err)
	}
	key, e := broadcastIdempotencyKey(r)
	if e != nil {
		return e
	}
	v, dup, err := s.Broadcasts.Create(r.Context(), p.BotID, plan, key)
	if errors.Is(err, broadcast.ErrAccepting) {
		return errorf(http.StatusConflict, CodeConflict, "CONFLICT", "%s", err.Error())
	}
	if err != nil {
		return s.failed(r, "create broadcast", err)
	}
	if dup {
		v["duplicate"] = true
	}
	writeOK(w, v)
	return nil
}

func pathBroadcastID(r *http.Request) (int64, *Error) {
	id, err := strconv.ParseInt(r.PathValue("broadcastId"), 10, 64)
	if err != nil || id <= 0 {
		return 0, invalid("broadcast id %s is not a positive number", strconvQuote(r.PathValue("broadcastId")))
	}
	return id, nil
}

func (s *Server) broadcastError(r *http.Request, err error) *Error {
	if errors.Is(err, broadcast.ErrNotFound) {
		return notFound("this bot has no broadcast %s", strconvQuote(r.PathValue("broadcastId")))
	}
	return s.failed(r, "broadcast", err)
}

// serveBroadcasts lists a bot's broadcasts newest first (?limit=, ?cursor=).
func (s *Server) serveBroadcasts(w http.ResponseWriter, r *http.Request, botID int64) *Error {
	if e := s.broadcastsReady(); e != nil {
		return e
	}
	q := r.URL.Query()
	limit, e := listLimit(q)
	if e != nil {
		return e
	}
	var before int64
	if c := strings.TrimSpace(q.Get("cursor")); c != "" {
		n, err := strconv.ParseInt(c, 10, 64)
		if err != nil || n <= 0 {
			return invalid("cursor %s is not one this API gave", strconvQuote(c))
		}
		before = n
	}
	vs, err := s.Broadcasts.List(r.Context(), botID, before, limit)
	if err != nil {
		return s.failed(r, "list broadcasts", err)
	}
	var next *string
	if len(vs) == limit {
		c := strconv.FormatInt(vs[len(vs)-1]["broadcastId"].(int64), 10)
		next = &c
	}
	writeOK(w, map[string]any{"broadcasts": vs, "next_cursor": next})
	return nil
}

func (s *Server) serveBroadcast(w http.ResponseWriter, r *http.Request, botID int64) *Error {
	if e := s.broadcastsReady(); e != nil {
		return e
	}
	id, e := pathBroadcastID(r)
	if e != nil {
		return e
	}
	summary := strings.EqualFold(r.URL.Query().Get("summary"), "true")
	v, err := s.Broadcasts.Get(r.Context(), botID, id, summary)
	if err != nil {
		return s.broadcastError(r, err)
	}
	writeOK(w, v)
	return nil
}

// recipientStatuses are the statuses ?status= may filter by.
var recipientStatuses = []string{store.RecipientQueued, store.RecipientSent, store.MsgDelivered, store.MsgRead,
	store.RecipientFailed, store.RecipientCancelled}

// serveRecipients pages through a broadcast's recipients with each one's status and
// failure reason (?status=&page_number=&page_size=, as the conversations API pages).
func (s *Server) serveRecipients(w http.ResponseWriter, r *http.Request, botID int64) *Error {
	if e := s.broadcastsReady(); e != nil {
		return e
	}
	id, e := pathBroadcastID(r)
	if e != nil {
		return e
	}
	q := r.URL.Query()
	status := strings.ToLower(strings.TrimSpace(q.Get("status")))
	if status != "" {
		ok := false
		for _, st := range recipientStatuses {
			ok = ok || st == status
		}
		if !ok {
			return invalid("status must be one of %s", strings.Join(recipientStatuses, ", "))
		}
	}
	pr, e := page(q, cursorRecipients, 100, 1000)
	if e != nil {
		return e
	}
	rs, pg, err := s.Broadcasts.Recipients(r.Context(), botID, id, status, pr.query)
	if err != nil {
		return s.broadcastError(r, err)
	}
	writeOK(w, map[string]any{"broadcastId": id, "recipients": rs, "page_number": pr.number, "page_size": pr.size, "total": pg.Total,
		"next_cursor": encodeCursor(cursorRecipients, pr.number, pg.Next)})
	return nil
}

func (s *Server) serveCancelBroadcast(w http.ResponseWriter, r *http.Request, botID int64) *Error {
	if e := s.broadcastsReady(); e != nil {
		return e
	}
	id, e := pathBroadcastID(r)
	if e != nil {
		return e
	}
	v, err := s.Broadcasts.Cancel(r.Context(), botID, id)
	if err != nil {
		return s.broadcastError(r, err)
	}
	writeOK(w, v)
	return nil
}

func (s *Server) platformBroadcasts(w http.ResponseWriter, r *http.Request, p auth.Principal) *Error {
	return s.serveBroadcasts(w, r, p.BotID)
}

func (s *Server) platformBroadcast(w http.ResponseWriter, r *http.Request, p auth.Principal) *Error {
	return s.serveBroadcast(w, r, p.BotID)
}

func (s *Server) platformRecipients(w http.ResponseWriter, r *http.Request, p auth.Principal) *Error {
	return s.serveRecipients(w, r, p.BotID)
}

func (s *Server) platformCancelBroadcast(w http.ResponseWriter, r *http.Request, p auth.Principal) *Error {
	return s.serveCancelBroadcast(w, r, p.BotID)
}

// withPathBot runs a bot handler for an admin route.
func (s *Server) withPathBot(h func(w http.ResponseWriter, r *http.Request, botID int64) *Error) adminHandler {
	return func(w http.ResponseWriter, r *http.Request) *Error {
		b, e := s.pathBot(r)
		if e != nil {
			return e
		}
		return h(w, r, b.ID)
	}
}
