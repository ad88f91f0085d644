package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/auth"
	"github.com/parleyhq/parley/internal/catalog"
	"github.com/parleyhq/parley/internal/channel"
	"github.com/parleyhq/parley/internal/channel/registry"
	"github.com/parleyhq/parley/internal/secret"
	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// The tests in this file kill a real `parley serve` with SIGKILL while it sends through
// the fake providers, restart it on the same database, and count what the fakes
// received: no WhatsApp message twice, every RCS message accepted once, no POST of an
// http step repeated.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// parleyBinary builds cmd/parley once per test run.
func parleyBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "parley-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "parley")
		if out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/parley").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// crashSecretKey encrypts the channel credentials of the crash tests' databases, for the
// test's own store and for the servers it starts alike.
const crashSecretKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// serve starts `parley serve` on db and waits until it is ready.
func serve(t *testing.T, db string) (*exec.Cmd, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(parleyBinary(t), "serve", "--db", db, "--addr", addr, "--log-level", "warn", "--http-allow", "127.0.0.1/32",
		"--secret-key", crashSecretKey)
	logs, err := os.Create(filepath.Join(t.TempDir(), "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = dieWithTest()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	for range 400 {
		if res, err := http.Get("http://" + addr + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return cmd, "http://" + addr
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("parley serve did not become ready")
	return nil, ""
}

// holding sits in front of a fake provider. From the holdFrom-th message request on,
// it lets the fake take the request and then never answers (until the caller goes
// away): from the provider's side, a send during which the sender died. With dedup it
// drops a repeated RBM messageId with 409 ALREADY_EXISTS, as RBM does.
type holding struct {
	*httptest.Server
	isMessage func(r *http.Request) bool
	dedup     bool

	released chan struct{} // closed by release: held requests are answered

	mu       sync.Mutex
	holdFrom int
	messages int // message requests handed to the fake
	held     int
	seen     map[string]int // messageId → requests
	dropped  int
}

func newHolding(t *testing.T, inner http.HandlerFunc, isMessage func(*http.Request) bool, dedup bool) *holding {
	h := &holding{isMessage: isMessage, dedup: dedup, seen: map[string]int{}, released: make(chan struct{})}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.isMessage(r) {
			inner(w, r)
			return
		}
		h.mu.Lock()
		if id := r.URL.Query().Get("messageId"); h.dedup && id != "" {
			h.seen[id]++
			if h.seen[id] > 1 {
				h.dropped++
				h.mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusConflict)
				_, _ = io.WriteString(w, `{"error":{"code":409,"message":"Requested entity already exists","status":"ALREADY_EXISTS"}}`)
				return
			}
		}
		h.messages++
		hold := h.holdFrom > 0 && h.messages >= h.holdFrom
		if hold {
			h.held++
		}
		h.mu.Unlock()
		rec := httptest.NewRecorder()
		inner(rec, r)
		if hold {
			select {
			case <-r.Context().Done(): // the sender died; its connection closed
				return
			case <-h.released: // a late answer
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *holding) hold(from int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.holdFrom = from
}

// release answers the held requests (and any later ones) at last.
func (h *holding) release() { close(h.released) }

func (h *holding) heldCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held
}

func (h *holding) droppedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dropped
}

// waitHeld waits until n requests are held.
func (h *holding) waitHeld(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for h.heldCount() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests held, want %d", h.heldCount(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// crashEnv is a database with a bot, and a way to run parley against it.
type crashEnv struct {
	t   *testing.T
	db  string
	st  *store.Store
	nb  auth.NewBot
	bot store.Bot
}

func newCrashEnv(t *testing.T, db string, flows ...string) *crashEnv {
	t.Helper()
	ctx := context.Background()
	keys, err := secret.Parse(crashSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.OpenWithKeys(t, db, keys)
	nb, err := auth.New(st, 0).CreateBot(ctx, "acme", "crash")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Bot(ctx, nb.CustomerID, nb.BotKey)
	if err != nil {
		t.Fatal(err)
	}
	rate := 100000
	if err := st.SetCustomerHTTPRate(ctx, nb.CustomerID, &rate); err != nil {
		t.Fatal(err)
	}
	for _, f := range flows {
		if _, err := catalog.Import(ctx, st, b.ID, []byte(f)); err != nil {
			t.Fatal(err)
		}
	}
	return &crashEnv{t: t, db: db, st: st, nb: nb, bot: b}
}

func (c *crashEnv) channel(name string, cfg channel.Config) {
	c.t.Helper()
	if err := registry.New(c.st, registry.Options{}).Set(context.Background(), c.bot.ID, name, cfg); err != nil {
		c.t.Fatal(err)
	}
}

// post sends a platform API request; an error means the server did not answer.
func (c *crashEnv) post(base, path, body string, hdr ...string) (int, []byte, error) {
	req, err := http.NewRequest("POST", base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Basic "+c.nb.APIKey)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return res.StatusCode, raw, err
}

// triggerAll starts flow for every phone at once. The function it returns waits for
// every trigger to be answered (or to fail when the server dies) and returns the runs
// accepted.
func (c *crashEnv) triggerAll(base, flowKey, ch string, phones []string) func() map[string]string {
	var mu sync.Mutex
	accepted := map[string]string{} // run id → phone digits
	var wg sync.WaitGroup
	for _, p := range phones {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, raw, err := c.post(base, botPath("v2.0", c.nb)+"/flow/"+flowKey, `{"user.channel": "`+ch+`", "user.phone_no": "`+p+`"}`)
			var body struct {
				Obj struct {
					RunID string `json:"run_id"`
				} `json:"responseObject"`
			}
			if err == nil && code == 200 && json.Unmarshal(raw, &body) == nil && body.Obj.RunID != "" {
				mu.Lock()
				accepted[body.Obj.RunID] = p
				mu.Unlock()
			}
		}()
	}
	return func() map[string]string {
		wg.Wait()
		return accepted
	}
}

// settled waits until no run is unfinished and no message is pending.
func (c *crashEnv) settled() {
	c.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var open, pending int
		if err := c.st.Reader().QueryRow(ctx, `SELECT COUNT(*) FROM runs WHERE status NOT IN ('completed', 'failed')`).Scan(&open); err != nil {
			c.t.Fatal(err)
		}
		if err := c.st.Reader().QueryRow(ctx, `SELECT COUNT(*) FROM messages WHERE status = 'pending'`).Scan(&pending); err != nil {
			c.t.Fatal(err)
		}
		if open == 0 && pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("after the restart: %d runs unfinished, %d messages pending", open, pending)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// messages reads the bot's outbound messages of a user.
func (c *crashEnv) messages(digits string) []store.Message {
	c.t.Helper()
	u, err := c.st.UserByChannelID(context.Background(), c.bot.ID, digits)
	if err != nil {
		c.t.Fatalf("user %s: %v", digits, err)
	}
	msgs, _, err := c.st.Conversation(context.Background(), u.ID, 0, time.Now().Add(time.Hour).UnixMilli(), store.PageQuery{Size: 100})
	if err != nil {
		c.t.Fatal(err)
	}
	return msgs
}

func (c *crashEnv) run(id string) store.Run {
	c.t.Helper()
	r, err := c.st.RunByID(context.Background(), nil, id)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

func crashPhones(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("9198123%05d", i)
	}
	return out
}

func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = cmd.Process.Wait()
}

func isGraphMessage(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/messages")
}

func isRBMMessage(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/agentMessages")
}

func TestCrashDuringSends(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the server")
	}
	parleyBinary(t)
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			t.Parallel()
			t.Run("whatsapp", func(t *testing.T) { t.Parallel(); crashWhatsApp(t, eng.DSN(t)) })
			t.Run("rcs", func(t *testing.T) { t.Parallel(); crashRCS(t, eng.DSN(t)) })
			t.Run("http post", func(t *testing.T) { t.Parallel(); crashHTTPPost(t, eng.DSN(t)) })
			t.Run("template api", func(t *testing.T) { t.Parallel(); crashTemplateAPI(t, eng.DSN(t)) })
		})
	}
}

// crashWhatsApp: runs send two templates each through the Graph API; the server dies
// with some sends answered, some in flight and some not yet made.
func crashWhatsApp(t *testing.T, db string) {
	c := newCrashEnv(t, db, `{"key": "wa", "start": "one", "nodes": [
  {"id": "one", "type": "message", "template": {"name": "first", "language": {"code": "en"}}, "next": "two"},
  {"id": "two", "type": "message", "template": {"name": "second", "language": {"code": "en"}}}]}`)
	graph := newFakeGraph(t)
	front := newHolding(t, graph.serve, isGraphMessage, false)
	c.channel(channel.WhatsApp, channel.Config{Adapter: channel.AdapterWhatsApp, BaseURL: front.URL, PhoneNumberID: waPhoneID,
		Token: waToken, AppSecret: waAppSecret, VerifyToken: waVerifyToken})
	front.hold(10)
	cmd, base := serve(t, db)
	triggered := c.triggerAll(base, "wa", "whatsapp", crashPhones(20))
	front.waitHeld(t, 3)
	kill(t, cmd)
	accepted := triggered()
	front.hold(0)
	if len(accepted) == 0 {
		t.Fatal("no trigger was accepted before the kill")
	}
	serve(t, db)
	c.settled()

	count := map[string]int{}
	for _, call := range graph.sent() {
		count[call.To+" "+call.Body["template"].(map[string]any)["name"].(string)]++
	}
	interrupted := 0
	for id, p := range accepted {
		if r := c.run(id); r.Status != store.RunCompleted {
			t.Errorf("run %s: %s (%s)", id, r.Status, r.Error)
		}
		msgs := c.messages(p)
		if len(msgs) != 2 {
			t.Fatalf("%s: %d messages stored, want 2", p, len(msgs))
		}
		for _, m := range msgs {
			n := count[p+" "+m.Text]
			switch {
			case m.Status == store.MsgFailed && strings.Contains(m.Error, "interrupted"):
				interrupted++ // it may have reached Meta once, never twice
				if n > 1 {
					t.Errorf("%s %s: sent %d times", p, m.Text, n)
				}
			case m.Status == store.MsgSent && n == 1:
			default:
				t.Errorf("%s %s: %s (%s), sent %d times", p, m.Text, m.Status, m.Error, n)
			}
		}
	}
	for k, n := range count {
		if n > 1 {
			t.Errorf("Graph API got %q %d times", k, n)
		}
	}
	if interrupted == 0 {
		t.Fatal("no send was interrupted: the kill came at the wrong time")
	}
}

// crashRCS: runs send two texts each through RBM; after the restart every message is
// accepted exactly once: those in flight at the kill are sent again and dropped as
// duplicates.
func crashRCS(t *testing.T, db string) {
	c := newCrashEnv(t, db, `{"key": "r", "start": "one", "nodes": [
  {"id": "one", "type": "message", "text": "one {{user.phone_no}}", "next": "two"},
  {"id": "two", "type": "message", "text": "two {{user.phone_no}}"}]}`)
	phones := crashPhones(20)
	capable := make([]string, len(phones))
	for i, p := range phones {
		capable[i] = "+" + p
	}
	rbm := newFakeRBM(t, capable...)
	front := newHolding(t, rbm.serve, isRBMMessage, true)
	c.channel(channel.RCS, channel.Config{Adapter: channel.AdapterRCS, BaseURL: front.URL, AgentID: rbmAgent, Token: rbmToken,
		ClientToken: rbmClient})
	front.hold(10)
	cmd, base := serve(t, db)
	triggered := c.triggerAll(base, "r", "rcs", phones)
	front.waitHeld(t, 3)
	kill(t, cmd)
	accepted := triggered()
	front.hold(0)
	if len(accepted) == 0 {
		t.Fatal("no trigger was accepted before the kill")
	}
	serve(t, db)
	c.settled()

	count := map[string]int{}
	ids := map[string]bool{}
	for _, call := range rbm.sent() {
		text := call.Body["contentMessage"].(map[string]any)["text"].(string)
		count[text]++
		if ids[call.MessageID] {
			t.Errorf("RBM accepted messageId %s twice", call.MessageID)
		}
		ids[call.MessageID] = true
	}
	for id, p := range accepted {
		if r := c.run(id); r.Status != store.RunCompleted {
			t.Errorf("run %s: %s (%s)", id, r.Status, r.Error)
		}
		msgs := c.messages(p)
		if len(msgs) != 2 {
			t.Fatalf("%s: %d messages stored, want 2", p, len(msgs))
		}
		for _, m := range msgs {
			if m.Status != store.MsgSent || count[m.Text] != 1 {
				t.Errorf("%s %q: %s (%s), accepted %d times", p, m.Text, m.Status, m.Error, count[m.Text])
			}
		}
	}
	if front.droppedCount() == 0 {
		t.Fatal("nothing was sent again: the kill came at the wrong time")
	}
}

// crashHTTPPost: runs call an API with POST; a POST in flight at the kill is reported
// as failed after the restart, never made again.
func crashHTTPPost(t *testing.T, db string) {
	var mu sync.Mutex
	posts := map[string]int{}
	target := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		posts[r.URL.Query().Get("p")]++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok": true}`)
	}
	front := newHolding(t, target, func(r *http.Request) bool { return r.Method == http.MethodPost }, false)
	c := newCrashEnv(t, db, `{"key": "h", "start": "call", "nodes": [
  {"id": "call", "type": "http", "method": "POST", "url": "`+front.URL+`/hook?p={{user.phone_no}}", "timeout_seconds": 60, "next": "done"},
  {"id": "done", "type": "message", "text": "done [{{call.error}}]"}]}`)
	front.hold(10)
	cmd, base := serve(t, db)
	triggered := c.triggerAll(base, "h", "whatsapp", crashPhones(20))
	front.waitHeld(t, 3)
	kill(t, cmd)
	accepted := triggered()
	front.hold(0)
	if len(accepted) == 0 {
		t.Fatal("no trigger was accepted before the kill")
	}
	serve(t, db)
	c.settled()

	interrupted := 0
	for id, p := range accepted {
		r := c.run(id)
		mu.Lock()
		n := posts["+"+p]
		mu.Unlock()
		if r.Status != store.RunCompleted || n > 1 {
			t.Errorf("run %s: %s (%s); %d POSTs", id, r.Status, r.Error, n)
		}
		msgs := c.messages(p)
		if len(msgs) != 1 {
			t.Fatalf("%s: messages %+v", p, msgs)
		}
		if strings.Contains(msgs[0].Text, "interrupted") {
			interrupted++
		} else if msgs[0].Text != "done []" || n != 1 {
			t.Errorf("%s: %q after %d POSTs", p, msgs[0].Text, n)
		}
	}
	if interrupted == 0 {
		t.Fatal("no POST was interrupted: the kill came at the wrong time")
	}
}

// crashTemplateAPI: template sends with Idempotency-Keys; the server dies with some in
// flight. After the restart every retry answers without a second request to Meta.
func crashTemplateAPI(t *testing.T, db string) {
	c := newCrashEnv(t, db)
	graph := newFakeGraph(t)
	front := newHolding(t, graph.serve, isGraphMessage, false)
	c.channel(channel.WhatsApp, channel.Config{Adapter: channel.AdapterWhatsApp, BaseURL: front.URL, PhoneNumberID: waPhoneID,
		Token: waToken, AppSecret: waAppSecret, VerifyToken: waVerifyToken})
	front.hold(6)
	cmd, base := serve(t, db)
	path := "/whatsapp-api/v1.0/customer/" + itoa(c.nb.CustomerID) + "/bot/" + c.nb.BotKey + "/template"
	body := func(p string) string {
		return `{"phoneNumber": "` + p + `", "payload": {"name": "reminder", "language": {"code": "en"}}}`
	}
	phones := crashPhones(16)
	var wg sync.WaitGroup
	for _, p := range phones {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _ = c.post(base, path, body(p), "Idempotency-Key", "remind-"+p)
		}()
	}
	front.waitHeld(t, 3)
	kill(t, cmd)
	wg.Wait()
	front.hold(0)
	_, base = serve(t, db)
	c.settled()

	interrupted := 0
	stored := map[string]store.Message{}
	for _, p := range phones {
		code, raw, err := c.post(base, path, body(p), "Idempotency-Key", "remind-"+p)
		if err != nil {
			t.Fatal(err)
		}
		msgs := c.messages(p)
		if len(msgs) != 1 {
			t.Fatalf("%s: %d messages stored, want 1", p, len(msgs))
		}
		m := msgs[0]
		stored[p] = m
		switch {
		case m.Status == store.MsgFailed && strings.Contains(m.Error, "interrupted"):
			interrupted++
			if code != 400 || !strings.Contains(string(raw), "interrupted") {
				t.Errorf("%s: retry of an interrupted send answered %d %s", p, code, raw)
			}
		case m.Status == store.MsgSent:
			if code != 200 || m.ProviderID == nil || !strings.Contains(string(raw), *m.ProviderID) {
				t.Errorf("%s: retry answered %d %s, stored %+v", p, code, raw, m)
			}
		default:
			t.Errorf("%s: %s (%s)", p, m.Status, m.Error)
		}
	}
	// Every template reached Meta at most once: a sent one exactly once (the retry of
	// a send the kill kept from being stored made it now), an interrupted one at most.
	count := map[string]int{}
	for _, call := range graph.sent() {
		count[call.To]++
	}
	for _, p := range phones {
		if n := count[p]; n > 1 || (stored[p].Status == store.MsgSent && n != 1) {
			t.Errorf("%s: Graph API got %d templates; stored %s", p, n, stored[p].Status)
		}
	}
	if interrupted == 0 {
		t.Fatal("no template send was interrupted: the kill came at the wrong time")
	}
}
