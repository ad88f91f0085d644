package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/parleyhq/parley/internal/catalog"
	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/channel/registry"
	"github.com/parleyhq/parley/internal/engine"
	"github.com/parleyhq/parley/internal/flow"
	"github.com/parleyhq/parley/internal/phone"
	"github.com/parleyhq/parley/internal/sanitize"
	"github.com/parleyhq/parley/internal/store"
)

func (s *Server) adminRoutes() {
	m := s.mux
	const c = "/admin/v1/customers/{cid}"
	const b = c + "/bots/{botKey}"
	m.HandleFunc("GET /admin/v1/customers", s.admin(s.listCustomers))
	m.HandleFunc("POST /admin/v1/customers", s.operatorOnly(s.createCustomer))
	m.HandleFunc("GET "+c, s.admin(s.getCustomer))
	m.HandleFunc("PATCH "+c, s.operatorOnly(s.updateCustomer))
	m.HandleFunc("GET "+c+"/bots", s.admin(s.listBots))
	m.HandleFunc("POST "+c+"/bots", s.admin(s.createBot))
	m.HandleFunc("GET "+b, s.admin(s.getBot))
	m.HandleFunc("POST /admin/v1/bots", s.operatorOnly(s.createBotByName))
	m.HandleFunc("GET "+b+"/keys", s.admin(s.listKeys))
	m.HandleFunc("POST "+b+"/keys", s.admin(s.createKey))
	m.HandleFunc("DELETE "+b+"/keys/{id}", s.admin(s.revokeKey))
	m.HandleFunc("POST "+b+"/keys/{id}/regenerate", s.admin(s.regenerateKey))
	m.HandleFunc("GET "+b+"/flows", s.admin(s.listFlows))
	m.HandleFunc("POST "+b+"/flows", s.admin(s.importFlow))
	m.HandleFunc("GET "+b+"/flows/{flowKey}", s.admin(s.exportFlow))
	m.HandleFunc("POST /admin/v1/flows/validate", s.admin(s.validateFlow))
	m.HandleFunc("GET /admin/v1/flow.schema.json", s.admin(func(w http.ResponseWriter, r *http.Request) *Error {
		w.Header().Set("Content-Type", "application/schema+json")
		_, _ = w.Write(flow.Schema)
		return nil
	}))
	m.HandleFunc("GET "+b+"/runs/{runId}", s.admin(s.adminRun))
	m.HandleFunc("POST "+b+"/sandbox/messages", s.admin(s.sandboxMessage))
}

func pathCustomer(r *http.Request) (int64, *Error) {
	cid, err := strconv.ParseInt(r.PathValue("cid"), 10, 64)
	if err != nil || cid <= 0 {
		return 0, invalid("customer id %q is not a number", r.PathValue("cid"))
	}
	return cid, nil
}

// pathBot resolves the customer and bot of an admin path.
func (s *Server) pathBot(r *http.Request) (store.Bot, *Error) {
	cid, e := pathCustomer(r)
	if e != nil {
		return store.Bot{}, e
	}
	b, err := s.Store.Bot(r.Context(), cid, r.PathValue("botKey"))
	if errors.Is(err, store.ErrNotFound) {
		return store.Bot{}, badBotOrCustomer()
	}
	if err != nil {
		return store.Bot{}, s.storeError(r, "bot", err)
	}
	return b, nil
}

func (s *Server) listCustomers(w http.ResponseWriter, r *http.Request) *Error {
	cs, err := s.Store.Customers(r.Context())
	if err != nil {
		return s.storeError(r, "customers", err)
	}
	p := principalOf(r)
	visible := cs[:0]
	for _, c := range cs {
		if p.MayAccess(c.ID) {
			visible = append(visible, c)
		}
	}
	writeOK(w, map[string]any{"customers": nonNil(visible)})
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// checkName trims a customer, bot or flow name and checks it (see sanitize.CheckName).
func checkName(field, name string) (string, *Error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", invalid("%s is required", field)
	}
	if err := sanitize.CheckName(name); err != nil {
		return "", invalid("%s %v", field, err)
	}
	return name, nil
}

func (s *Server) createCustomer(w http.ResponseWriter, r *http.Request) *Error {
	var body struct {
		Name string `json:"name"`
	}
	if e := decodeStrict(r, &body); e != nil {
		return e
	}
	name, e := checkName("name", body.Name)
	if e != nil {
		return e
	}
	c, err := s.Store.CreateCustomer(r.Context(), name)
	if err != nil {
		return s.storeError(r, "customer "+strconv.Quote(name), err)
	}
	writeOK(w, c)
	return nil
}

func (s *Server) getCustomer(w http.ResponseWriter, r *http.Request) *Error {
	cid, e := pathCustomer(r)
	if e != nil {
		return e
	}
	c, err := s.Store.Customer(r.Context(), cid)
	if err != nil {
		return s.storeError(r, "customer", err)
	}
	writeOK(w, c)
	return nil
}

// updateCustomer changes account settings: {"http_rate": N} (HTTP-step calls per
// minute) and {"max_running": N} (runs executing at once on each instance); null for the
// server default. A setting left out keeps its value, and an unknown (misspelt) one is
// refused. Every value is checked before any is stored.
func (s *Server) updateCustomer(w http.ResponseWriter, r *http.Request) *Error {
	cid, e := pathCustomer(r)
	if e != nil {
		return e
	}
	var body struct {
		HTTPRate   json.RawMessage `json:"http_rate"`
		MaxRunning json.RawMessage `json:"max_running"`
	}
	if e := decodeStrict(r, &body); e != nil {
		return e
	}
	var rate, maxRunning *int
	if body.HTTPRate != nil {
		if err := json.Unmarshal(body.HTTPRate, &rate); err != nil || (rate != nil && (*rate < 1 || *rate > 1_000_000)) {
			return invalid("http_rate must be from 1 to 1000000 calls per minute, or null for the server default")
		}
	}
	if body.MaxRunning != nil {
		if err := json.Unmarshal(body.MaxRunning, &maxRunning); err != nil || (maxRunning != nil && (*maxRunning < 1 || *maxRunning > store.MaxMaxRunning)) {
			return invalid("max_running must be from 1 to %d runs, or null for the server default", store.MaxMaxRunning)
		}
	}
	if body.HTTPRate != nil {
		if err := s.Store.SetCustomerHTTPRate(r.Context(), cid, rate); err != nil {
			return s.storeError(r, "customer", err)
		}
	}
	if body.MaxRunning != nil {
		if err := s.Store.SetCustomerMaxRunning(r.Context(), cid, maxRunning); err != nil {
			return s.storeError(r, "customer", err)
		}
	}
	return s.getCustomer(w, r)
}

func (s *Server) listBots(w http.ResponseWriter, r *http.Request) *Error {
	cid, e := pathCustomer(r)
	if e != nil {
		return e
	}
	bots, err := s.Store.Bots(r.Context(), cid)
	if err != nil {
		return s.storeError(r, "bots", err)
	}
	writeOK(w, map[string]any{"bots": nonNil(bots)})
	return nil
}

func (s *Server) getBot(w http.ResponseWriter, r *http.Request) *Error {
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	writeOK(w, b)
	return nil
}

func (s *Server) createBot(w http.ResponseWriter, r *http.Request) *Error {
	cid, e := pathCustomer(r)
	if e != nil {
		return e
	}
	var body struct {
		Name string `json:"name"`
	}
	if e := decodeStrict(r, &body); e != nil {
		return e
	}
	name, e := checkName("name", body.Name)
	if e != nil {
		return e
	}
	if _, err := s.Store.Customer(r.Context(), cid); err != nil {
		return s.storeError(r, "customer", err)
	}
	nb, err := s.Auth.CreateBotFor(r.Context(), cid, name)
	if err != nil {
		return s.storeError(r, "bot", err)
	}
	writeOK(w, nb)
	return nil
}

// createBotByName mirrors `parley bot create`: {"customer": NAME, "name": NAME}.
func (s *Server) createBotByName(w http.ResponseWriter, r *http.Request) *Error {
	var body struct {
		Customer string `json:"customer"`
		Name     string `json:"name"`
	}
	if e := decodeStrict(r, &body); e != nil {
		return e
	}
	customer, e := checkName("customer", body.Customer)
	if e != nil {
		return e
	}
	name, e := checkName("name", body.Name)
	if e != nil {
		return e
	}
	nb, err := s.Auth.CreateBot(r.Context(), customer, name)
	if err != nil {
		return s.storeError(r, "bot", err)
	}
	writeOK(w, nb)
	return nil
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) *Error {
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	keys, err := s.Store.APIKeys(r.Context(), b.ID)
	if err != nil {
		return s.storeError(r, "keys", err)
	}
	writeOK(w, map[string]any{"keys": keys})
	return nil
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) *Error {
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	k, err := s.Auth.CreateKey(r.Context(), b.CustomerID, b.Key)
	if err != nil {
		return s.storeError(r, "key", err)
	}
	writeOK(w, k)
	return nil
}

func pathKeyID(r *http.Request) (int64, *Error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return 0, invalid("key id %q is not a number", r.PathValue("id"))
	}
	return id, nil
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) *Error {
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	id, e := pathKeyID(r)
	if e != nil {
		return e
	}
	if err := s.Auth.RevokeKey(r.Context(), b.CustomerID, b.Key, id); err != nil {
		return s.storeError(r, "key", err)
	}
	writeOK(w, map[string]any{"id": id, "revoked": true})
	return nil
}

func (s *Server) regenerateKey(w http.ResponseWriter, r *http.Request) *Error {
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	id, e := pathKeyID(r)
	if e != nil {
		return e
	}
	k, err := s.Auth.RegenerateKey(r.Context(), b.CustomerID, b.Key, id)
	if err != nil {
		return s.storeError(r, "key", err)
	}
	writeOK(w, k)
	return nil
}

func (s *Server) listFlows(w http.ResponseWriter, r *http.Request) *Error {
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	fs, err := s.Store.Flows(r.Context(), b.ID)
	if err != nil {
		return s.storeError(r, "flows", err)
	}
	writeOK(w, map[string]any{"flows": fs})
	return nil
}

func readDoc(r *http.Request) ([]byte, *Error) {
	doc, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, bodyError(err)
	}
	return doc, nil
}

func (s *Server) importFlow(w http.ResponseWriter, r *http.Request) *Error {
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	doc, e := readDoc(r)
	if e != nil {
		return e
	}
	rec, e := s.publish(w, r, b, doc)
	if e != nil || rec == nil {
		return e
	}
	writeOK(w, rec)
	return nil
}

func (s *Server) exportFlow(w http.ResponseWriter, r *http.Request) *Error {
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	rec, err := catalog.Export(r.Context(), s.Store, b.ID, r.PathValue("flowKey"))
	if err != nil {
		return s.storeError(r, "flow", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Flow-Version", strconv.Itoa(rec.Version))
	_, _ = w.Write(rec.Document)
	return nil
}

func (s *Server) validateFlow(w http.ResponseWriter, r *http.Request) *Error {
	doc, e := readDoc(r)
	if e != nil {
		return e
	}
	_, err := catalog.Validate(doc)
	var verrs flow.ValidationErrors
	if errors.As(err, &verrs) {
		writeInvalidFlow(w, verrs)
		return nil
	}
	writeOK(w, map[string]any{"valid": true})
	return nil
}

// sandboxMessage lets a tester speak as a user on the sandbox: {"channel_user_id" or
// "phone", "text", "payload", "channel"}. It resumes waiting runs and starts flows from
// button payloads exactly as a provider's webhook would.
func (s *Server) sandboxMessage(w http.ResponseWriter, r *http.Request) *Error {
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	var body struct {
		Phone   string `json:"phone"`
		Text    string `json:"text"`
		Payload string `json:"payload"`
		Channel string `json:"channel"`
	}
	if e := decodeStrict(r, &body); e != nil {
		return e
	}
	num, err := phone.Parse(body.Phone)
	if err != nil {
		return invalid("phone: %v", err)
	}
	if body.Text == "" && body.Payload == "" {
		return invalid("text or payload is required")
	}
	for _, f := range []struct{ name, v string }{{"text", body.Text}, {"payload", body.Payload}} {
		if n := sanitize.Len(f.v); n > sanitize.MaxText {
			return invalid("%s is %d characters long; the limit is %d", f.name, n, sanitize.MaxText)
		}
	}
	ch := strings.ToLower(strings.TrimSpace(body.Channel))
	if ch == "" {
		ch = channel.WhatsApp
	}
	if !slices.Contains(registry.Channels(), ch) {
		return invalid("channel %s is not one of Parley's channels: use %s", strconvQuote(body.Channel), strings.Join(registry.Channels(), " or "))
	}
	typ := "text"
	if body.Payload != "" {
		typ = "button"
	}
	res, err := s.Engine.Inbound(r.Context(), engine.Inbound{BotID: b.ID, CustomerID: b.CustomerID, Channel: ch,
		ChannelUserID: num.Digits, Phone: num.E164, Type: typ, Text: body.Text, Payload: body.Payload})
	if err != nil {
		return s.failed(r, "sandbox message", err)
	}
	writeOK(w, res)
	return nil
}
