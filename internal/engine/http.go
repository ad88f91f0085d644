package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/parleyhq/parley/internal/flow"
	"github.com/parleyhq/parley/internal/httpstep"
	"github.com/parleyhq/parley/internal/sanitize"
)

// HTTPCaller makes the call of an http node: *httpstep.Service, which applies the
// account's rate limit, keeps the step's logs and sends alert mail; tests pass fakes.
type HTTPCaller interface {
	Call(ctx context.Context, call HTTPCall) HTTPResult
}

// HTTPCall is one execution of an http node.
type HTTPCall = httpstep.StepCall

// HTTPResult is what the engine needs back: whether the call failed (and why), the
// status, and the JSON response's leaves for {{node.path}} and save.
type HTTPResult = httpstep.StepResult

// idempotentMethod reports whether repeating a call is harmless, so a call interrupted by
// a crash may be made again rather than reported as failed.
func idempotentMethod(m string) bool {
	switch m {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE":
		return true
	}
	return false
}

// storableResult cleans what an external API answered, which templates put into
// messages and attributes: NUL characters and invalid UTF-8 cannot be stored.
func storableResult(res HTTPResult) HTTPResult {
	res.Error = sanitize.Clean(res.Error)
	for k, v := range res.Leaves {
		if c := sanitize.Clean(v); c != v {
			res.Leaves[k] = c
		}
	}
	return res
}

// httpStep makes an http node's call off the workers (see outside.go): the first visit
// takes a call slot, commits the call as pending (a POST: a crash during it must not
// lead to a second call) or the run's acceptance (unless the call may come before it),
// and hands the call over; the second visit takes the answer and goes on.
func (e *Engine) httpStep(ctx context.Context, r *run, f *compiledFlow, n *flow.HTTPNode, lookup flow.Lookup) outcome {
	now := time.Now()
	var res HTTPResult
	p := r.st.Pending
	if a := r.takeAnswer(callHTTP, n.ID); a != nil {
		res = a.http
	} else {
		switch {
		case e.cfg.HTTP == nil:
			res = HTTPResult{Failed: true, Error: "HTTP steps are not enabled on this server"}
		case p != nil && p.Kind == effectHTTP && p.Step == r.st.Step && !idempotentMethod(n.Method):
			res = HTTPResult{Failed: true, Error: fmt.Sprintf("interrupted by a restart; the %s may have reached the server and is not repeated", n.Method)}
		default:
			if out, ok := e.takeSlot(ctx, r); !ok {
				return out
			}
			if !idempotentMethod(n.Method) {
				// Record the call as started, so a crash during it is not followed by a second call.
				r.st.Pending = &pendingEffect{Kind: effectHTTP, Node: n.ID, Step: r.st.Step}
				if err := e.commit(ctx, r, true); err != nil {
					return e.commitFailed(r, err)
				}
			} else if !r.mayCallBeforeAccept(time.Duration(n.Timeout()) * time.Second) {
				if err := e.ensureAccepted(ctx, r); err != nil {
					return e.commitFailed(r, err)
				}
			}
			call := HTTPCall{CustomerID: r.customerID, BotID: r.rec.BotID, FlowID: f.id, FlowKey: f.key,
				RunID: r.rec.ID, Node: n, Lookup: lookup}
			caller := e.cfg.HTTP
			e.callOutside(r, callHTTP, n.ID, 0, func(ctx context.Context) answer {
				return answer{http: storableResult(caller.Call(ctx, call))}
			})
			return detached
		}
	}
	r.st.Pending = nil
	if r.st.Results == nil {
		r.st.Results = map[string]*nodeResult{}
	}
	r.st.Results[n.ID] = &nodeResult{Status: res.Status, Error: res.Error, Leaves: res.Leaves}
	if res.Failed {
		if n.StopOnFailure() {
			return e.failStep(ctx, r, now, fmt.Sprintf("http node %s: %s", n.ID, res.Error))
		}
		r.record(now, "failed, continued")
		r.st.Steps[len(r.st.Steps)-1].Error = res.Error
		if n.OnFailureNext != "" {
			return goTo(r, n.OnFailureNext)
		}
		return goTo(r, n.Next)
	}
	for attr, path := range n.Save {
		if v, ok := res.Leaves[path]; ok {
			r.setAttr(attr, v)
		}
	}
	r.record(now, fmt.Sprintf("HTTP %d", res.Status))
	return goTo(r, n.Next)
}
