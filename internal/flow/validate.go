package flow

import (
	"encoding/json"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/parleyhq/parley/internal/msg"
	"github.com/parleyhq/parley/internal/sanitize"
)

var (
	nodeIDPattern = regexp.MustCompile(`^[A-Za-z0-9_\-]{1,64}$`)
	attrPattern   = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$`)
)

// ValidAttributeName reports whether s may name a user attribute: letters, digits, "_",
// "-" and "." (system attributes live under "user."), at most 100 characters, not
// starting with "-" or ".". (A loop, not attrPattern: it runs for every trigger attribute.)
func ValidAttributeName(s string) bool {
	if len(s) == 0 || len(s) > 100 || s[0] == '-' || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// Limits a flow document must respect.
const (
	MaxNodes           = 500
	MaxButtons         = 10
	MaxButtonTitle     = 20 // WhatsApp's reply-button limit, the strictest channel
	MaxAlertEmails     = 10
	MaxInputTimeout    = 30 * 24 * 3600
	MaxTextLength      = 4096
	ReservedNodePrefix = "user"
)

var httpMethods = map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "HEAD": true, "OPTIONS": true}

type checker struct {
	f    *Flow
	errs ValidationErrors
}

func (c *checker) add(node, field, format string, args ...any) {
	c.errs = append(c.errs, ValidationError{Node: node, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (f *Flow) validate() ValidationErrors {
	c := &checker{f: f}
	if f.Key != "" && !ValidKey(f.Key) {
		c.add("", "key", "%q is not a valid flow key (letters, digits, _ and -, at most 100)", f.Key)
	}
	if l := f.Layout; l != nil && l.Viewport != nil && !(l.Viewport.Zoom > 0) {
		c.add("", "layout.viewport.zoom", "the zoom must be more than 0")
	}
	if err := sanitize.CheckName(f.Name); err != nil {
		c.add("", "name", "%v", err)
	}
	if len(f.Nodes) == 0 {
		c.add("", "nodes", "a flow needs at least one node")
		return c.errs
	}
	if len(f.Nodes) > MaxNodes {
		c.add("", "nodes", "%d nodes is more than the limit of %d", len(f.Nodes), MaxNodes)
	}
	f.byID = make(map[string]Node, len(f.Nodes))
	for _, n := range f.Nodes {
		id := n.NodeID()
		// Every text ends up in the database (the document, messages, attributes), which
		// cannot hold NUL.
		if path, err := sanitize.Find(n); err != nil {
			c.add(id, path, "%v", err)
		}
		switch {
		case id == "":
			c.add("", "id", "a %s node has no id", n.NodeType())
			continue
		case !nodeIDPattern.MatchString(id):
			c.add(id, "id", "ids use letters, digits, _ and - only (at most 64)")
		case id == ReservedNodePrefix:
			c.add(id, "id", `"user" is reserved for system attributes`)
		}
		if _, dup := f.byID[id]; dup {
			c.add(id, "id", "duplicate node id")
			continue
		}
		f.byID[id] = n
	}
	switch {
	case f.Start == "":
		c.add("", "start", "missing start node")
	case f.byID[f.Start] == nil:
		c.add("", "start", "start node %q does not exist", f.Start)
	}
	for _, n := range f.Nodes {
		c.node(n)
	}
	if len(c.errs) == 0 {
		c.reachability()
		c.loops()
	}
	return c.errs
}

func (c *checker) ref(node, field, target string, required bool) {
	if target == "" {
		if required {
			c.add(node, field, "missing")
		}
		return
	}
	if _, ok := c.f.byID[target]; !ok {
		c.add(node, field, "points to %q, which is not a node of this flow", target)
	}
}

func (c *checker) node(n Node) {
	id := n.NodeID()
	switch n := n.(type) {
	case *MessageNode:
		c.content(id, n.Content, true)
		c.ref(id, "next", n.Next, false)
	case *DecisionNode:
		if len(n.Branches) == 0 {
			c.add(id, "branches", "a decision needs at least one branch")
		}
		for i, b := range n.Branches {
			field := fmt.Sprintf("branches[%d]", i)
			c.condition(id, field+".when", &n.Branches[i].When, 0)
			c.ref(id, field+".next", b.Next, true)
		}
		c.ref(id, "else", n.Else, false)
	case *SetNode:
		if len(n.Set) == 0 && len(n.Clear) == 0 {
			c.add(id, "set", "a set node needs attributes to set or clear")
		}
		for name, v := range n.Set {
			c.attrName(id, "set", name)
			c.template(id, "set."+name, v)
		}
		for _, name := range n.Clear {
			c.attrName(id, "clear", name)
		}
		c.ref(id, "next", n.Next, false)
	case *InputNode:
		hasPrompt := n.Text != "" || n.Media != nil || n.Template != nil || n.Card != nil
		if hasPrompt {
			c.content(id, n.Content, false)
		} else if len(n.Buttons) > 0 {
			c.add(id, "buttons", "buttons need a text to go with them")
		}
		if n.SaveAs != "" {
			c.attrName(id, "save_as", n.SaveAs)
		}
		if n.TimeoutSeconds < 0 || n.TimeoutSeconds > MaxInputTimeout {
			c.add(id, "timeout_seconds", "must be between 0 (no timeout) and %d", MaxInputTimeout)
		}
		if n.OnTimeout != "" && n.TimeoutSeconds == 0 {
			c.add(id, "on_timeout", "set timeout_seconds for on_timeout to fire")
		}
		c.ref(id, "next", n.Next, false)
		c.ref(id, "on_timeout", n.OnTimeout, false)
	case *HTTPNode:
		c.http(n)
	case *JumpNode:
		if n.Flow == "" {
			c.add(id, "flow", "missing the key of the flow to jump to")
		} else if !ValidKey(n.Flow) {
			c.add(id, "flow", "%q is not a valid flow key", n.Flow)
		}
	case *EndNode:
	}
}

func (c *checker) content(id string, ct msg.Content, required bool) {
	bodies := 0
	for _, set := range []bool{ct.Text != "" || len(ct.Buttons) > 0, ct.Media != nil, ct.Template != nil, ct.Card != nil} {
		if set {
			bodies++
		}
	}
	if bodies == 0 && required {
		c.add(id, "text", "a message needs a text, media, card or template")
	}
	if ct.Media != nil && ct.Text != "" {
		c.add(id, "media", "send text with media as the media's caption")
		bodies--
	}
	if bodies > 1 {
		c.add(id, "", "a message carries one of text, media, card or template")
	}
	if len(ct.Buttons) > 0 && ct.Text == "" {
		c.add(id, "buttons", "buttons need a text to go with them")
	}
	if utf8.RuneCountInString(ct.Text) > MaxTextLength {
		c.add(id, "text", "longer than %d characters", MaxTextLength)
	}
	c.template(id, "text", ct.Text)
	c.buttons(id, "buttons", ct.Buttons)
	if ct.Media != nil {
		switch ct.Media.Type {
		case "image", "video", "audio", "document":
		default:
			c.add(id, "media.type", "%q is not one of image, video, audio, document", ct.Media.Type)
		}
		c.url(id, "media.url", ct.Media.URL)
		c.template(id, "media.caption", ct.Media.Caption)
	}
	if ct.Card != nil {
		if ct.Card.Title == "" && ct.Card.Description == "" && ct.Card.MediaURL == "" {
			c.add(id, "card", "a card needs a title, description or media_url")
		}
		if ct.Card.MediaURL != "" {
			c.url(id, "card.media_url", ct.Card.MediaURL)
		}
		c.template(id, "card.title", ct.Card.Title)
		c.template(id, "card.description", ct.Card.Description)
		c.buttons(id, "card.buttons", ct.Card.Buttons)
	}
	if t := ct.Template; t != nil {
		if t.Name == "" {
			c.add(id, "template.name", "missing")
		}
		if t.Language.Code == "" {
			c.add(id, "template.language.code", "missing")
		}
	}
}

func (c *checker) buttons(id, field string, bs []msg.Button) {
	if len(bs) > MaxButtons {
		c.add(id, field, "at most %d buttons", MaxButtons)
	}
	for i, b := range bs {
		switch {
		case strings.TrimSpace(b.Title) == "":
			c.add(id, fmt.Sprintf("%s[%d].title", field, i), "missing")
		case len([]rune(b.Title)) > MaxButtonTitle:
			c.add(id, fmt.Sprintf("%s[%d].title", field, i), "longer than %d characters", MaxButtonTitle)
		}
	}
}

func (c *checker) attrName(id, field, name string) {
	if !ValidAttributeName(name) {
		c.add(id, field, "%q is not a valid attribute name (letters, digits, _, - and ., at most 100)", name)
		return
	}
	if c.f.IsHTTPNode(firstSegment(name)) {
		c.add(id, field, "%q would shadow the results of http node %q", name, firstSegment(name))
	}
}

func firstSegment(name string) string {
	if i := strings.IndexByte(name, '.'); i >= 0 {
		return name[:i]
	}
	return ""
}

// template checks every {{name}} reference in s.
func (c *checker) template(id, field, s string) {
	for _, name := range References(s) {
		if !ValidAttributeName(name) {
			c.add(id, field, "{{%s}} is not a valid reference", name)
		}
	}
}

// url checks a URL that may contain {{...}} references, by substituting a dummy value.
func (c *checker) url(id, field, raw string) {
	c.template(id, field, raw)
	if raw == "" {
		c.add(id, field, "missing")
		return
	}
	u, err := url.Parse(Render(raw, func(string) (string, bool) { return "x", true }, EscapeNone))
	switch {
	case err != nil:
		c.add(id, field, "not a URL: %v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		c.add(id, field, "the URL must start with http:// or https://")
	case u.Host == "":
		c.add(id, field, "the URL has no host")
	}
}

func (c *checker) http(n *HTTPNode) {
	id := n.ID
	if !httpMethods[n.Method] {
		c.add(id, "method", "%q is not one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS", n.Method)
	}
	c.url(id, "url", n.URL)
	for k, v := range n.Headers {
		if k == "" || strings.ContainsAny(k, " :\r\n") {
			c.add(id, "headers", "%q is not a valid header name", k)
		}
		c.template(id, "headers."+k, v)
	}
	seen := make(map[string]bool, len(n.SecretHeaders))
	for _, name := range n.SecretHeaders {
		switch {
		case name == "" || strings.ContainsAny(name, " :\r\n"):
			c.add(id, "secret_headers", "%q is not a valid header name", name)
		case seen[name]:
			c.add(id, "secret_headers", "%q is listed twice", name)
		case !hasHeader(n.Headers, name):
			c.add(id, "secret_headers", "%q is not one of the node's headers", name)
		}
		seen[name] = true
	}
	if b := n.Body; b != nil {
		switch b.Mode {
		case "", "none":
			if b.Content != "" || len(b.Fields) > 0 {
				c.add(id, "body", "mode none takes no content")
			}
		case "query":
			if b.Content != "" {
				c.add(id, "body.content", "query mode sends fields, not content")
			}
			for k, v := range b.Fields {
				c.template(id, "body.fields."+k, v)
			}
		case "json":
			c.template(id, "body.content", b.Content)
			// References become 0: valid inside a string and in place of a number.
			probe := Render(b.Content, func(string) (string, bool) { return "0", true }, EscapeNone)
			if !json.Valid([]byte(probe)) {
				c.add(id, "body.content", "not valid JSON (with every {{...}} read as 0)")
			}
		case "raw":
			c.template(id, "body.content", b.Content)
		default:
			c.add(id, "body.mode", "%q is not one of none, query, json, raw", b.Mode)
		}
	}
	for attr, path := range n.Save {
		c.attrName(id, "save", attr)
		if !validPath(path) {
			c.add(id, "save."+attr, "%q is not a JSON path (field names and array indexes joined by .)", path)
		}
	}
	switch n.OnFailure {
	case "", OnFailureContinue, OnFailureStop:
	default:
		c.add(id, "on_failure", "%q is not continue or stop", n.OnFailure)
	}
	if n.TimeoutSeconds < 0 || n.TimeoutSeconds > MaxHTTPTimeoutSeconds {
		c.add(id, "timeout_seconds", "must be between 1 and %d", MaxHTTPTimeoutSeconds)
	}
	if len(n.AlertEmails) > MaxAlertEmails {
		c.add(id, "alert_emails", "at most %d addresses", MaxAlertEmails)
	}
	for _, a := range n.AlertEmails {
		if addr, err := mail.ParseAddress(a); err != nil || addr.Address != strings.TrimSpace(a) {
			c.add(id, "alert_emails", "%q is not an email address", a)
		}
	}
	if n.OnFailureNext != "" && n.StopOnFailure() {
		c.add(id, "on_failure_next", "a failed call stops the run (on_failure stop); leave on_failure_next out or continue")
	}
	c.ref(id, "next", n.Next, false)
	c.ref(id, "on_failure_next", n.OnFailureNext, false)
}

var pathPattern = regexp.MustCompile(`^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$`)

// validPath reports whether p is a response path: field names and array indexes joined
// by dots ("customer.tier", "items.0.sku"). Nothing else, so paths can never carry
// query modifiers into the JSON reader.
func validPath(p string) bool { return pathPattern.MatchString(p) }

// ValidPath reports whether p may name a leaf of a JSON response.
func ValidPath(p string) bool { return validPath(p) }

func (c *checker) reachability() {
	seen := map[string]bool{c.f.Start: true}
	stack := []string{c.f.Start}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, next := range c.f.byID[id].Successors() {
			if !seen[next] {
				seen[next] = true
				stack = append(stack, next)
			}
		}
	}
	for _, n := range c.f.Nodes {
		if !seen[n.NodeID()] {
			c.add(n.NodeID(), "", "unreachable from the start node %q", c.f.Start)
		}
	}
}

// loops reports cycles that do not pass through an input node: those would spin forever
// without waiting for the user.
func (c *checker) loops() {
	const (
		unvisited = iota
		onStack
		done
	)
	state := make(map[string]int, len(c.f.Nodes))
	var visit func(id string) bool
	visit = func(id string) bool {
		state[id] = onStack
		for _, next := range c.f.byID[id].Successors() {
			if c.f.byID[next].NodeType() == TypeInput {
				continue // waiting for the user breaks the cycle
			}
			switch state[next] {
			case onStack:
				c.add(next, "", "is part of a loop that never waits for the user (loops must pass through an input node)")
				return true
			case unvisited:
				if visit(next) {
					return true
				}
			}
		}
		state[id] = done
		return false
	}
	for _, n := range c.f.Nodes {
		if n.NodeType() != TypeInput && state[n.NodeID()] == unvisited {
			if visit(n.NodeID()) {
				return
			}
		}
	}
}

// hasHeader reports whether headers has name, in any case.
func hasHeader(headers map[string]string, name string) bool {
	for k := range headers {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}
