package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/parleyhq/parley/internal/catalog"
	"github.com/parleyhq/parley/internal/flow"
	"github.com/parleyhq/parley/internal/store"
)

// The flow builder saves work in progress as a draft (valid or not), publishes a draft
// as a new version through the same import as ever, and restores an earlier version as
// a new one. Runs only ever use published versions.
func (s *Server) draftRoutes() {
	m := s.mux
	const b = "/admin/v1/customers/{cid}/bots/{botKey}"
	m.HandleFunc("GET "+b+"/drafts", s.admin(s.listDrafts))
	m.HandleFunc("GET "+b+"/flows/{flowKey}/draft", s.admin(s.getDraft))
	m.HandleFunc("PUT "+b+"/flows/{flowKey}/draft", s.admin(s.putDraft))
	m.HandleFunc("DELETE "+b+"/flows/{flowKey}/draft", s.admin(s.deleteDraft))
	m.HandleFunc("POST "+b+"/flows/{flowKey}/publish", s.admin(s.publishDraft))
	m.HandleFunc("POST "+b+"/flows/{flowKey}/versions/{version}/restore", s.admin(s.restoreVersion))
}

func (s *Server) listDrafts(w http.ResponseWriter, r *http.Request) *Error {
	b, e := s.pathBot(r)
	if e != nil {
		return e
	}
	ds, err := s.Store.FlowDrafts(r.Context(), b.ID)
	if err != nil {
		return s.storeError(r, "drafts", err)
	}
	writeOK(w, map[string]any{"drafts": ds})
	return nil
}

// pathDraft resolves the bot of a draft's admin path and the flow key it names (which
// need not be a flow's yet).
func (s *Server) pathDraft(r *http.Request) (store.Bot, string, *Error) {
	b, e := s.pathBot(r)
	if e != nil {
		return b, "", e
	}
	key := r.PathValue("flowKey")
	if !flow.ValidKey(key) {
		return b, "", invalid("%s is not a valid flow key (letters, digits, _ and -, at most 100)", strconvQuote(key))
	}
	return b, key, nil
}

// getDraft answers the draft document as saved, not enveloped, like a flow export (its
// secret header values redacted, as an export's are).
func (s *Server) getDraft(w http.ResponseWriter, r *http.Request) *Error {
	b, key, e := s.pathDraft(r)
	if e != nil {
		return e
	}
	d, err := s.Store.FlowDraft(r.Context(), b.ID, key)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("flow %s has no draft", key)
	}
	if err != nil {
		return s.storeError(r, "draft", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Draft-Updated-At", d.UpdatedAt.Format(time.RFC3339Nano))
	_, _ = w.Write(catalog.RedactSecrets(d.Document))
	return nil
}

// draftJSON is a saved draft with what publishing it would say.
type draftJSON struct {
	store.FlowDraft
	Valid  bool                  `json:"valid"`
	Errors flow.ValidationErrors `json:"errors"`
}

// putDraft saves any JSON object as the draft of the flow key in the path; the
// document's own key, when it has one, must be that key. The answer says whether the
// draft would publish, with every problem, each naming its node.
func (s *Server) putDraft(w http.ResponseWriter, r *http.Request) *Error {
	b, key, e := s.pathDraft(r)
	if e != nil {
		return e
	}
	var doc map[string]json.RawMessage
	if e := decodeJSON(r, &doc); e != nil {
		return e
	}
	if doc == nil {
		return invalid("the draft must be a JSON object (a flow document, finished or not)")
	}
	if raw, ok := doc["key"]; ok {
		var k string
		if json.Unmarshal(raw, &k) != nil || !strings.EqualFold(k, key) {
			return invalid("the document's key %s is not the flow key %s of the path", string(raw), key)
		}
	} else {
		doc["key"], _ = json.Marshal(key)
	}
	var name string
	_ = json.Unmarshal(doc["name"], &name) // a name that is not a string shows up as a validation error
	body, err := json.Marshal(doc)
	if err != nil {
		return invalid("the draft cannot be encoded: %v", err)
	}
	prev, e := s.savedDraft(r, b.ID, key)
	if e != nil {
		return e
	}
	if body, err = catalog.SealDraft(s.Store.Secrets(), body, prev); err != nil {
		return s.storeError(r, "draft", err)
	}
	d := store.FlowDraft{Key: key, Name: name, Document: body, UpdatedAt: time.Now().UTC().Truncate(time.Millisecond),
		UpdatedBy: principalOf(r).Name()}
	if err := s.Store.SaveFlowDraft(r.Context(), b.ID, d); err != nil {
		return s.storeError(r, "draft", err)
	}
	out := draftJSON{FlowDraft: d, Valid: true, Errors: flow.ValidationErrors{}}
	if _, err := flow.Parse(body); err != nil {
		out.Valid = false
		if !errors.As(err, &out.Errors) {
			out.Errors = flow.ValidationErrors{{Msg: err.Error()}}
		}
	}
	writeOK(w, out)
	return nil
}

// savedDraft returns the document of the bot's draft of a flow as stored, nil if it has none.
func (s *Server) savedDraft(r *http.Request, botID int64, key string) ([]byte, *Error) {
	d, err := s.Store.FlowDraft(r.Context(), botID, key)
	switch {
	case err == nil:
		return d.Document, nil
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	}
	return nil, s.storeError(r, "draft", err)
}

func (s *Server) deleteDraft(w http.ResponseWriter, r *http.Request) *Error {
	b, key, e := s.pathDraft(r)
	if e != nil {
		return e
	}
	if err := s.Store.DeleteFlowDraft(r.Context(), b.ID, key, time.Time{}); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound("flow %s has no draft", key)
		}
		return s.storeError(r, "draft", err)
	}
	writeOK(w, map[string]any{"flow_key": key, "deleted": true})
	return nil
}

// publishDraft makes the draft the flow's next version, or refuses with every problem
// (400 INVALID_FLOW with "errors", as validate answers). The draft is dropped once
// published, unless it was saved again meanwhile.
func (s *Server) publishDraft(w http.ResponseWriter, r *http.Request) *Error {
	b, key, e := s.pathDraft(r)
	if e != nil {
		return e
	}
	d, err := s.Store.FlowDraft(r.Context(), b.ID, key)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("flow %s has no draft to publish", key)
	}
	if err != nil {
		return s.storeError(r, "draft", err)
	}
	doc, err := catalog.OpenSecrets(s.Store.Secrets(), d.Document)
	if err != nil {
		return s.storeError(r, "draft", err)
	}
	rec, e := s.publish(w, r, b, doc)
	if e != nil || rec == nil {
		return e
	}
	if err := s.Store.DeleteFlowDraft(r.Context(), b.ID, key, d.UpdatedAt); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Error("drop published draft", "flow", key, "err", err)
	}
	writeOK(w, rec)
	return nil
}

// restoreVersion publishes an earlier version's document again, as the next version.
func (s *Server) restoreVersion(w http.ResponseWriter, r *http.Request) *Error {
	b, old, e := s.pathVersion(r)
	if e != nil {
		return e
	}
	doc, err := catalog.OpenSecrets(s.Store.Secrets(), old.Document)
	if err != nil {
		return s.storeError(r, "flow version", err)
	}
	rec, e := s.publish(w, r, b, doc)
	if e != nil || rec == nil {
		return e
	}
	writeOK(w, rec)
	return nil
}

// publish imports doc as the next version of its flow on behalf of the request's
// principal. An invalid document is answered here (400 with every problem) and rec is
// nil.
func (s *Server) publish(w http.ResponseWriter, r *http.Request, b store.Bot, doc []byte) (*store.FlowRecord, *Error) {
	rec, err := catalog.ImportAs(r.Context(), s.Store, b.ID, doc, principalOf(r).Name())
	var verrs flow.ValidationErrors
	if errors.As(err, &verrs) {
		writeInvalidFlow(w, verrs)
		return nil, nil
	}
	if err != nil {
		return nil, s.storeError(r, "flow", err)
	}
	s.Engine.FlowChanged(b.ID, rec.Key)
	return &rec, nil
}

// writeInvalidFlow refuses a flow document with every problem, each naming its node, in
// "errors" beside the envelope's status.
func writeInvalidFlow(w http.ResponseWriter, verrs flow.ValidationErrors) {
	writeJSON(w, http.StatusBadRequest, map[string]any{
		"status": Status{Code: CodeInvalidInput, Desc: "INVALID_FLOW", Details: "the flow is not valid: " + verrs.Error()}, "errors": verrs})
}
