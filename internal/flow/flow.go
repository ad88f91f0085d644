// Package flow is the flow document: its types, decoding, validation, conditions and
// {{attribute}} templates. It does no I/O, so every part of it can be fuzzed.
package flow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/parleyhq/parley/internal/msg"
)

// Node types.
const (
	TypeMessage  = "message"
	TypeDecision = "decision"
	TypeSet      = "set"
	TypeInput    = "input"
	TypeHTTP     = "http"
	TypeJump     = "jump"
	TypeEnd      = "end"
)

// Flow is one version of a flow document.
type Flow struct {
	Key   string `json:"key,omitempty"`
	Name  string `json:"name,omitempty"`
	Start string `json:"start"`
	Nodes []Node `json:"nodes"`
	// Layout is where the flow builder draws each node; runs ignore it.
	Layout *Layout `json:"layout,omitempty"`

	byID map[string]Node
}

// Layout is the flow builder's drawing of a flow: node positions and the canvas's
// viewport. It is optional (documents written by hand have none, and open laid out
// automatically) and means nothing to the engine.
type Layout struct {
	Nodes    map[string]Position `json:"nodes,omitempty"`
	Viewport *Viewport           `json:"viewport,omitempty"`
}

// Position is a node's top-left corner on the canvas.
type Position struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// Viewport is the canvas's pan and zoom.
type Viewport struct {
	X    float64 `json:"x"`
	Y    float64 `json:"y"`
	Zoom float64 `json:"zoom"`
}

// Node is one step of a flow. The concrete types below are the whole set.
type Node interface {
	NodeID() string
	NodeType() string
	// Successors lists every node id this node may continue to, within the flow.
	Successors() []string
}

// MessageNode sends a message and continues.
type MessageNode struct {
	ID string `json:"id"`
	msg.Content
	Next string `json:"next,omitempty"`
}

// DecisionNode takes the first branch whose condition holds, else Else.
type DecisionNode struct {
	ID       string   `json:"id"`
	Branches []Branch `json:"branches"`
	Else     string   `json:"else,omitempty"`
}

// Branch is one arm of a decision.
type Branch struct {
	When Condition `json:"when"`
	Next string    `json:"next"`
}

// SetNode sets (templated) and clears user attributes.
type SetNode struct {
	ID    string            `json:"id"`
	Set   map[string]string `json:"set,omitempty"`
	Clear []string          `json:"clear,omitempty"`
	Next  string            `json:"next,omitempty"`
}

// InputNode optionally sends a prompt, then parks the run until the user replies; the
// reply is saved to SaveAs. Without a reply within TimeoutSeconds, the run goes to
// OnTimeout (or ends when that is empty).
type InputNode struct {
	ID string `json:"id"`
	msg.Content
	SaveAs         string `json:"save_as,omitempty"`
	TimeoutSeconds int    `json:"timeout_seconds,omitempty"`
	OnTimeout      string `json:"on_timeout,omitempty"`
	Next           string `json:"next,omitempty"`
}

// HTTPNode calls an external API (SPEC section 4).
type HTTPNode struct {
	ID      string            `json:"id"`
	Name    string            `json:"name,omitempty"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	// SecretHeaders names the headers whose values are secrets (tokens, API keys):
	// stored encrypted, shown as RedactedSecret on export, redacted in call logs.
	SecretHeaders []string          `json:"secret_headers,omitempty"`
	Body          *HTTPBody         `json:"body,omitempty"`
	Save          map[string]string `json:"save,omitempty"`
	OnFailure     string            `json:"on_failure,omitempty"` // continue (default) or stop
	// OnFailureNext is where a failed call continues instead of Next (with on_failure
	// continue): the flow builder's "failure" way out.
	OnFailureNext  string   `json:"on_failure_next,omitempty"`
	TimeoutSeconds int      `json:"timeout_seconds,omitempty"`
	AlertEmails    []string `json:"alert_emails,omitempty"`
	Next           string   `json:"next,omitempty"`
}

// HTTPBody is the request body of an HTTP node.
type HTTPBody struct {
	Mode string `json:"mode"` // none, query, json, raw
	// Content is the body text for json and raw modes.
	Content string `json:"content,omitempty"`
	// ContentType is raw mode's content type (text/plain when empty).
	ContentType string `json:"content_type,omitempty"`
	// Fields are query mode's form fields.
	Fields map[string]string `json:"fields,omitempty"`
}

// JumpNode continues the run in another flow of the same bot, at its start.
type JumpNode struct {
	ID   string `json:"id"`
	Flow string `json:"flow"`
}

// EndNode ends the run.
type EndNode struct {
	ID string `json:"id"`
}

// HTTP fallback actions.
const (
	OnFailureContinue = "continue"
	OnFailureStop     = "stop"
)

// MaxHTTPTimeoutSeconds caps an HTTP node's timeout, as the seed says.
const MaxHTTPTimeoutSeconds = 60

func (n *MessageNode) NodeID() string   { return n.ID }
func (n *DecisionNode) NodeID() string  { return n.ID }
func (n *SetNode) NodeID() string       { return n.ID }
func (n *InputNode) NodeID() string     { return n.ID }
func (n *HTTPNode) NodeID() string      { return n.ID }
func (n *JumpNode) NodeID() string      { return n.ID }
func (n *EndNode) NodeID() string       { return n.ID }
func (n *MessageNode) NodeType() string { return TypeMessage }
func (n *DecisionNode) NodeType() string {
	return TypeDecision
}
func (n *SetNode) NodeType() string   { return TypeSet }
func (n *InputNode) NodeType() string { return TypeInput }
func (n *HTTPNode) NodeType() string  { return TypeHTTP }
func (n *JumpNode) NodeType() string  { return TypeJump }
func (n *EndNode) NodeType() string   { return TypeEnd }

func (n *MessageNode) Successors() []string { return nonEmpty(n.Next) }
func (n *DecisionNode) Successors() []string {
	out := make([]string, 0, len(n.Branches)+1)
	for _, b := range n.Branches {
		out = append(out, b.Next)
	}
	return append(out, nonEmpty(n.Else)...)
}
func (n *SetNode) Successors() []string   { return nonEmpty(n.Next) }
func (n *InputNode) Successors() []string { return nonEmpty(n.Next, n.OnTimeout) }
func (n *HTTPNode) Successors() []string  { return nonEmpty(n.Next, n.OnFailureNext) }
func (n *JumpNode) Successors() []string  { return nil }
func (n *EndNode) Successors() []string   { return nil }

// Timeout returns the node's effective timeout in seconds: 60 when unset, capped at 60.
func (n *HTTPNode) Timeout() int {
	if n.TimeoutSeconds <= 0 || n.TimeoutSeconds > MaxHTTPTimeoutSeconds {
		return MaxHTTPTimeoutSeconds
	}
	return n.TimeoutSeconds
}

// RedactedSecret stands for a secret header's value in an exported flow. Importing a
// document whose secret header still holds it keeps the value stored for that header.
const RedactedSecret = "[REDACTED]"

// IsSecretHeader reports whether the header name (any case) is one of SecretHeaders.
func (n *HTTPNode) IsSecretHeader(name string) bool {
	for _, s := range n.SecretHeaders {
		if strings.EqualFold(strings.TrimSpace(s), strings.TrimSpace(name)) {
			return true
		}
	}
	return false
}

// StopOnFailure reports whether a failed call ends the run.
func (n *HTTPNode) StopOnFailure() bool { return n.OnFailure == OnFailureStop }

func nonEmpty(ids ...string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != "" {
			out = append(out, id)
		}
	}
	return out
}

// Node returns the node with the given id.
func (f *Flow) Node(id string) (Node, bool) {
	n, ok := f.byID[id]
	return n, ok
}

// IsHTTPNode reports whether id is an http node, whose results templates may read.
func (f *Flow) IsHTTPNode(id string) bool {
	n, ok := f.byID[id]
	return ok && n.NodeType() == TypeHTTP
}

// Parse decodes and validates a flow document. The error, when there is one, is a
// *ValidationErrors listing every problem found, each naming its node.
func Parse(data []byte) (*Flow, error) {
	if !utf8.Valid(data) {
		return nil, ValidationErrors{{Msg: "flow document: not valid UTF-8"}}
	}
	f, err := decode(data)
	if err != nil {
		return nil, err
	}
	if errs := f.validate(); len(errs) > 0 {
		return nil, errs
	}
	return f, nil
}

// rawFlow mirrors Flow with undecoded nodes.
type rawFlow struct {
	Key    string            `json:"key"`
	Name   string            `json:"name"`
	Start  string            `json:"start"`
	Nodes  []json.RawMessage `json:"nodes"`
	Layout *Layout           `json:"layout,omitempty"`
}

func decode(data []byte) (*Flow, error) {
	var raw rawFlow
	if err := strictUnmarshal(data, &raw); err != nil {
		return nil, ValidationErrors{{Msg: "flow document: " + err.Error()}}
	}
	if err := exactMembers(data, reflect.TypeFor[rawFlow](), ""); err != nil {
		return nil, ValidationErrors{{Msg: "flow document: " + err.Error()}}
	}
	f := &Flow{Key: raw.Key, Name: raw.Name, Start: raw.Start, Nodes: make([]Node, 0, len(raw.Nodes)), Layout: raw.Layout}
	var errs ValidationErrors
	for i, rn := range raw.Nodes {
		var head struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		}
		if err := json.Unmarshal(rn, &head); err != nil {
			errs = append(errs, ValidationError{Msg: fmt.Sprintf("nodes[%d]: %v", i, err)})
			continue
		}
		label := head.ID
		if label == "" {
			label = fmt.Sprintf("nodes[%d]", i)
		}
		n := newNode(head.Type)
		if n == nil {
			errs = append(errs, ValidationError{Node: label, Msg: fmt.Sprintf("unknown type %q (want message, decision, set, input, http, jump or end)", head.Type)})
			continue
		}
		body := withoutType(rn)
		if err := strictUnmarshal(body, n); err != nil {
			errs = append(errs, ValidationError{Node: label, Msg: err.Error()})
			continue
		}
		if err := exactMembers(body, reflect.TypeOf(n), ""); err != nil {
			errs = append(errs, ValidationError{Node: label, Msg: err.Error()})
			continue
		}
		f.Nodes = append(f.Nodes, n)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return f, nil
}

func newNode(typ string) Node {
	switch typ {
	case TypeMessage:
		return &MessageNode{}
	case TypeDecision:
		return &DecisionNode{}
	case TypeSet:
		return &SetNode{}
	case TypeInput:
		return &InputNode{}
	case TypeHTTP:
		return &HTTPNode{}
	case TypeJump:
		return &JumpNode{}
	case TypeEnd:
		return &EndNode{}
	}
	return nil
}

// withoutType drops the "type" member so the strict decoder of the concrete node type,
// which has no such field, does not reject it.
func withoutType(rn json.RawMessage) []byte {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(rn, &m); err != nil {
		return rn
	}
	delete(m, "type")
	out, err := json.Marshal(m)
	if err != nil {
		return rn
	}
	return out
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}

// MarshalJSON writes the flow with each node's "type" member, the shape Parse reads.
func (f *Flow) MarshalJSON() ([]byte, error) {
	nodes := make([]json.RawMessage, 0, len(f.Nodes))
	for _, n := range f.Nodes {
		b, err := marshalNode(n)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, b)
	}
	return json.Marshal(rawFlow{Key: f.Key, Name: f.Name, Start: f.Start, Nodes: nodes, Layout: f.Layout})
}

func marshalNode(n Node) ([]byte, error) {
	body, err := json.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("node %q: %w", n.NodeID(), err)
	}
	typ, _ := json.Marshal(n.NodeType())
	// Put "type" right after "{" so exported documents read naturally.
	out := make([]byte, 0, len(body)+len(typ)+10)
	out = append(out, `{"type":`...)
	out = append(out, typ...)
	if len(body) > 2 {
		out = append(out, ',')
	}
	return append(out, body[1:]...), nil
}

// ValidationError is one problem in a flow document.
type ValidationError struct {
	Node  string `json:"node,omitempty"`
	Field string `json:"field,omitempty"`
	Msg   string `json:"message"`
}

func (e ValidationError) Error() string {
	s := ""
	if e.Node != "" {
		s = fmt.Sprintf("node %q: ", e.Node)
	}
	if e.Field != "" {
		s += e.Field + ": "
	}
	return s + e.Msg
}

// ValidationErrors lists every problem found in a document.
type ValidationErrors []ValidationError

func (es ValidationErrors) Error() string {
	var b bytes.Buffer
	for i, e := range es {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// keyPattern is what a flow key may look like: generated keys are 32 hex chars, readable
// ones are like "default_fallback_msg_74963".
var keyPattern = regexp.MustCompile(`^[A-Za-z0-9_\-]{1,100}$`)

// ValidKey reports whether s may be a flow key.
func ValidKey(s string) bool { return keyPattern.MatchString(s) }

// ParseHTTPNode decodes and validates one http node on its own, as the flow builder has
// it before the flow is published (the builder's Test). It checks all that Parse checks of
// the node except next and on_failure_next, whose targets are not in the document.
func ParseHTTPNode(data []byte) (*HTTPNode, error) {
	if !utf8.Valid(data) {
		return nil, ValidationErrors{{Msg: "http node: not valid UTF-8"}}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return nil, ValidationErrors{{Msg: "http node: not a JSON object"}}
	}
	var head struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, ValidationErrors{{Msg: "http node: " + err.Error()}}
	}
	if head.Type != TypeHTTP {
		return nil, ValidationErrors{{Node: head.ID, Field: "type", Msg: fmt.Sprintf("%q is not an http node", head.Type)}}
	}
	delete(fields, "next")
	delete(fields, "on_failure_next")
	node, err := json.Marshal(fields)
	if err != nil {
		return nil, ValidationErrors{{Msg: "http node: " + err.Error()}}
	}
	doc, err := json.Marshal(rawFlow{Start: head.ID, Nodes: []json.RawMessage{node}})
	if err != nil {
		return nil, ValidationErrors{{Msg: "http node: " + err.Error()}}
	}
	f, err := Parse(doc)
	if err != nil {
		return nil, err
	}
	return f.Nodes[0].(*HTTPNode), nil
}
