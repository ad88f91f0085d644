package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/parleyhq/parley/internal/catalog"
	"github.com/parleyhq/parley/internal/flow"
	"github.com/parleyhq/parley/internal/httpstep"
	"github.com/parleyhq/parley/internal/store"
)

// httpStepRoutes serves the admin actions on a flow's http node: the Test call, its
// logs, its state ("JSON Structure Change Detected", the recorded structure, the last
// alert mail), Remap and Reset Mail Timeout.
func (s *Server) httpStepRoutes() {
	m := s.mux
	const n = "/admin/v1/customers/{cid}/bots/{botKey}/flows/{flowKey}/nodes/{nodeId}"
	m.HandleFunc("GET "+n, s.admin(s.httpStepState))
	m.HandleFunc("GET "+n+"/{$}", s.admin(s.httpStepState))
	m.HandleFunc("POST "+n+"/test", s.admin(s.httpStepTest))
	m.HandleFunc("GET "+n+"/logs", s.admin(s.httpStepLogs))
	m.HandleFunc("GET "+n+"/logs/{logId}", s.admin(s.httpStepLog))
	m.HandleFunc("POST "+n+"/remap", s.admin(s.httpStepRemap))
	m.HandleFunc("POST "+n+"/reset-mail-timeout", s.admin(s.httpStepResetMail))
}

// pathStep resolves the http node an admin path names.
func (s *Server) pathStep(r *http.Request) (httpstep.Step, *Error) {
	if e := s.httpStepsEnabled(); e != nil {
		return httpstep.Step{}, e
	}
	b, e := s.pathBot(r)
	if e != nil {
		return httpstep.Step{}, e
	}
	flowKey, nodeID := r.PathValue("flowKey"), r.PathValue("nodeId")
	st, err := s.HTTPSteps.Step(r.Context(), b.CustomerID, b.ID, flowKey, nodeID)
	switch {
	case err == nil:
		return st, nil
	case errors.Is(err, httpstep.ErrFlowNotFound):
		return httpstep.Step{}, errorf(http.StatusNotFound, CodeNotFound, "FLOW_NOT_FOUND", "this bot has no flow with key %q", flowKey)
	case errors.Is(err, httpstep.ErrNodeNotFound):
		return httpstep.Step{}, errorf(http.StatusNotFound, CodeNotFound, "NODE_NOT_FOUND", "flow %q has no node %q", flowKey, nodeID)
	case errors.Is(err, httpstep.ErrNotHTTPNode):
		return httpstep.Step{}, invalid("%s: only http nodes have tests, logs and alerts", err.Error())
	}
	return httpstep.Step{}, s.storeError(r, "http step", err)
}

func (s *Server) httpStepsEnabled() *Error {
	if s.HTTPSteps == nil {
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "UNAVAILABLE", "HTTP steps are not enabled on this server")
	}
	return nil
}

// httpStepTest makes one call of the node: {"attributes": {"name": value, ...}}, the
// body optional. Values are strings, numbers, booleans or null, as in a trigger. The
// answer is the call in full, whether or not it failed. With "node" (the node as the flow
// builder has it, published or not) that node is called instead, and nothing is logged.
func (s *Server) httpStepTest(w http.ResponseWriter, r *http.Request) *Error {
	if e := s.httpStepsEnabled(); e != nil {
		return e
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return bodyError(err)
	}
	var body struct {
		Attributes map[string]any  `json:"attributes"`
		Node       json.RawMessage `json:"node"`
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		// Strict: {"attrs": ...} would otherwise test with no attributes.
		if e := decodeBytes(raw, &body, true); e != nil {
			return e
		}
	}
	attrs := make(map[string]string, len(body.Attributes))
	for name, v := range body.Attributes {
		text, e := scalar(name, v)
		if e != nil {
			return e
		}
		if e := addAttr(attrs, name, text); e != nil {
			return e
		}
	}
	if len(body.Node) > 0 && string(body.Node) != "null" {
		return s.httpStepTestDraft(w, r, body.Node, attrs)
	}
	st, e := s.pathStep(r)
	if e != nil {
		return e
	}
	res, err := s.HTTPSteps.Test(r.Context(), st, attrs)
	if err != nil {
		return s.storeError(r, "http step test", err)
	}
	writeOK(w, res)
	return nil
}

// httpStepTestDraft tests a node sent by the flow builder. The flow need not be published.
// Secret headers left as the marker take their values from the saved draft's node of the
// same id, else from the published one.
func (s *Server) httpStepTestDraft(w http.ResponseWriter, r *http.Request, doc json.RawMessage, attrs map[string]string) *Error {
	b, key, e := s.pathDraft(r)
	if e != nil {
		return e
	}
	node, err := flow.ParseHTTPNode(doc)
	if err != nil {
		var verrs flow.ValidationErrors
		if !errors.As(err, &verrs) {
			return invalid("node: %v", err)
		}
		return invalid("node: %s", verrs.Error())
	}
	if id := r.PathValue("nodeId"); node.ID != id {
		return invalid("node: its id %q is not the node %q of the path", node.ID, id)
	}
	pub, err := s.HTTPSteps.Step(r.Context(), b.CustomerID, b.ID, key, node.ID)
	switch {
	case errors.Is(err, httpstep.ErrFlowNotFound), errors.Is(err, httpstep.ErrNodeNotFound), errors.Is(err, httpstep.ErrNotHTTPNode):
		pub = httpstep.Step{CustomerID: b.CustomerID, BotID: b.ID, FlowKey: key}
	case err != nil:
		return s.storeError(r, "http step", err)
	}
	saved, e := s.savedDraft(r, b.ID, key)
	if e != nil {
		return e
	}
	writeOK(w, s.HTTPSteps.TestDraft(r.Context(), pub, node, catalog.DraftNodeSecrets(saved, node.ID), attrs))
	return nil
}

func (s *Server) httpStepState(w http.ResponseWriter, r *http.Request) *Error {
	st, e := s.pathStep(r)
	if e != nil {
		return e
	}
	state, err := s.HTTPSteps.State(r.Context(), st)
	if err != nil {
		return s.storeError(r, "http step", err)
	}
	writeOK(w, state)
	return nil
}

// httpStepLogs lists the node's last calls, with the step's structure flag, which the
// logs show too.
func (s *Server) httpStepLogs(w http.ResponseWriter, r *http.Request) *Error {
	st, e := s.pathStep(r)
	if e != nil {
		return e
	}
	logs, err := s.HTTPSteps.Logs(r.Context(), st)
	if err != nil {
		return s.storeError(r, "http step logs", err)
	}
	state, err := s.HTTPSteps.State(r.Context(), st)
	if err != nil {
		return s.storeError(r, "http step", err)
	}
	writeOK(w, map[string]any{"logs": logs, "structure_changed": state.StructureChanged, "message": state.Message})
	return nil
}

func (s *Server) httpStepLog(w http.ResponseWriter, r *http.Request) *Error {
	st, e := s.pathStep(r)
	if e != nil {
		return e
	}
	id, err := strconv.ParseInt(r.PathValue("logId"), 10, 64)
	if err != nil || id <= 0 {
		return invalid("log id %q is not a positive number", r.PathValue("logId"))
	}
	l, err := s.HTTPSteps.Log(r.Context(), st, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("node %q has no log %d (only its last %d calls are kept)", st.Node.ID, id, store.HTTPStepLogsKept)
	}
	if err != nil {
		return s.storeError(r, "http step log", err)
	}
	writeOK(w, l)
	return nil
}

func (s *Server) httpStepRemap(w http.ResponseWriter, r *http.Request) *Error {
	st, e := s.pathStep(r)
	if e != nil {
		return e
	}
	state, err := s.HTTPSteps.Remap(r.Context(), st)
	if err != nil {
		return s.storeError(r, "http step", err)
	}
	writeOK(w, state)
	return nil
}

func (s *Server) httpStepResetMail(w http.ResponseWriter, r *http.Request) *Error {
	st, e := s.pathStep(r)
	if e != nil {
		return e
	}
	state, err := s.HTTPSteps.ResetMailTimeout(r.Context(), st)
	if err != nil {
		return s.storeError(r, "http step", err)
	}
	writeOK(w, state)
	return nil
}
