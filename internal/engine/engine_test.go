package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/catalog"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

type bundle struct {
	st    *store.Store
	eng   *Engine
	botID int64
	cid   int64
}

func setup(t *testing.T, st *store.Store, cfg Config, flows ...string) *bundle {
	t.Helper()
	ctx := context.Background()
	c, _, err := st.EnsureCustomer(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.CreateBot(ctx, c.ID, "00112233445566aa", "bot")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range flows {
		if _, err := catalog.Import(ctx, st, b.ID, []byte(f)); err != nil {
			t.Fatalf("import: %v", err)
		}
	}
	if cfg.Sweep == 0 {
		cfg.Sweep = 20 * time.Millisecond
	}
	eng := New(st, cfg)
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Stop(context.Background()) })
	return &bundle{st: st, eng: eng, botID: b.ID, cid: c.ID}
}

func (b *bundle) trigger(t *testing.T, flowKey, digits string, attrs map[string]string) RunView {
	t.Helper()
	if attrs == nil {
		attrs = map[string]string{}
	}
	attrs["user.phone_no"] = "+" + digits
	v, err := b.eng.Trigger(context.Background(), TriggerRequest{BotID: b.botID, CustomerID: b.cid, FlowKey: flowKey,
		Channel: "whatsapp", Phone: "+" + digits, Digits: digits, Attrs: attrs, Wait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (b *bundle) reply(t *testing.T, digits, text string) InboundResult {
	t.Helper()
	res, err := b.eng.Inbound(context.Background(), Inbound{BotID: b.botID, CustomerID: b.cid, Channel: "whatsapp",
		ChannelUserID: digits, Phone: "+" + digits, Type: "text", Text: text})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// waitStatus polls until the run has the status.
func (b *bundle) waitStatus(t *testing.T, runID, status string) RunView {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := b.eng.View(context.Background(), b.botID, runID)
		if err != nil {
			t.Fatal(err)
		}
		if v.Status == status {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is %s (%s), want %s", runID, v.Status, v.Error, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (b *bundle) texts(t *testing.T, digits string) []string {
	t.Helper()
	u, err := b.st.UserByChannelID(context.Background(), b.botID, digits)
	if err != nil {
		t.Fatal(err)
	}
	msgs, _, err := b.st.Conversation(context.Background(), u.ID, 0, time.Now().Add(time.Hour).UnixMilli(), store.PageQuery{Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Sender + ":" + m.Text
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

const inputFlow = `{"key": "survey", "start": "ask", "nodes": [
  {"id": "ask", "type": "input", "text": "Your email?", "save_as": "email", "timeout_seconds": 3600, "on_timeout": "late", "next": "thanks"},
  {"id": "thanks", "type": "message", "text": "Thanks, {{email}}", "next": "mark"},
  {"id": "mark", "type": "set", "set": {"surveyed": "yes", "echo": "{{email}}!"}, "clear": ["tmp"], "next": "done"},
  {"id": "late", "type": "message", "text": "Too late"},
  {"id": "done", "type": "end"}]}`

func TestInputParksAndResumes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		b := setup(t, st, Config{}, inputFlow)
		v := b.trigger(t, "survey", "919876543210", map[string]string{"tmp": "x"})
		if v.Status != store.RunWaiting || v.WaitingFor != "input" || v.CurrentNode != "ask" {
			t.Fatalf("after trigger: %+v", v)
		}
		res := b.reply(t, "919876543210", "a@b.io")
		if res.Resumed != v.RunID {
			t.Fatalf("reply resumed %q, want %s", res.Resumed, v.RunID)
		}
		done := b.waitStatus(t, v.RunID, store.RunCompleted)
		if len(done.Steps) != 4 || done.Steps[0].Outcome != "replied" {
			t.Fatalf("steps = %+v", done.Steps)
		}
		want := []string{"bot:Your email?", "user:a@b.io", "bot:Thanks, a@b.io"}
		if got := b.texts(t, "919876543210"); !equal(got, want) {
			t.Fatalf("conversation = %q, want %q", got, want)
		}
		u, _ := st.UserByChannelID(context.Background(), b.botID, "919876543210")
		if u.Attrs["email"] != "a@b.io" || u.Attrs["surveyed"] != "yes" || u.Attrs["echo"] != "a@b.io!" || u.Attrs["tmp"] != "" {
			t.Fatalf("attributes = %v", u.Attrs)
		}
		if _, had := u.Attrs["tmp"]; had {
			t.Fatal("clear left the attribute in place")
		}
		// A later message with nothing waiting is stored and resumes nothing.
		if res := b.reply(t, "919876543210", "hello?"); res.Resumed != "" {
			t.Fatalf("resumed %s with nothing waiting", res.Resumed)
		}
	})
}

func TestInputTimeout(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		b := setup(t, st, Config{}, `{"key": "q", "start": "ask", "nodes": [
  {"id": "ask", "type": "input", "text": "Quick!", "save_as": "x", "timeout_seconds": 1, "on_timeout": "late", "next": "done"},
  {"id": "late", "type": "message", "text": "Too late"},
  {"id": "done", "type": "end"}]}`)
		v := b.trigger(t, "q", "919876543210", nil)
		if v.Status != store.RunWaiting {
			t.Fatalf("after trigger: %+v", v)
		}
		done := b.waitStatus(t, v.RunID, store.RunCompleted)
		if done.Steps[0].Outcome != "timed out" {
			t.Fatalf("steps = %+v", done.Steps)
		}
		if got := b.texts(t, "919876543210"); !equal(got, []string{"bot:Quick!", "bot:Too late"}) {
			t.Fatalf("conversation = %q", got)
		}
		// A reply after the timeout resumes nothing.
		if res := b.reply(t, "919876543210", "now"); res.Resumed != "" {
			t.Fatal("a late reply resumed a finished run")
		}
	})
}

func TestJumpAndStepLimit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		b := setup(t, st, Config{MaxSteps: 50},
			`{"key": "first", "start": "hello", "nodes": [
  {"id": "hello", "type": "message", "text": "one", "next": "go"},
  {"id": "go", "type": "jump", "flow": "SECOND"}]}`,
			`{"key": "second", "start": "m", "nodes": [{"id": "m", "type": "message", "text": "two"}]}`,
			`{"key": "ping", "start": "j", "nodes": [{"id": "j", "type": "jump", "flow": "pong"}]}`,
			`{"key": "pong", "start": "j", "nodes": [{"id": "j", "type": "jump", "flow": "ping"}]}`,
			`{"key": "broken", "start": "j", "nodes": [{"id": "j", "type": "jump", "flow": "nowhere"}]}`)
		v := b.trigger(t, "first", "919876543210", nil)
		if v.Status != store.RunCompleted || v.FlowKey != "second" || len(v.Steps) != 3 {
			t.Fatalf("jump run = %+v", v)
		}
		if got := b.texts(t, "919876543210"); !equal(got, []string{"bot:one", "bot:two"}) {
			t.Fatalf("conversation = %q", got)
		}
		loop := b.trigger(t, "ping", "919876543211", nil)
		if loop.Status != store.RunFailed || loop.Error == "" {
			t.Fatalf("jump loop = %+v; want failed at the step limit", loop)
		}
		broken := b.trigger(t, "broken", "919876543212", nil)
		if broken.Status != store.RunFailed || broken.Error != `jump: flow "nowhere" not found` {
			t.Fatalf("broken jump = %+v", broken)
		}
	})
}

// fakeHTTP answers http nodes from a function and counts calls.
type fakeHTTP struct {
	calls atomic.Int32
	fn    func(HTTPCall) HTTPResult
}

func (f *fakeHTTP) Call(_ context.Context, c HTTPCall) HTTPResult {
	f.calls.Add(1)
	return f.fn(c)
}

func TestHTTPNodeResultsAndFallback(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		h := &fakeHTTP{fn: func(c HTTPCall) HTTPResult {
			if c.Node.ID == "bad" || c.Node.ID == "stop" {
				return HTTPResult{Failed: true, Error: "HTTP 503 Service Unavailable", Status: 503}
			}
			return HTTPResult{Status: 200, Leaves: map[string]string{"customer.tier": "gold", "items.0.sku": "A1"}}
		}}
		b := setup(t, st, Config{HTTP: h}, `{"key": "h", "start": "crm", "nodes": [
  {"id": "crm", "type": "http", "method": "GET", "url": "https://crm.example.com/x", "save": {"tier": "customer.tier", "nope": "missing.path"}, "next": "bad"},
  {"id": "bad", "type": "http", "method": "POST", "url": "https://crm.example.com/y", "on_failure": "continue", "next": "say"},
  {"id": "say", "type": "message", "text": "{{tier}} {{crm.items.0.sku}} {{crm.status}} [{{bad.error}}] {{bad.status}}", "next": "stop"},
  {"id": "stop", "type": "http", "method": "GET", "url": "https://crm.example.com/z", "on_failure": "stop", "next": "never"},
  {"id": "never", "type": "message", "text": "unreachable at run time"}]}`,
			`{"key": "stopper", "start": "bad", "nodes": [
  {"id": "bad", "type": "http", "method": "DELETE", "url": "https://crm.example.com/y", "on_failure": "stop", "next": "m"},
  {"id": "m", "type": "message", "text": "no"}]}`)
		v := b.trigger(t, "h", "919876543210", nil)
		if v.Status != store.RunFailed || v.Error != "http node stop: HTTP 503 Service Unavailable" {
			t.Fatalf("run = %+v; want failed at the stop node", v)
		}
		want := []string{"bot:gold A1 200 [HTTP 503 Service Unavailable] 503"}
		if got := b.texts(t, "919876543210"); !equal(got, want) {
			t.Fatalf("conversation = %q, want %q", got, want)
		}
		u, _ := st.UserByChannelID(context.Background(), b.botID, "919876543210")
		if u.Attrs["tier"] != "gold" {
			t.Fatalf("saved attribute: %v", u.Attrs)
		}
		if _, ok := u.Attrs["nope"]; ok {
			t.Fatal("a missing path was saved")
		}
		if h.calls.Load() != 3 {
			t.Fatalf("%d calls, want 3", h.calls.Load())
		}
		s := b.trigger(t, "stopper", "919876543211", nil)
		if s.Status != store.RunFailed || s.Error != "http node bad: HTTP 503 Service Unavailable" {
			t.Fatalf("stop on failure: %+v", s)
		}
	})
}

// TestCrashRecoveryExactlyOnce stops the engine abruptly between steps, like kill -9,
// while it resumes many runs, and shows a new engine finishes every run exactly once
// with no message stored twice.
func TestCrashRecoveryExactlyOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		const runs = 60
		flowDoc := `{"key": "multi", "start": "a", "nodes": [
  {"id": "a", "type": "message", "text": "one", "next": "b"},
  {"id": "b", "type": "set", "set": {"seen": "yes"}, "next": "ask"},
  {"id": "ask", "type": "input", "text": "two?", "save_as": "answer", "next": "c"},
  {"id": "c", "type": "decision", "branches": [{"when": {"attribute": "seen", "op": "eq", "value": "yes"}, "next": "d"}], "else": "d"},
  {"id": "d", "type": "message", "text": "three {{answer}}", "next": "e"},
  {"id": "e", "type": "set", "set": {"done": "yes"}, "next": "f"},
  {"id": "f", "type": "message", "text": "four", "next": "g"},
  {"id": "g", "type": "end"}]}`
		var armed atomic.Bool
		var steps atomic.Int64
		cfg := Config{InstanceID: "doomed", Liveness: 300 * time.Millisecond, Heartbeat: 50 * time.Millisecond,
			stepHook: func(string, string) error {
				if armed.Load() && steps.Add(1) > runs*2 {
					return errors.New("crash")
				}
				return nil
			}}
		b := setup(t, st, cfg, flowDoc)
		ctx := context.Background()
		digits := func(i int) string { return fmt.Sprintf("9198765%05d", i) }
		ids := make([]string, runs)
		for i := range runs {
			ids[i] = b.trigger(t, "multi", digits(i), nil).RunID
			b.waitStatus(t, ids[i], store.RunWaiting)
		}
		// Every reply resumes a run; the engine dies partway through working them off.
		armed.Store(true)
		for i := range runs {
			b.reply(t, digits(i), "yes")
		}
		select {
		case <-b.eng.crashed:
		case <-time.After(10 * time.Second):
			t.Fatal("the engine never crashed")
		}
		_ = b.eng.Stop(ctx) // no clean-up: a crashed engine leaves its runs owned
		finished := 0
		for _, id := range ids {
			if v, _ := b.eng.View(ctx, b.botID, id); v.Status == store.RunCompleted {
				finished++
			}
		}
		if finished == runs {
			t.Fatal("the crash came too late: every run had finished")
		}

		// A new instance takes over once the dead one's heartbeat is stale, and finishes.
		second := New(st, Config{InstanceID: "survivor", Liveness: 300 * time.Millisecond, Sweep: 20 * time.Millisecond})
		if err := second.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer second.Stop(ctx)
		b.eng = second
		want := []string{"bot:one", "bot:two?", "user:yes", "bot:three yes", "bot:four"}
		for i, id := range ids {
			v := b.waitStatus(t, id, store.RunCompleted)
			if got := b.texts(t, digits(i)); !equal(got, want) {
				t.Errorf("run %d conversation = %q, want %q (steps %+v)", i, got, want, v.Steps)
			}
		}
	})
}

// TestCrashBeforeAcceptLosesNothingAccepted: a trigger answered with success is durable;
// one the crash interrupted reports an error and leaves nothing behind.
func TestCrashBeforeAcceptLosesNothingAccepted(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		var steps atomic.Int64
		b := setup(t, st, Config{InstanceID: "doomed", stepHook: func(string, string) error {
			if steps.Add(1) > 25 {
				return errors.New("crash")
			}
			return nil
		}}, `{"key": "m", "start": "a", "nodes": [
  {"id": "a", "type": "message", "text": "one", "next": "b"},
  {"id": "b", "type": "message", "text": "two"}]}`)
		ctx := context.Background()
		var accepted []string
		failed := 0
		for i := range 30 {
			d := fmt.Sprintf("9198765%05d", i)
			v, err := b.eng.Trigger(ctx, TriggerRequest{BotID: b.botID, CustomerID: b.cid, FlowKey: "m", Channel: "whatsapp",
				Phone: "+" + d, Digits: d, Attrs: map[string]string{}})
			if err != nil {
				failed++
				if _, err := st.UserByChannelID(ctx, b.botID, d); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("a failed trigger left its user behind: %v", err)
				}
				continue
			}
			accepted = append(accepted, v.RunID)
		}
		if failed == 0 || len(accepted) == 0 {
			t.Fatalf("accepted %d, failed %d: the crash should split them", len(accepted), failed)
		}
		for _, id := range accepted {
			if v, err := b.eng.View(ctx, b.botID, id); err != nil || v.Status != store.RunCompleted {
				t.Fatalf("accepted run %s: %+v %v", id, v, err)
			}
		}
		n, err := st.CountRuns(ctx, "")
		if err != nil || n != len(accepted) {
			t.Fatalf("%d runs stored, %d accepted (%v)", n, len(accepted), err)
		}
	})
}

// TestAcceptBeforeCalls: a run is stored before its first external call, except a GET
// made for a trigger whose caller waits for the run anyway (a crash then leaves the
// trigger unanswered, and repeating the GET is harmless).
func TestAcceptBeforeCalls(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		stored := map[string]bool{}
		var mu sync.Mutex
		h := &fakeHTTP{fn: func(c HTTPCall) HTTPResult {
			_, err := st.RunByID(context.Background(), nil, c.RunID)
			mu.Lock()
			stored[c.Node.Method] = err == nil
			mu.Unlock()
			return HTTPResult{Status: 200}
		}}
		b := setup(t, st, Config{HTTP: h},
			`{"key": "get", "start": "c", "nodes": [{"id": "c", "type": "http", "method": "GET", "url": "https://x.example.com", "timeout_seconds": 5}]}`,
			`{"key": "post", "start": "c", "nodes": [{"id": "c", "type": "http", "method": "POST", "url": "https://x.example.com", "timeout_seconds": 5}]}`)
		if v := b.trigger(t, "get", "919876543210", nil); v.Status != store.RunCompleted { // waits 5 s
			t.Fatalf("get run = %+v", v)
		}
		if v := b.trigger(t, "post", "919876543211", nil); v.Status != store.RunCompleted {
			t.Fatalf("post run = %+v", v)
		}
		mu.Lock()
		defer mu.Unlock()
		if stored["GET"] || !stored["POST"] {
			t.Fatalf("stored before the call: %v; want GET not yet (the caller waits), POST yes", stored)
		}
		// Without a wait the GET's run is stored first.
		v, err := b.eng.Trigger(context.Background(), TriggerRequest{BotID: b.botID, CustomerID: b.cid, FlowKey: "get",
			Channel: "whatsapp", Phone: "+919876543212", Digits: "919876543212", Attrs: map[string]string{}})
		if err != nil {
			t.Fatal(err)
		}
		mu.Unlock()
		b.waitStatus(t, v.RunID, store.RunCompleted)
		mu.Lock()
		if !stored["GET"] {
			t.Fatal("a GET for a trigger that does not wait ran before the run was stored")
		}
	})
}

// TestSetRendersFromAttributesBeforeTheNode: every value of a set node sees the
// attributes as they were before the node, whatever order Go walks the map in. Thirty
// values read x while the node also sets x, so a walk that applies values as it renders
// them gets some of them wrong on practically every run.
func TestSetRendersFromAttributesBeforeTheNode(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		set := map[string]string{"x": "new", "self": "{{self}}+1"}
		for i := range 30 {
			set[fmt.Sprintf("y%02d", i)] = "{{x}}"
		}
		doc, _ := json.Marshal(map[string]any{"key": "s", "start": "set", "nodes": []map[string]any{
			{"id": "set", "type": "set", "set": set, "next": "say"},
			{"id": "say", "type": "message", "text": "{{x}} {{y00}} {{self}}"}}})
		b := setup(t, st, Config{}, string(doc))
		for run := range 5 {
			d := fmt.Sprintf("9198765%05d", run)
			if v := b.trigger(t, "s", d, map[string]string{"x": "old", "self": "s"}); v.Status != store.RunCompleted {
				t.Fatalf("run %+v", v)
			}
			u, err := st.UserByChannelID(context.Background(), b.botID, d)
			if err != nil {
				t.Fatal(err)
			}
			if u.Attrs["x"] != "new" || u.Attrs["self"] != "s+1" {
				t.Fatalf("run %d: x = %q, self = %q; want new, s+1", run, u.Attrs["x"], u.Attrs["self"])
			}
			for i := range 30 {
				if y := u.Attrs[fmt.Sprintf("y%02d", i)]; y != "old" {
					t.Fatalf("run %d: y%02d = %q, want old (rendered before the node set x)", run, i, y)
				}
			}
			if got := b.texts(t, d); !equal(got, []string{"bot:new old s+1"}) {
				t.Fatalf("conversation = %q", got)
			}
		}
	})
}

// TestButtonStartSurvivesTheCaller: a flow started by a tapped button is started even if
// the webhook's caller has gone away, since the message is stored already and its
// redelivery would be a duplicate that starts nothing.
func TestButtonStartSurvivesTheCaller(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		b := setup(t, st, Config{}, `{"key": "thanks", "start": "m", "nodes": [{"id": "m", "type": "message", "text": "noted"}]}`)
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // the provider hung up before the answer
		res, err := b.eng.Inbound(ctx, Inbound{BotID: b.botID, CustomerID: b.cid, Channel: "whatsapp", ChannelUserID: "919876543210",
			Phone: "+919876543210", Type: "button", Payload: "flow_thanks", ProviderID: "wamid.tap"})
		if err != nil || res.Started == "" {
			t.Fatalf("inbound with a gone caller: %+v, %v", res, err)
		}
		b.waitStatus(t, res.Started, store.RunCompleted)
	})
}
