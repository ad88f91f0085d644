package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/store"
	"github.com/parleyhq/parley/internal/store/storetest"
)

// serveProcess starts `parley serve` on a free port and waits until it is healthy.
func serveProcess(t *testing.T, bin, db string) (*exec.Cmd, string) {
	t.Helper()
	return serveProcessEnv(t, bin, db, os.Environ())
}

// serveProcessEnv is serveProcess with the process's environment given.
func serveProcessEnv(t *testing.T, bin, db string, env []string) (*exec.Cmd, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "serve", "--db", db, "--addr", addr, "--log-level", "warn")
	cmd.Env = env
	logs, _ := os.Create(filepath.Join(t.TempDir(), "serve.log"))
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = dieWithTest()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	for range 200 {
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

// TestKillAndRestart kills the server with SIGKILL while triggers pour in and runs wait
// for input, restarts it, and checks every accepted run finishes exactly once.
func TestKillAndRestart(t *testing.T) {
	bin := parleyBinary(t)
	db := storetest.SQLiteDSN(t)
	out, err := exec.Command(bin, "bot", "create", "--db", db, "--customer", "acme", "--name", "demo").Output()
	if err != nil {
		t.Fatal(err)
	}
	var nb newBot
	_ = json.Unmarshal(out, &nb)
	flowFile := filepath.Join(t.TempDir(), "flow.json")
	_ = os.WriteFile(flowFile, []byte(`{"key": "wait", "start": "hi", "nodes": [
  {"id": "hi", "type": "message", "text": "hello", "next": "ask"},
  {"id": "ask", "type": "input", "text": "still there?", "save_as": "x", "timeout_seconds": 2, "on_timeout": "bye", "next": "bye"},
  {"id": "bye", "type": "message", "text": "bye"}]}`), 0o600)
	if out, err := exec.Command(bin, "flow", "import", "--db", db, "--customer", fmt.Sprint(nb.CustomerID), "--bot", nb.BotKey, flowFile).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}

	cmd, base := serveProcess(t, bin, db)
	trigger := fmt.Sprintf("/bot-api/v2.0/customer/%d/bot/%s/flow/wait", nb.CustomerID, nb.BotKey)
	var mu sync.Mutex
	accepted := map[string]string{} // run id → phone
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				phone := fmt.Sprintf("91987%02d%05d", w, i)
				req, _ := http.NewRequest("POST", base+trigger, strings.NewReader(`{"user.phone_no": "`+phone+`"}`))
				req.Header.Set("Authorization", "Basic "+nb.APIKey)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					return // the server died: this trigger was not accepted
				}
				var body struct {
					Obj struct {
						RunID string `json:"run_id"`
					} `json:"responseObject"`
				}
				_ = json.NewDecoder(res.Body).Decode(&body)
				res.Body.Close()
				if res.StatusCode == 200 && body.Obj.RunID != "" {
					mu.Lock()
					accepted[body.Obj.RunID] = phone
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = cmd.Process.Wait()
	close(stop)
	wg.Wait()
	if len(accepted) < 10 {
		t.Fatalf("only %d triggers accepted before the kill", len(accepted))
	}

	// A new server on the same file finishes everything: the waits time out and the
	// runs say goodbye, each exactly once.
	serveProcess(t, bin, db)
	st := storetest.Open(t, db)
	ctx := context.Background()
	deadline := time.Now().Add(40 * time.Second)
	for {
		total, err := st.CountRuns(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		done, _ := st.CountRuns(ctx, store.RunCompleted)
		if total >= len(accepted) && done == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d runs completed after the restart (%d accepted)", done, total, len(accepted))
		}
		time.Sleep(200 * time.Millisecond)
	}
	b, _ := st.Bot(ctx, nb.CustomerID, nb.BotKey)
	for id, phone := range accepted {
		u, err := st.UserByChannelID(ctx, b.ID, phone)
		if err != nil {
			t.Fatalf("accepted run %s lost its user: %v", id, err)
		}
		msgs, _, _ := st.Conversation(ctx, u.ID, 0, time.Now().Add(time.Hour).UnixMilli(), store.PageQuery{Size: 100})
		var texts []string
		for _, m := range msgs {
			texts = append(texts, m.Text)
		}
		if strings.Join(texts, "|") != "hello|still there?|bye" {
			t.Fatalf("run %s conversation = %q", id, texts)
		}
	}
}
